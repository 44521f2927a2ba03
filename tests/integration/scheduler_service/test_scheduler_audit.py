"""The allocation audit: drift between Redis, PostgreSQL's live runs and the runner is found, repaired and
counted in avatar_allocation_drift_total."""
from __future__ import annotations

from prometheus_client import REGISTRY

from contracts.events import WorkloadApproved
from tests.integration.scheduler_service.support import allocations, component, register, workload
from tests.support.infra import wait_until


def drift(kind: str) -> float:
    return REGISTRY.get_sample_value("avatar_allocation_drift_total", {"kind": kind}) or 0.0


async def test_the_audit_gives_a_live_run_its_lost_allocation_back_and_adopts_a_run_nobody_watches(
        scheduler, publish, tap):
    engine = scheduler.app.state.scheduler.engine
    await register(publish, scheduler, "CL-PROBE")
    for workload_id in ("WL-AUDIT-1", "WL-AUDIT-2"):
        wl = workload(workload_id, component("CL-PROBE", gpu_count=1, sleep_s=4.0))
        await publish("workload.approved", WorkloadApproved(workload_id=workload_id, auto=True, workload=wl))
        await tap.wait_for("workload.started", workload_id)
    await wait_until(lambda: len(engine.live.active) == 2, message="both runs watched")
    assert await engine.audit.audit_once() == {"missing in redis": 0, "other gpus in redis": 0, "unwatched run": 0,
                                            "conflict": 0}

    [lost] = await allocations(scheduler, "WL-AUDIT-1")
    await engine.io.allocator.release(lost.allocation_id)  # Redis forgets a live run's GPUs
    unwatched = next(run for run in engine.live.active.values() if run.job_id == "WL-AUDIT-2")
    unwatched.task.cancel()  # and a watcher dies: nobody would record the run's end
    await wait_until(lambda: unwatched.run_id not in engine.live.active, message="the watcher gone")
    before = drift("missing in redis"), drift("unwatched run")

    assert await engine.audit.audit_once() == {"missing in redis": 1, "other gpus in redis": 0, "unwatched run": 1,
                                            "conflict": 0}
    assert (drift("missing in redis"), drift("unwatched run")) == (before[0] + 1, before[1] + 1)
    [restored] = await allocations(scheduler, "WL-AUDIT-1")
    assert (restored.node, restored.gpu_indices) == (lost.node, lost.gpu_indices)
    assert unwatched.run_id in engine.live.active  # adopted

    for workload_id in ("WL-AUDIT-1", "WL-AUDIT-2"):
        await tap.wait_for("workload.completed", workload_id, timeout=30)
        assert tap.emitted(workload_id) == ["workload.queued", "workload.started", "workload.completed"]
    detail = (await scheduler.client.get("/workloads/WL-AUDIT-2", headers=scheduler.headers("viewer"))).json()
    assert detail["components"][0]["attempt"] == 1
    await wait_until(lambda: _none_left(scheduler), message="every allocation released")
    metrics = (await scheduler.client.get("/metrics")).text
    assert 'avatar_allocation_drift_total{kind="missing in redis"}' in metrics


async def _none_left(scheduler) -> bool:
    return await allocations(scheduler) == []
