"""A run's end is always recorded and its GPUs always go back exactly once: through a runner that cannot
answer, an allocation Redis gave to someone else, an end PostgreSQL refuses, runs that keep dying and an S3
blip at the end."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import sys

import asyncpg
from prometheus_client import REGISTRY

from contracts.events import WorkloadApproved
from services.scheduler.main import create_app
from tests.integration.scheduler_service.support import (allocations, component, component_processes, register,
                                                         workload)
from tests.support.infra import wait_until
from tests.support.proxy import TcpProxy
from tests.support.services import running_service


def drift(kind: str) -> float:
    return REGISTRY.get_sample_value("avatar_allocation_drift_total", {"kind": kind}) or 0.0


async def approve(publish, wl) -> None:
    await publish("workload.approved", WorkloadApproved(workload_id=wl.workload_id, auto=True, workload=wl))


async def run_row(url: str, workload_id: str):
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchrow("SELECT status, attempt, reason, last_line, rerun_reason, metrics, log_url"
                                   " FROM scheduler.runs WHERE job_id = $1", workload_id)
    finally:
        await conn.close()


async def unwatch(engine, workload_id: str):
    """The watcher of the workload's run dies: nobody would record the run's end."""
    run = next(run for run in engine.live.active.values() if run.job_id == workload_id)
    run.task.cancel()
    await wait_until(lambda: run.run_id not in engine.live.active, message="the watcher gone")
    return run


async def test_a_run_the_runner_cannot_answer_for_is_left_as_it_is_and_adopted_in_a_later_round(
        scheduler, publish, tap, fresh, monkeypatch):
    engine = scheduler.app.state.scheduler.engine
    await register(publish, scheduler, "CL-PROBE")
    await approve(publish, workload("WL-ASK", component("CL-PROBE", gpu_count=1, sleep_s=4.0)))
    await tap.wait_for("workload.started", "WL-ASK")
    await wait_until(lambda: len(engine.live.active) == 1, message="the run watched")
    unwatched = await unwatch(engine, "WL-ASK")
    [held] = await allocations(scheduler, "WL-ASK")

    runner = engine.io.runner
    attach = runner.attach

    async def unanswered(attempt):
        raise OSError("the runner does not answer")

    monkeypatch.setattr(runner, "attach", unanswered)
    await engine.audit.audit_once()
    # an error is not an answer: the run is neither run again nor released
    row = await run_row(fresh.postgres_url, "WL-ASK")
    assert (row["status"], row["attempt"], row["rerun_reason"]) == ("running", 1, None)
    assert [a.allocation_id for a in await allocations(scheduler, "WL-ASK")] == [held.allocation_id]
    assert unwatched.run_id not in engine.live.active

    monkeypatch.setattr(runner, "attach", attach)  # the runner answers again: the next round adopts it
    assert (await engine.audit.audit_once())["unwatched run"] == 1
    assert unwatched.run_id in engine.live.active
    await tap.wait_for("workload.completed", "WL-ASK", timeout=30)
    assert (await run_row(fresh.postgres_url, "WL-ASK"))["attempt"] == 1
    assert tap.emitted("WL-ASK") == ["workload.queued", "workload.started", "workload.completed"]


async def test_the_audit_never_restores_an_allocation_onto_gpus_another_one_holds(
        scheduler_settings, publish, tap):
    settings = scheduler_settings(scheduler_reconcile_seconds=3600, scheduler_audit_seconds=3600)
    async with running_service(create_app, settings) as service:
        engine = service.app.state.scheduler.engine
        await wait_until(lambda: engine.leading, message="leadership")
        await register(publish, service, "CL-PROBE")
        await approve(publish, workload("WL-OWNED", component("CL-PROBE", gpu_count=1, sleep_s=5.0)))
        await tap.wait_for("workload.started", "WL-OWNED")
        await wait_until(lambda: len(engine.live.active) == 1, message="the run watched")
        [held] = await allocations(service, "WL-OWNED")
        await engine.io.allocator.release(held.allocation_id)  # Redis loses it, and its GPU goes to another
        await engine.io.allocator.restore("someone-else", "WL-OTHER", "c", node=held.node, gpu_type=held.gpu_type,
                                          gpu_indices=list(held.gpu_indices), memory_bytes=0, cpu_millis=0)
        before = drift("conflict")

        repaired = await engine.audit.audit_once()
        assert repaired == {"missing in redis": 0, "other gpus in redis": 0, "unwatched run": 0, "conflict": 1}
        assert drift("conflict") == before + 1
        assert await allocations(service, "WL-OWNED") == []  # not booked a second time
        [other] = await allocations(service)
        assert other.allocation_id == "someone-else"

        await engine.reconcile_once()  # the allocation nobody owns goes back; the next audit restores the run's
        assert (await engine.audit.audit_once())["missing in redis"] == 1
        [restored] = await allocations(service, "WL-OWNED")
        assert (restored.node, restored.gpu_indices) == (held.node, held.gpu_indices)
        await tap.wait_for("workload.completed", "WL-OWNED", timeout=30)
        await wait_until(lambda: _none_left(service), message="every allocation released")


NUL_LAST_LINE = [sys.executable, "-c", "import sys; print('bad\\x00input', flush=True); sys.exit(2)"]
NAN_METRICS = [sys.executable, "-c", "from components.runtime import run_component; "
               "run_component(lambda ctx: ctx.write_bytes('metrics.json', b'{\"loss\": NaN}', 'application/json') and None)"]


async def test_a_run_end_with_a_nul_byte_in_its_last_line_is_recorded_without_it(scheduler, publish, tap, fresh):
    await register(publish, scheduler, "CL-NUL", command=NUL_LAST_LINE)
    await approve(publish, workload("WL-NUL", component("CL-NUL", gpu_count=1)))
    await tap.wait_for("workload.failed", "WL-NUL", timeout=30)
    row = await run_row(fresh.postgres_url, "WL-NUL")
    assert (row["status"], row["last_line"]) == ("failed", "badinput")
    assert "\x00" not in row["reason"] and "badinput" in row["reason"]
    await wait_until(lambda: _none_left(scheduler), message="its GPU released")


async def test_a_run_end_postgresql_refuses_is_recorded_as_a_failure_and_its_gpus_go_back(
        scheduler, publish, tap, fresh):
    """jsonb has no NaN: the succeeded run's metrics cannot be stored. Its end must still be recorded (else it
    stays running, holding its GPU, and every audit adopts it again)."""
    await register(publish, scheduler, "CL-NAN", command=NAN_METRICS)
    await approve(publish, workload("WL-NAN", component("CL-NAN", gpu_count=1)))
    await tap.wait_for("workload.failed", "WL-NAN", timeout=30)
    row = await run_row(fresh.postgres_url, "WL-NAN")
    assert row["status"] == "failed" and row["metrics"] is None
    assert row["reason"].startswith("its end (succeeded, exit code 0) could not be recorded"), row["reason"]
    await wait_until(lambda: _none_left(scheduler), message="its GPU released")


async def test_a_run_that_keeps_dying_is_rerun_at_most_the_set_number_of_times_then_fails(
        scheduler_settings, publish, tap, fresh):
    settings = scheduler_settings(scheduler_max_reruns=1)
    wl = workload("WL-DIES", component("CL-PROBE", gpu_count=1, sleep_s=30.0), max_runtime="10m")
    for life in range(2):  # it dies with its machine twice, no exit status anywhere
        async with running_service(create_app, settings) as service:
            await wait_until(lambda: service.app.state.scheduler.leadership.leading, message="leadership")
            if life == 0:
                await register(publish, service, "CL-PROBE")
                await approve(publish, wl)

            async def attempt_running(expected=life + 1):
                row = await run_row(fresh.postgres_url, "WL-DIES")
                return row is not None and (row["status"], row["attempt"]) == ("running", expected)

            await wait_until(attempt_running, timeout=20, message=f"attempt {life + 1} running")
            await wait_until(lambda: component_processes("WL-DIES"), message="the component process")
        for pid in component_processes("WL-DIES"):
            os.kill(pid, signal.SIGKILL)
        await wait_until(lambda: not component_processes("WL-DIES"), timeout=10, message="the run's death")
    async with running_service(create_app, settings) as service:
        await tap.wait_for("workload.failed", "WL-DIES", timeout=30)
        row = await run_row(fresh.postgres_url, "WL-DIES")
        assert (row["status"], row["attempt"]) == ("failed", 2)
        assert row["reason"].startswith("rerun 1 times: rerun: lost"), row["reason"]
        assert row["reason"].count("rerun: lost") == 2  # the reasons of both deaths
        await wait_until(lambda: _none_left(service), message="its GPU released")
        assert component_processes("WL-DIES") == []


async def test_a_succeeded_runs_metrics_and_log_survive_an_s3_blip_at_its_end(scheduler_settings, publish, tap,
                                                                               fresh):
    port = int(fresh.s3_endpoint.rsplit(":", 1)[1])
    s3 = TcpProxy("127.0.0.1", port).start()
    try:
        settings = scheduler_settings(s3_endpoint=s3.endpoint)
        async with running_service(create_app, settings) as service:
            await wait_until(lambda: service.app.state.scheduler.leadership.leading, message="leadership")
            await register(publish, service, "CL-PROBE")
            await approve(publish, workload("WL-S3", component("CL-PROBE", gpu_count=1, sleep_s=2.5)))
            await tap.wait_for("workload.started", "WL-S3")
            await asyncio.sleep(1.5)  # it has written its outputs and metrics; it ends while S3 is away
            s3.cut()
            await wait_until(lambda: not component_processes("WL-S3"), timeout=10, message="the run's end")
            await asyncio.sleep(2.0)
            s3.restore()
            await tap.wait_for("workload.completed", "WL-S3", timeout=30)
            row = await run_row(fresh.postgres_url, "WL-S3")
            assert row["status"] == "succeeded"
            assert json.loads(row["metrics"])["sleep_s"] == 2.5
            assert row["log_url"] is not None
            log = await service.client.get("/workloads/WL-S3/logs", headers=service.headers("viewer"))
            assert "probe: done" in log.text
    finally:
        s3.cut()


async def _none_left(service) -> bool:
    return await allocations(service) == []
