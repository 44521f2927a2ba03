"""HTTP API of the scheduler: queue (QU), workloads and logs (SC-03/05), resources and nodes (RS)."""
from __future__ import annotations

import contextlib
import time
from typing import Annotated, Any, AsyncIterator, Iterator, Literal, Sequence

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.kit.auth import Admin, Reader, Writer
from services.kit.errors import Conflict, Invalid
from services.kit.service import MessageBusDep, Platform, PlatformDep
from services.scheduler import domain, figures, logs, schemas, store, wait
from services.scheduler.commands import CancelWorkload, ReorderQueue, SetNodeStatus
from services.scheduler.records import RunRecord
from services.scheduler.state import SchedulerState

router = APIRouter()
# list offsets reach PostgreSQL as bigint; larger ones are the client's error (422), not the server's
MAX_OFFSET = 1_000_000_000
_WORKLOAD_REF = dict(default=None, min_length=1, max_length=64)


async def _state(request: Request) -> SchedulerState:
    return request.app.state.scheduler


StateDep = Annotated[SchedulerState, Depends(_state)]


class QueueChange(BaseModel):
    """QU-03: a new priority class, and/or a place right before or after another waiting workload."""

    model_config = ConfigDict(extra="forbid")
    priority: Literal["high", "normal", "low"] | None = None
    before: str | None = Field(**_WORKLOAD_REF, description="place it right before this waiting workload")
    after: str | None = Field(**_WORKLOAD_REF, description="place it right after this waiting workload")

    @model_validator(mode="after")
    def _one_change(self) -> "QueueChange":
        if self.priority is None and self.before is None and self.after is None:
            raise ValueError("give priority, before or after")
        if self.before is not None and self.after is not None:
            raise ValueError("give before or after, not both")
        return self


class NodeChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Literal["Active", "Drain", "Down"]


# ---------------------------------------------------------------- queue (QU-01..05)

@router.get("/queue", tags=["queue"], summary="Waiting work in scheduling order (QU-01, 02, 05)")
async def get_queue(_: Reader, platform: PlatformDep, state: StateDep, limit: int = Query(200, ge=1, le=1000),
                    offset: int = Query(0, ge=0, le=MAX_OFFSET)) -> dict[str, Any]:
    entries = await state.queue.list()
    async with platform.pool.acquire() as conn:  # the record decides: a just-started entry is not waiting
        jobs = await store.jobs_by_ids(conn, [e.workload_id for e in entries])
    entries = [e for e in entries if e.workload_id in jobs and jobs[e.workload_id].status == "waiting"]
    reasons = await _wait_reasons(state, entries[:offset + limit])  # the work ahead decides a page's reasons
    items = [{**schemas.queue_item(e, i + 1), **schemas.wait_fields(reasons[i])}
             for i, e in enumerate(entries[offset:offset + limit], start=offset)]
    return {"items": items, "count": len(entries)}


async def _wait_reasons(state: SchedulerState, entries: Sequence[Any]) -> list[wait.WaitReason]:
    """Each waiting entry's reason and estimated start (wait.py) from the allocator's view now."""
    snapshot = await state.allocator.snapshot()
    running = await state.allocator.allocations()
    return wait.explain([wait.waiting_of(e.workload_id, e.resources) for e in entries], snapshot.free_nodes(),
                        wait.node_capacity(snapshot.nodes), running, time.time())


@router.patch("/queue/{workload_id}", tags=["queue"], summary="Change a waiting workload's priority or place (QU-03)",
              responses={404: {"description": "unknown workload"}, 409: {"description": "not waiting"}})
async def change_queue(workload_id: str, change: QueueChange, principal: Admin, bus: MessageBusDep) -> dict[str, Any]:
    with _plain_refusals():
        entry, position = await bus.handle(ReorderQueue(workload_id, priority=change.priority, before=change.before,
                                                        after=change.after, by=principal.user,
                                                        role=principal.role))
    return schemas.queue_item(entry, position)


@contextlib.contextmanager
def _plain_refusals() -> Iterator[None]:
    """409 and 422 refusals answered as a plain message, the shape this API's clients read."""
    try:
        yield
    except (Conflict, Invalid) as exc:
        raise HTTPException(exc.status, exc.message) from None


# ---------------------------------------------------------------- workloads (QU-04, SC-03, SC-05)

