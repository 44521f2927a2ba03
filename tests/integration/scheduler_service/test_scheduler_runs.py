"""Running workloads: DAG order, artifacts and metrics, logs, failure and timeout compensation."""
from __future__ import annotations

import asyncio
from datetime import datetime

from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from contracts.events import WorkloadApproved
from services.kit.telemetry import inject_headers, setup_tracing
from services.scheduler.main import create_app
from services.scheduler.records import JobRecord, RunRecord
from tests.integration.scheduler_service.support import (allocations, component, component_processes, register,
                                                         workload)
from tests.support.infra import wait_until
from tests.support.services import running_service


async def test_two_component_dag_runs_in_order_and_completes_with_artifacts(scheduler, publish, tap):
    await register(publish, scheduler, "CL-LOAD", "CL-TRAIN")
    wl = workload("WL-DAG", component("CL-LOAD", gpu_type="V100", gpu_count=1, sleep_s=0.3, output_bytes=32),
                  component("CL-TRAIN", gpu_type="A100", gpu_count=2, memory="4GB"),
                  edges=[("CL-LOAD", "CL-TRAIN")], env_vars={"NCCL_DEBUG": "INFO", "AVATAR_WORKLOAD_ID": "spoofed"})
    await publish("workload.approved", WorkloadApproved(workload_id=wl.workload_id, auto=True, workload=wl),
                  correlation_id=wl.workload_id)

    completed = await tap.wait_for("workload.completed", "WL-DAG")
    assert tap.emitted("WL-DAG") == ["workload.queued", "workload.started", "workload.completed"]
    started = tap.of("workload.started", "WL-DAG")[0].data
    assert [(a.component_id, a.node, a.gpu_type, len(a.gpu_indices)) for a in started.allocations] == [
        ("CL-LOAD", "node-b", "V100", 1)]
    artifacts = {a.component_id: a for a in completed.data.artifacts}
    assert set(artifacts) == {"CL-LOAD", "CL-TRAIN"}
    assert artifacts["CL-LOAD"].prefix == "s3://avatar-staging/WL-DAG/TASK-001/CL-LOAD/"
    assert artifacts["CL-LOAD"].metrics == {"sleep_s": 0.3, "exit_code": 0, "output_bytes": 32}
    assert artifacts["CL-TRAIN"].log == "s3://avatar-logs/logs/WL-DAG/TASK-001/CL-TRAIN.log"
    assert completed.data.workload.workload_id == "WL-DAG"

    detail = (await scheduler.client.get("/workloads/WL-DAG", headers=scheduler.headers("viewer"))).json()
    assert detail["status"] == "completed"
    load, train = detail["components"]
    assert (load["component_id"], train["component_id"]) == ("CL-LOAD", "CL-TRAIN")
    assert datetime.fromisoformat(train["started_at"]) >= datetime.fromisoformat(load["finished_at"])
    assert train["allocation"]["node"] == "node-a" and train["allocation"]["gpu_indices"] == [0, 1]
    assert train["exit_code"] == 0 and train["status"] == "succeeded"

    log = await scheduler.client.get("/workloads/WL-DAG/logs", params={"component": "CL-TRAIN"},
                                     headers=scheduler.headers("viewer"))
    assert log.status_code == 200
    # the component saw the platform's ids, not the App env_vars' spoofed one, and the App's own variable
    assert "workload_id=WL-DAG" in log.text and "probe: done" in log.text
    assert await allocations(scheduler) == []
    assert component_processes("WL-DAG") == []


