"""Tasks, placed Components, the workflow and its diagram (BL-01, BL-03, BL-06…BL-11)."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from contracts.spec import WorkflowEdge
from services.builder import diagram, store
from services.builder.commands import (AddTask, ChangeComponent, ConnectComponents, DeleteTask, DisconnectComponents,
                                       PlaceComponent, RemoveComponent, RenameTask, ReorderComponents,
                                       UpgradeComponent)
from services.builder.deps import ThresholdDep
from services.builder.revision import IfMatch, by
from services.builder.schemas import ComponentPatch, ComponentRef, OrderBody, Placement, TaskCreate, TaskView
from services.kit.auth import Reader, Writer
from services.kit.service import MessageBusDep, PlatformDep

router = APIRouter(prefix="/apps/{app_id}/tasks", tags=["tasks"])
TASK = "/{task_id}"


@router.get("", response_model=list[TaskView], summary="The App's Tasks in order")
async def list_tasks(app_id: str, _: Reader, platform: PlatformDep, threshold: ThresholdDep) -> list[TaskView]:
    async with platform.snapshot() as conn:
        app = await store.load_app(conn, app_id)
    return [TaskView.of(task, threshold) for task in app.tasks]


@router.post("", status_code=201, response_model=TaskView, summary="Add an empty Task (BL-10)")
async def create_task(app_id: str, body: TaskCreate, user: Writer, bus: MessageBusDep, threshold: ThresholdDep,
                      response: Response, revision: IfMatch) -> TaskView:
    task = await bus.handle(AddTask(app_id=app_id, **by(user, revision), name=body.name))
    response.headers["Location"] = f"/apps/{app_id}/tasks/{task.task_id}"
    return TaskView.of(task, threshold)


@router.get(TASK, response_model=TaskView, summary="One Task with its Components and workflow")
async def get_task(app_id: str, task_id: str, _: Reader, platform: PlatformDep, threshold: ThresholdDep) -> TaskView:
    async with platform.snapshot() as conn:
        info = await store.app_info(conn, app_id)
        return TaskView.of(await store.load_task(conn, app_id, task_id), threshold, info.revision)


@router.patch(TASK, response_model=TaskView, summary="Rename a Task")
async def rename_task(app_id: str, task_id: str, body: TaskCreate, user: Writer, bus: MessageBusDep,
                      threshold: ThresholdDep, revision: IfMatch) -> TaskView:
    task = await bus.handle(RenameTask(app_id=app_id, **by(user, revision), task_id=task_id,
                                       name=body.name))
    return TaskView.of(task, threshold)


@router.delete(TASK, status_code=204, summary="Delete a Task with its Components and workflow")
async def delete_task(app_id: str, task_id: str, user: Writer, bus: MessageBusDep, revision: IfMatch) -> Response:
    await bus.handle(DeleteTask(app_id=app_id, **by(user, revision), task_id=task_id))
    return Response(status_code=204)


@router.post(TASK + "/components", status_code=201, response_model=TaskView,
             summary="Place a library Component; image and defaults come from the library (BL-01, BL-11)")
async def place_component(app_id: str, task_id: str, body: Placement, user: Writer, request: Request,
                          bus: MessageBusDep, threshold: ThresholdDep, revision: IfMatch) -> TaskView:
    task = await bus.handle(PlaceComponent(
        app_id=app_id, **by(user, revision), task_id=task_id, component_id=body.component_id,
        authorization=request.headers.get("authorization"), name=body.name, image=body.image, params=body.params,
        resources=body.resources.model_dump(exclude_none=True) if body.resources else None))
    return TaskView.of(task, threshold)


@router.patch(TASK + "/components/{component_id}", response_model=TaskView,
              summary="Change a placed Component's name, image, resources or params (BL-03, BL-06)")
async def patch_component(app_id: str, task_id: str, component_id: str, body: ComponentPatch, user: Writer,
                          bus: MessageBusDep, threshold: ThresholdDep, revision: IfMatch) -> TaskView:
    task = await bus.handle(ChangeComponent(
        app_id=app_id, **by(user, revision), task_id=task_id, component_id=component_id,
        name=body.name, image=body.image, params=body.params,
        resources=body.resources.model_dump(exclude_none=True) if body.resources else None))
    return TaskView.of(task, threshold)


@router.post(TASK + "/components/{component_id}/upgrade", response_model=TaskView,
             summary="Move a placed Component to the library's current version (CL-05): image, type and resources "
                     "from that version; name and params kept, new default params added")
async def upgrade_component(app_id: str, task_id: str, component_id: str, user: Writer, request: Request,
                            bus: MessageBusDep, threshold: ThresholdDep, revision: IfMatch) -> TaskView:
    task = await bus.handle(UpgradeComponent(
        app_id=app_id, **by(user, revision), task_id=task_id, component_id=component_id,
        authorization=request.headers.get("authorization")))
    return TaskView.of(task, threshold)


@router.delete(TASK + "/components/{component_id}", response_model=TaskView,
               summary="Remove a Component, every edge touching it, and close the gap in the order")
async def remove_component(app_id: str, task_id: str, component_id: str, user: Writer, bus: MessageBusDep,
                           threshold: ThresholdDep, revision: IfMatch) -> TaskView:
    task = await bus.handle(RemoveComponent(app_id=app_id, **by(user, revision), task_id=task_id,
                                            component_id=component_id))
    return TaskView.of(task, threshold)


@router.post(TASK + "/edges", status_code=201, response_model=TaskView,
             responses={422: {"description": 'refused: detail.code is "self_loop", "duplicate" or "cycle"'}},
             summary="Connect two Components (BL-07, BL-09); the order follows the new edge if it must")
async def add_edge(app_id: str, task_id: str, body: WorkflowEdge, user: Writer, bus: MessageBusDep,
                   threshold: ThresholdDep, revision: IfMatch) -> TaskView:
    task = await bus.handle(ConnectComponents(app_id=app_id, **by(user, revision), task_id=task_id,
                                              source=body.from_, target=body.to))
    return TaskView.of(task, threshold)


@router.delete(TASK + "/edges", response_model=TaskView, summary="Remove one edge")
async def remove_edge(app_id: str, task_id: str, user: Writer, bus: MessageBusDep, threshold: ThresholdDep,
                      source: Annotated[ComponentRef, Query(alias="from")],
                      target: Annotated[ComponentRef, Query(alias="to")], revision: IfMatch) -> TaskView:
    task = await bus.handle(DisconnectComponents(app_id=app_id, **by(user, revision), task_id=task_id,
                                                 source=source, target=target))
    return TaskView.of(task, threshold)


@router.put(TASK + "/order", response_model=TaskView,
            summary="Set the execution order; it must respect every edge (BL-07)")
async def set_order(app_id: str, task_id: str, body: OrderBody, user: Writer, bus: MessageBusDep,
                    threshold: ThresholdDep, revision: IfMatch) -> TaskView:
    task = await bus.handle(ReorderComponents(app_id=app_id, **by(user, revision), task_id=task_id,
                                              order=body.order))
    return TaskView.of(task, threshold)


@router.get(TASK + "/diagram.svg", response_class=Response, summary="The Task's workflow as SVG (BL-08)",
            responses={200: {"content": {"image/svg+xml": {}}}})
async def task_diagram(app_id: str, task_id: str, _: Reader, platform: PlatformDep) -> Response:
    async with platform.snapshot() as conn:
        await store.app_info(conn, app_id)
        task = await store.load_task(conn, app_id, task_id)
    return Response(diagram.render(task), media_type="image/svg+xml")