@router.get("/workloads", tags=["workloads"], summary="Workloads by status (QU-04)")
async def list_workloads(_: Reader, platform: PlatformDep,
                         status: Literal["waiting", "running", "stopping", "completed", "failed", "cancelled"] | None = None,
                         kind: Literal["workload", "looptest"] | None = "workload",
                         limit: int = Query(50, ge=1, le=500),
                         offset: int = Query(0, ge=0, le=MAX_OFFSET)) -> dict[str, Any]:
    async with platform.pool.acquire() as conn:
        rows, total = await store.list_jobs(conn, status=status, kind=kind, limit=limit, offset=offset)
    return {"items": [schemas.job_summary(r) for r in rows], "count": total}


@router.get("/workloads/{workload_id}", tags=["workloads"],
            summary="Status, allocation per component, timings and failure of a workload (SC-03)",
            responses={404: {"description": "unknown workload"}})
async def get_workload(workload_id: str, _: Reader, platform: PlatformDep, state: StateDep) -> dict[str, Any]:
    async with platform.pool.acquire() as conn:
        job = await store.get_job(conn, domain.workload_job_id(workload_id))
        tests = await store.looptests_of(conn, workload_id)
        if (job is None or job.workload is None) and not tests:
            raise HTTPException(404, f"workload {workload_id} not found")
        jobs = ([job] if job is not None and job.workload is not None else []) + tests
        runs = await store.runs_of(conn, [j.job_id for j in jobs])
    usage = await _usage(state, [r for rs in runs.values() for r in rs if r.status in domain.RUN_LIVE])
    details = [schemas.job_detail(j, runs[j.job_id], await state.queue.position(j.job_id), usage) for j in jobs]
    if job is None or job.workload is None:  # only loop tests so far
        return {"workload_id": workload_id, "status": None, "components": [], "loop_tests": details}
    return {**details[0], "loop_tests": details[1:]}


@router.get("/workloads/{workload_id}/logs", tags=["workloads"], response_class=StreamingResponse,
            summary="A component's run log: live while it runs, from the object store after (SC-05)",
            responses={200: {"content": {"text/plain": {}}}, 404: {"description": "unknown workload or component"}})
async def workload_logs(workload_id: str, _: Reader, platform: PlatformDep, state: StateDep,
                        component: str | None = Query(None, max_length=64, description="component id or name"),
                        task: str | None = Query(None, max_length=64),
                        test_run: str | None = Query(None, max_length=64, description="a loop test's run id"),
                        round: int | None = Query(None, ge=1, description="general loop tests: which run"),
                        follow: bool = Query(False, description="keep streaming until the component ends")
                        ) -> StreamingResponse:
    job_id = (domain.looptest_job_id(workload_id, test_run) if test_run else domain.workload_job_id(workload_id))
    async with platform.pool.acquire() as conn:
        job = await store.get_job(conn, job_id)
        if job is None or job.workload is None:
            what = f"loop test {test_run} of workload {workload_id}" if test_run else f"workload {workload_id}"
            raise HTTPException(404, f"{what} not found")
        runs = (await store.runs_of(conn, [job_id]))[job_id]
    chosen = [r for r in runs
              if (component is None or component in (r.component_id, r.name))
              and (task is None or r.task_id == task) and (round is None or r.round == round)]
    if not chosen:
        raise HTTPException(404, f"component {component} not found in workload {workload_id}"
                                 + (f" task {task}" if task else ""))
    if component is not None and len({(r.task_id, r.component_id) for r in chosen}) > 1 and task is None:
        raise HTTPException(422, f"component {component} appears in several tasks; add task=")
    headed = len(chosen) > 1
    return StreamingResponse(_log_stream(platform, state, chosen, follow=follow, headed=headed),
                             media_type="text/plain; charset=utf-8")


async def _log_stream(platform: Platform, state: SchedulerState, runs: list[RunRecord], *, follow: bool,
                      headed: bool) -> AsyncIterator[bytes]:
    for run in runs:
        if headed:
            yield f"==> {run.task_id}/{run.name} ({run.component_id}) round {run.round} <==\n".encode()
        async with platform.pool.acquire() as conn:
            current = await store.get_run(conn, run.run_id)
        if current.log_url:  # ended and uploaded: the whole log is in the object store
            async for chunk in logs.stored_chunks(state.objects, current.log_url):
                yield chunk
            continue
        if current.status == "pending":
            continue

        async def still_running(run_id: str = run.run_id) -> bool:
            async with platform.pool.acquire() as conn:
                row = await store.get_run(conn, run_id)
            return row is not None and row.status in domain.RUN_LIVE

        async for line in logs.live_lines(state.log_tails, state.settings.sched_prefix, run.run_id,
                                          follow=follow, still_running=still_running):
            yield (line + "\n").encode()