async def test_component_that_exits_non_zero_fails_the_workload_and_stops_the_rest(scheduler, publish, tap):
    await register(publish, scheduler, "CL-SLOW", "CL-BAD", "CL-AFTER")
    wl = workload("WL-FAIL", component("CL-SLOW", gpu_count=1, sleep_s=30),
                  component("CL-BAD", gpu_type="V100", gpu_count=1, sleep_s=0.5, exit_code=3),
                  component("CL-AFTER"), edges=[("CL-BAD", "CL-AFTER")])
    await publish("workload.approved", WorkloadApproved(workload_id=wl.workload_id, auto=True, workload=wl))

    failed = await tap.wait_for("workload.failed", "WL-FAIL")
    assert failed.data.stage == "run"
    assert failed.data.component_id == "CL-BAD"
    assert "cl-bad (CL-BAD) exited with exit code 3" in failed.data.reason
    assert failed.data.reason.endswith("error: probe exits with the requested code 3")
    assert await allocations(scheduler) == []
    assert component_processes("WL-FAIL") == []
    detail = (await scheduler.client.get("/workloads/WL-FAIL", headers=scheduler.headers("viewer"))).json()
    assert {c["component_id"]: c["status"] for c in detail["components"]} == {
        "CL-SLOW": "stopped", "CL-BAD": "failed", "CL-AFTER": "skipped"}
    assert detail["failure"]["stage"] == "run"
    assert not tap.of("workload.completed", "WL-FAIL")


async def test_component_exceeding_max_runtime_fails_the_workload_with_timeout(scheduler, publish, tap):
    await register(publish, scheduler, "CL-SLEEPY")
    wl = workload("WL-TIMEOUT", component("CL-SLEEPY", gpu_count=2, sleep_s=30), max_runtime="2s")
    await publish("workload.approved", WorkloadApproved(workload_id=wl.workload_id, auto=True, workload=wl))

    await tap.wait_for("workload.started", "WL-TIMEOUT")
    await wait_until(lambda: component_processes("WL-TIMEOUT"), message="the component process")
    failed = await tap.wait_for("workload.failed", "WL-TIMEOUT", timeout=15)
    assert failed.data.stage == "timeout"
    assert failed.data.reason == "timeout: exceeded max_runtime 2s"
    assert await allocations(scheduler) == []
    assert component_processes("WL-TIMEOUT") == []
    assert len(tap.of("workload.failed", "WL-TIMEOUT")) == 1


async def test_live_log_is_served_while_the_component_runs(scheduler, publish, tap):
    await register(publish, scheduler, "CL-TALK")
    wl = workload("WL-LIVE", component("CL-TALK", sleep_s=2.5))
    await publish("workload.approved", WorkloadApproved(workload_id=wl.workload_id, auto=True, workload=wl))
    await tap.wait_for("workload.started", "WL-LIVE")

    async def live_text():
        response = await scheduler.client.get("/workloads/WL-LIVE/logs", params={"component": "cl-talk"},
                                              headers=scheduler.headers("viewer"))
        return response.text if "left" in response.text else None

    text = await wait_until(live_text, message="live log lines")
    assert "probe: sleep_s=2.5" in text
    assert not tap.of("workload.completed", "WL-LIVE")
    followed = await scheduler.client.get("/workloads/WL-LIVE/logs", params={"component": "CL-TALK", "follow": True},
                                          headers=scheduler.headers("viewer"), timeout=20)
    assert followed.text.rstrip().endswith("probe: done")
    await tap.wait_for("workload.completed", "WL-LIVE")
    stored = await scheduler.client.get("/workloads/WL-LIVE/logs", params={"component": "CL-TALK"},
                                        headers=scheduler.headers("viewer"))
    assert stored.text == followed.text


async def test_a_round_starts_workloads_side_by_side_up_to_the_start_concurrency(scheduler_settings, publish, tap):
    """A slow start (a pod being created) must not hold back the other workloads of the round, and no
    more than scheduler_start_concurrency starts may be in flight at once."""
    async with running_service(create_app, scheduler_settings(scheduler_start_concurrency=3)) as scheduler:
        await wait_until(lambda: scheduler.app.state.scheduler.leadership.leading, message="leadership")
        await register(publish, scheduler, "CL-PROBE")
        runner = scheduler.app.state.scheduler.engine.io.runner
        original, starting, peak = runner.start, 0, 0

        async def slow_start(spec):
            nonlocal starting, peak
            starting += 1
            peak = max(peak, starting)
            try:
                await asyncio.sleep(0.3)
                return await original(spec)
            finally:
                starting -= 1

        runner.start = slow_start
        ids = [f"WL-SIDE-{i}" for i in range(8)]
        for workload_id in ids:
            await publish("workload.approved", WorkloadApproved(
                workload_id=workload_id, auto=True, workload=workload(workload_id, component("CL-PROBE"))),
                correlation_id=workload_id)
        for workload_id in ids:
            await tap.wait_for("workload.completed", workload_id)
        assert peak == 3
        assert await allocations(scheduler) == []


