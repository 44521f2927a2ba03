"""Trainer HTTP API: ready Apps, resource defaults, submit, history with timeline, compare, cancel."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from contracts.spec import AppSpec
from contracts.workload import RequestedResources
from services.kit.auth import Reader, Writer
from services.kit.errors import Invalid, NotFound
from services.kit.paging import Page, Paging
from services.kit.service import MessageBusDep, Platform, PlatformDep
from services.kit.telemetry import bind_workload
from services.trainer import curves, domain, store
from services.trainer.commands import CancelTrainingRequest, SubmitTrainingRequest
from services.trainer.schemas import (AppView, CancelRequested, Comparison, RequestDetail, RequestSummary,
                                    ResourceDefaults, Submitted, SubmitTraining, detail, summary)

router = APIRouter()


def _app_view(spec: AppSpec, version_count: int, versions: list[str] | None = None) -> AppView:
    return AppView(**domain.summarise_app(spec).__dict__, version_count=version_count, versions=versions,
                   spec=spec.to_wire() if versions is not None else None)


@router.get("/apps", tags=["apps"], response_model=Page[AppView], summary="Ready Apps to train (TR-01)")
async def list_apps(platform: PlatformDep, _: Reader, paging: Paging,
                    q: Annotated[str | None, Query(max_length=128, description="in name or id")] = None,
                    ) -> Page[AppView]:
    rows, total = await store.list_apps(platform.pool, query=q, limit=paging.page_size, offset=paging.offset)
    return Page.of([_app_view(AppSpec.model_validate(row["spec"]), row["versions"]) for row in rows], total, paging)


async def _ready_spec(platform: Platform, app_id: str, version: str | None) -> AppSpec:
    spec = await store.find_spec(platform.pool, app_id, version)
    if spec is None:
        raise NotFound(f"version {version} of ready app {app_id} not found" if version
                       else f"ready app {app_id} not found")
    return spec


@router.get("/apps/{app_id}", tags=["apps"], response_model=AppView,
            summary="A ready App: its spec versions and latest spec")
async def get_app(app_id: str, platform: PlatformDep, _: Reader) -> AppView:
    spec = await _ready_spec(platform, app_id, None)
    versions = await store.app_versions(platform.pool, app_id)
    return _app_view(spec, len(versions), versions)


@router.get("/apps/{app_id}/resource-defaults", tags=["apps"], response_model=ResourceDefaults,
            summary="Resources of the largest single component, and the App's training config (TR-02, TR-03)")
async def resource_defaults(app_id: str, platform: PlatformDep, _: Reader,
                            version: Annotated[str | None, Query(max_length=32)] = None) -> ResourceDefaults:
    spec = await _ready_spec(platform, app_id, version)
    resources, largest = domain.resource_defaults(spec)
    return ResourceDefaults(app_id=app_id, spec_version=spec.version, **resources.model_dump(),
                            source_component={"component_id": largest.component_id, "name": largest.name},
                            training_config=spec.training_config.model_dump())


@router.post("/training-requests", status_code=202, tags=["training"], response_model=Submitted,
             summary="Submit a training request; it enters the approval process (TR-03…TR-06)",
             responses={422: {"description": "unknown or not-ready app, or parameters out of range"}})
async def submit(body: SubmitTraining, bus: MessageBusDep, principal: Writer, response: Response) -> Submitted:
    command = SubmitTrainingRequest(
        app_id=body.app_id, requester=principal.user, spec_version=body.spec_version, name=body.name,
        resources=RequestedResources(**body.resources.model_dump()) if body.resources else None,
        training_config=body.training_config.given(), simulation_seed=body.training_config.simulation_seed,
        env_vars=body.env_vars, priority=body.priority, is_training_request=body.is_training_request,
        test_run_ref=body.test_run_ref)
    bind_workload(command.workload_id)  # this request's span is the root of the workload's trace
    workload = await bus.handle(command)
    response.headers["Location"] = f"/training-requests/{workload.workload_id}"
    return Submitted(workload_id=workload.workload_id, status="waiting", submitted_at=workload.submitted_at)


@router.get("/training-requests", tags=["training"], response_model=Page[RequestSummary],
            summary="Training history with each request's status, newest first (TR-07)")
async def history(platform: PlatformDep, principal: Reader, paging: Paging,
                  status: Annotated[str | None, Query(description=" | ".join(domain.STATUSES))] = None,
                  app_id: Annotated[str | None, Query(max_length=64)] = None,
                  mine: Annotated[bool, Query(description="only the caller's own requests")] = False,
                  ) -> Page[RequestSummary]:
    if status is not None and status not in domain.STATUSES:
        raise Invalid(f"unknown status {status!r}: use one of {', '.join(domain.STATUSES)}", code="unknown_status")
    rows, total = await store.list_requests(platform.pool, status=status, app_id=app_id,
                                            requester=principal.user if mine else None,
                                            limit=paging.page_size, offset=paging.offset)
    return Page.of([summary(row, row["resources"]) for row in rows], total, paging)


@router.get("/training-requests/compare", tags=["training"], response_model=Comparison,
            summary="Training configs and final metrics of several requests side by side (TR-08)")
async def compare(platform: PlatformDep, _: Reader,
                  ids: Annotated[str, Query(max_length=1000, description="comma-separated workload ids")]) -> Comparison:
    wanted = list(dict.fromkeys(part.strip() for part in ids.split(",") if part.strip()))
    if not 2 <= len(wanted) <= 10:
        raise Invalid("compare needs between 2 and 10 distinct workload ids", code="compare_count")
    rows = {row["workload_id"]: row for row in await store.find_requests(platform.pool, wanted)}
    missing = [workload_id for workload_id in wanted if workload_id not in rows]
    if missing:
        raise NotFound(f"training request(s) not found: {', '.join(missing)}")
    requests, table = [], {}
    for workload_id in wanted:
        entries = await store.timeline(platform.pool, workload_id)
        view = detail(rows[workload_id], entries)
        requests.append({"workload_id": workload_id, "app_id": view.app_id, "spec_version": view.spec_version,
                         "name": view.name, "status": view.status, "status_label": view.status_label,
                         "training_config": view.training_config, "resources": view.resources,
                         "final_metrics": view.final_metrics, "reward_curve": curves.reward_curve(entries)})
        for metric, value in view.final_metrics.items():
            table.setdefault(metric, {})[workload_id] = value
    return Comparison(requests=requests, metrics={metric: table[metric] for metric in sorted(table)})


@router.get("/training-requests/{workload_id}", tags=["training"], response_model=RequestDetail,
            summary="One training request with its saga timeline (TR-07)")
async def get_request(workload_id: str, platform: PlatformDep, _: Reader) -> RequestDetail:
    row = await store.find_request(platform.pool, workload_id)
    if row is None:
        raise NotFound(f"training request {workload_id} not found")
    return detail(row, await store.timeline(platform.pool, workload_id))


@router.post("/training-requests/{workload_id}/cancel", status_code=202, tags=["training"],
             response_model=CancelRequested, summary="Ask to cancel a request (its requester or an admin)",
             responses={403: {"description": "neither the requester nor an admin"},
                        409: {"description": "the request has already ended"}})
async def cancel(workload_id: str, bus: MessageBusDep, principal: Writer) -> CancelRequested:
    request = await bus.handle(CancelTrainingRequest(workload_id=workload_id, requested_by=principal.user,
                                                     by_admin=principal.is_admin, role=principal.role))
    return CancelRequested(workload_id=workload_id, status=request.status,
                           cancel_requested_by=request.cancel_requested_by,
                           cancel_requested_at=request.cancel_requested_at)