@router.post("/workloads/{workload_id}/cancel", tags=["workloads"],
             summary="Cancel a waiting or running workload (requester or admin)",
             responses={200: {"description": "cancelled"}, 202: {"description": "stopping its components"},
                        403: {"description": "neither the requester nor an admin"},
                        404: {"description": "unknown workload"}, 409: {"description": "already ended"}})
async def cancel_workload(workload_id: str, principal: Writer, bus: MessageBusDep) -> JSONResponse:
    with _plain_refusals():
        result = await bus.handle(CancelWorkload(workload_id, principal.user, is_admin=principal.is_admin,
                                                  role=principal.role))
    code = 200 if result.outcome == "cancelled" else 202
    return JSONResponse({"workload_id": workload_id, "status": result.status}, status_code=code)


# ---------------------------------------------------------------- resources and nodes (RS-01..05)

async def _usage(state: SchedulerState, runs: Sequence[RunRecord]) -> dict[str, dict[str, Any]]:
    return await figures.run_usage(state.redis, state.settings.sched_prefix, runs)


async def _live(platform: Platform) -> list[RunRecord]:
    async with platform.pool.acquire() as conn:
        return await store.live_runs(conn)


@router.get("/resources", tags=["resources"],
            summary="Cluster GPUs per type, memory and CPU: total / allocated / used / idle (RS-01..03)")
async def get_resources(_: Reader, platform: PlatformDep, state: StateDep) -> dict[str, Any]:
    return await figures.cluster_resources(platform.pool, state.redis, state.allocator, state.settings.sched_prefix,
                                           state.engine.measures)


@router.get("/resources/workloads", tags=["resources"], summary="Allocated and measured usage per running workload (RS-05)")
async def get_workload_resources(_: Reader, platform: PlatformDep, state: StateDep) -> dict[str, Any]:
    live = [r for r in await _live(platform) if r.status == "running"]
    usage = await _usage(state, live)
    async with platform.pool.acquire() as conn:
        jobs = await store.jobs_by_ids(conn, sorted({r.job_id for r in live}))
    measures = state.engine.measures
    items = []
    for job_id, job in jobs.items():
        runs = [r for r in live if r.job_id == job_id]
        comps = [schemas.run_view(r, usage.get(r.run_id)) for r in runs]
        items.append({
            **schemas.job_summary(job),
            "allocated": {"gpus": sum(len(r.gpu_indices or []) for r in runs),
                          "memory_bytes": sum(int(r.memory_bytes or 0) for r in runs),
                          "cpu": sum((r.cpu_millis or 0) for r in runs) / 1000},
            "used": schemas.workload_used(runs, usage, measures),
            "components": comps,
        })
    return {"items": items, "count": len(items), "measured": sorted(measures)}


async def _node_views(platform: Platform, state: SchedulerState, nodes: Sequence[Any]) -> list[dict[str, Any]]:
    """The nodes with measured use: GPUs by (node, type) when the runner measures GPUs, memory and CPU
    of the runs placed on each node."""
    measures = state.engine.measures
    live = await _live(platform)
    usage = await _usage(state, live)
    gpus = (schemas.gpus_in_use(live, usage, key=lambda run: (run.node, run.gpu_type))
            if "gpu" in measures else None)
    used = schemas.used_on_nodes(live, usage)
    return [schemas.node_view(node, gpus, used, measures) for node in nodes]


@router.get("/nodes", tags=["resources"], summary="Nodes with status Active / Drain / Down and their figures (RS-04)")
async def get_nodes(_: Reader, platform: PlatformDep, state: StateDep) -> dict[str, Any]:
    snapshot = await state.allocator.snapshot()
    return {"items": await _node_views(platform, state, snapshot.nodes), "count": len(snapshot.nodes)}


@router.patch("/nodes/{name}", tags=["resources"], summary="Drain, take down or re-activate a node (admin, RS-04)",
              responses={404: {"description": "unknown node"}})
async def change_node(name: str, change: NodeChange, principal: Admin, platform: PlatformDep, state: StateDep,
                      bus: MessageBusDep) -> dict[str, Any]:
    await bus.handle(SetNodeStatus(name, change.status, principal.user, role=principal.role))
    snapshot = await state.allocator.snapshot()
    [view] = await _node_views(platform, state, [n for n in snapshot.nodes if n.name == name])
    return view