async def test_workloads_started_and_completed_in_one_round_each_get_their_own_events_in_their_own_trace(
        scheduler, publish, tap):
    """A round records its starts and its completions together (one transaction each); every workload
    still gets exactly one workload.started naming only its own components and one workload.completed,
    each published in that workload's trace, as a child of the round's span for that workload."""
    setup_tracing("test")
    exporter = InMemorySpanExporter()
    trace.get_tracer_provider().add_span_processor(SimpleSpanProcessor(exporter))
    await register(publish, scheduler, "CL-FIRST", "CL-THEN")
    ids = [f"WL-ROUND-{i}" for i in range(10)]
    origins = {}
    for workload_id in ids:
        wl = workload(workload_id, component("CL-FIRST"), component("CL-THEN"), edges=[("CL-FIRST", "CL-THEN")])
        with trace.get_tracer("test").start_as_current_span("POST /trainings") as request_span:
            origins[workload_id] = request_span.get_span_context().trace_id
            headers = inject_headers()
        await publish("workload.approved", WorkloadApproved(workload_id=workload_id, auto=True, workload=wl),
                      correlation_id=workload_id, headers=headers)
    for workload_id in ids:
        await tap.wait_for("workload.completed", workload_id)

    for workload_id in ids:
        assert tap.emitted(workload_id) == ["workload.queued", "workload.started", "workload.completed"]
        started = tap.of("workload.started", workload_id)[0].data
        assert [a.component_id for a in started.allocations] == ["CL-FIRST"]
        completed = tap.of("workload.completed", workload_id)[0].data
        assert {a.component_id for a in completed.artifacts} == {"CL-FIRST", "CL-THEN"}
        assert completed.workload.workload_id == workload_id

    finished = exporter.get_finished_spans()
    for workload_id, origin in origins.items():
        in_trace = [s for s in finished if s.context.trace_id == origin]
        rounds = {s.context.span_id: s.name for s in in_trace
                  if s.name in ("start workload components", "finish workload")}
        assert sorted(rounds.values()) == ["finish workload", "start workload components", "start workload components"]
        published = [s for s in in_trace if s.name.startswith("send") and s.parent.span_id in rounds]
        assert sorted(rounds[s.parent.span_id] for s in published) == ["finish workload", "start workload components"]
        assert all(s.attributes["avatar.workload_id"] == workload_id for s in in_trace if s.context.span_id in rounds)
    assert await allocations(scheduler) == []
    assert await scheduler.platform.pool.fetchval(
        "SELECT count(*) FROM runs WHERE job_id = ANY($1::text[]) AND status <> 'succeeded'", ids) == 0
    # a completion decided on a stale read (the job ended meanwhile) changes nothing and publishes nothing
    pool = scheduler.platform.pool
    job = await pool.fetchrow("SELECT * FROM jobs WHERE job_id = $1", ids[0])
    runs = await pool.fetch("SELECT * FROM runs WHERE job_id = $1", ids[0])
    await scheduler.app.state.scheduler.engine.jobs.complete(
        [(JobRecord.of({**job, "status": "running"}), [RunRecord.of(r) for r in runs])])
    assert await pool.fetchrow("SELECT * FROM jobs WHERE job_id = $1", ids[0]) == job
    assert await pool.fetchval("SELECT count(*) FROM outbox WHERE routing_key = 'workload.completed'") == len(ids)
