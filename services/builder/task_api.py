"""Tasks, placed Components, the workflow and its diagram (BL-01, BL-03, BL-06…BL-11)."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from contracts.spec import WorkflowEdge
from services.builder import diagram, domain, store
from services.builder.deps import CatalogDep, ThresholdDep, editing_app, editing_task
from services.builder.domain import PlacedComponent, Task
from services.builder.schemas import ComponentPatch, ComponentRef, OrderBody, Placement, TaskCreate, TaskView
from services.kit.auth import Reader, Writer
from services.kit.service import PlatformDep

router = APIRouter(prefix="/apps/{app_id}/tasks", tags=["tasks"])
TASK = "/{task_id}"


@router.get("", response_model=list[TaskView], summary="The App's Tasks in order")
async def list_tasks(app_id: str, _: Reader, platform: PlatformDep, threshold: ThresholdDep) -> list[TaskView]:
    async with platform.snapshot() as conn:
        app = await store.load_app(conn, app_id)
    return [TaskView.of(task, threshold) for task in app.tasks]


@router.post("", status_code=201, response_model=TaskView, summary="Add an empty Task (BL-10)")
async def create_task(app_id: str, body: TaskCreate, user: Writer, platform: PlatformDep, threshold: ThresholdDep,
                      response: Response) -> TaskView:
    async with editing_app(platform, app_id, user.user) as (conn, info):
        domain.check_room_for_tasks(info, 1)
        number = await store.take_task_numbers(conn, app_id, 1)
        task = Task(task_id=domain.task_id(number), name=body.name)
        await store.insert_task(conn, app_id, number, task)
    response.headers["Location"] = f"/apps/{app_id}/tasks/{task.task_id}"
    return TaskView.of(task, threshold)


@router.get(TASK, response_model=TaskView, summary="One Task with its Components and workflow")
async def get_task(app_id: str, task_id: str, _: Reader, platform: PlatformDep, threshold: ThresholdDep) -> TaskView:
    async with platform.snapshot() as conn:
        await store.app_info(conn, app_id)
        return TaskView.of(await store.load_task(conn, app_id, task_id), threshold)


@router.patch(TASK, response_model=TaskView, summary="Rename a Task")
async def rename_task(app_id: str, task_id: str, body: TaskCreate, user: Writer, platform: PlatformDep,
                      threshold: ThresholdDep) -> TaskView:
    async with editing_task(platform, app_id, task_id, user.user) as (conn, task):
        task.name = body.name
        await store.rename_task(conn, app_id, task_id, body.name)
    return TaskView.of(task, threshold)


@router.delete(TASK, status_code=204, summary="Delete a Task with its Components and workflow")
async def delete_task(app_id: str, task_id: str, user: Writer, platform: PlatformDep) -> Response:
    async with editing_task(platform, app_id, task_id, user.user) as (conn, task):
        await store.delete_task(conn, app_id, task_id)
        if task.imported_from:
            await store.drop_import_if_unused(conn, app_id, task.imported_from)
    return Response(status_code=204)


@router.post(TASK + "/components", status_code=201, response_model=TaskView,
             summary="Place a library Component; image and defaults come from the library (BL-01, BL-11)")
async def place_component(app_id: str, task_id: str, body: Placement, user: Writer, request: Request,
                          platform: PlatformDep, threshold: ThresholdDep, catalog: CatalogDep) -> TaskView:
    async with platform.pool.acquire() as conn:  # an unknown app or task is 404 even when the library is down
        await store.app_info(conn, app_id)
        await store.load_task(conn, app_id, task_id)
    # Looked up before the transaction: a slow library must not hold the App's lock.
    found = await catalog.find(body.component_id, request.headers.get("authorization"))
    component = PlacedComponent.from_library(
        found, name=body.name, image=body.image, params=body.params,
        resources=body.resources.applied_to(found.resources) if body.resources else None)
    async with editing_task(platform, app_id, task_id, user.user) as (conn, task):
        task.place(component)
        await store.insert_component(conn, app_id, task_id, component, position=len(task.components))
    return TaskView.of(task, threshold)


@router.patch(TASK + "/components/{component_id}", response_model=TaskView,
              summary="Change a placed Component's name, image, resources or params (BL-03, BL-06)")
async def patch_component(app_id: str, task_id: str, component_id: str, body: ComponentPatch, user: Writer,
                          platform: PlatformDep, threshold: ThresholdDep) -> TaskView:
    async with editing_task(platform, app_id, task_id, user.user) as (conn, task):
        component = task.component(component_id)
        component.name = body.name or component.name
        component.image = body.image or component.image
        if body.resources:
            component.resources = body.resources.applied_to(component.resources)
        if body.params is not None:
            component.params = body.params
        await store.update_component(conn, app_id, task_id, component)
    return TaskView.of(task, threshold)


@router.delete(TASK + "/components/{component_id}", response_model=TaskView,
               summary="Remove a Component, every edge touching it, and close the gap in the order")
async def remove_component(app_id: str, task_id: str, component_id: str, user: Writer, platform: PlatformDep,
                           threshold: ThresholdDep) -> TaskView:
    async with editing_task(platform, app_id, task_id, user.user) as (conn, task):
        task.remove(component_id)
        await store.delete_component(conn, app_id, task_id, component_id)
        await store.save_order(conn, app_id, task)
    return TaskView.of(task, threshold)


@router.post(TASK + "/edges", status_code=201, response_model=TaskView,
             responses={422: {"description": 'refused: detail.code is "self_loop", "duplicate" or "cycle"'}},
             summary="Connect two Components (BL-07, BL-09); the order follows the new edge if it must")
async def add_edge(app_id: str, task_id: str, body: WorkflowEdge, user: Writer, platform: PlatformDep,
                   threshold: ThresholdDep) -> TaskView:
    async with editing_task(platform, app_id, task_id, user.user) as (conn, task):
        reordered = task.connect(body.from_, body.to)
        await store.insert_edge(conn, app_id, task_id, body.from_, body.to)
        if reordered:
            await store.save_order(conn, app_id, task)
    return TaskView.of(task, threshold)


@router.delete(TASK + "/edges", response_model=TaskView, summary="Remove one edge")
async def remove_edge(app_id: str, task_id: str, user: Writer, platform: PlatformDep, threshold: ThresholdDep,
                      source: Annotated[ComponentRef, Query(alias="from")],
                      target: Annotated[ComponentRef, Query(alias="to")]) -> TaskView:
    async with editing_task(platform, app_id, task_id, user.user) as (conn, task):
        task.disconnect(source, target)
        await store.delete_edge(conn, app_id, task_id, source, target)
    return TaskView.of(task, threshold)


@router.put(TASK + "/order", response_model=TaskView,
            summary="Set the execution order; it must respect every edge (BL-07)")
async def set_order(app_id: str, task_id: str, body: OrderBody, user: Writer, platform: PlatformDep,
                    threshold: ThresholdDep) -> TaskView:
    async with editing_task(platform, app_id, task_id, user.user) as (conn, task):
        task.reorder(body.order)
        await store.save_order(conn, app_id, task)
    return TaskView.of(task, threshold)


@router.get(TASK + "/diagram.svg", response_class=Response, summary="The Task's workflow as SVG (BL-08)",
            responses={200: {"content": {"image/svg+xml": {}}}})
async def task_diagram(app_id: str, task_id: str, _: Reader, platform: PlatformDep) -> Response:
    async with platform.snapshot() as conn:
        await store.app_info(conn, app_id)
        task = await store.load_task(conn, app_id, task_id)
    return Response(diagram.render(task), media_type="image/svg+xml")
