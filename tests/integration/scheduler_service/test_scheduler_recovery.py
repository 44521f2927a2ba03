"""Crash/restart, resources and tracing."""
from __future__ import annotations

import os
import signal

import asyncpg
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from contracts.events import WorkloadApproved
from services.kit.telemetry import inject_headers, setup_tracing
from services.scheduler.main import create_app
from tests.integration.scheduler_service.support import (allocations, component, component_processes, register,
                                                         workload)
from tests.support.infra import wait_until
from tests.support.services import running_service


async def test_a_restarted_scheduler_adopts_live_runs_and_collects_those_that_ended_meanwhile(
        scheduler_settings, publish, tap):
    settings = scheduler_settings()
    long = workload("WL-LONG", component("CL-PROBE", gpu_count=1, sleep_s=4.0))
    short = workload("WL-SHORT", component("CL-PROBE", gpu_count=1, sleep_s=1.0))
    async with running_service(create_app, settings) as first:
        await wait_until(lambda: first.app.state.scheduler.leadership.leading, message="leadership")
        await register(publish, first, "CL-PROBE")
        for wl in (long, short):
            await publish("workload.approved", WorkloadApproved(workload_id=wl.workload_id, auto=True, workload=wl))
        for wl in (long, short):
            await tap.wait_for("workload.started", wl.workload_id)
            await wait_until(lambda: component_processes(wl.workload_id), message="the component process")
    # the scheduler is gone, its runs are not: the short one ends while nobody watches
    assert component_processes("WL-LONG")
    await wait_until(lambda: not component_processes("WL-SHORT"), timeout=10, message="the short run's end")
    async with running_service(create_app, settings) as second:
        for wl in (long, short):
            completed = await tap.wait_for("workload.completed", wl.workload_id, timeout=30)
            assert completed.data.artifacts[0].metrics["sleep_s"] == wl.spec.tasks[0].components[0].params["sleep_s"]
            detail = (await second.client.get(f"/workloads/{wl.workload_id}", headers=second.headers("viewer"))).json()
            assert detail["components"][0]["attempt"] == 1  # adopted or collected, not run again
            assert detail["components"][0]["exit_code"] == 0
            assert tap.emitted(wl.workload_id) == ["workload.queued", "workload.started", "workload.completed"]
        assert await allocations(second) == []
        log = await second.client.get("/workloads/WL-SHORT/logs", headers=second.headers("viewer"))
        assert "probe: done" in log.text


async def test_a_run_that_died_while_no_scheduler_watched_runs_again_with_the_reason_recorded(
        scheduler_settings, publish, tap, fresh):
    settings = scheduler_settings()
    wl = workload("WL-DIED", component("CL-PROBE", gpu_count=1, sleep_s=1.0))
    async with running_service(create_app, settings) as first:
        await wait_until(lambda: first.app.state.scheduler.leadership.leading, message="leadership")
        await register(publish, first, "CL-PROBE")
        await publish("workload.approved", WorkloadApproved(workload_id="WL-DIED", auto=True, workload=wl))
        await tap.wait_for("workload.started", "WL-DIED")
        await wait_until(lambda: component_processes("WL-DIED"), message="the component process")
    for pid in component_processes("WL-DIED"):  # it dies with its machine: no exit status anywhere
        os.kill(pid, signal.SIGKILL)
    await wait_until(lambda: not component_processes("WL-DIED"), timeout=10, message="the run's death")
    async with running_service(create_app, settings):
        await tap.wait_for("workload.completed", "WL-DIED", timeout=30)
        conn = await asyncpg.connect(fresh.postgres_url)
        try:
            attempt, reason = await conn.fetchrow("SELECT attempt, rerun_reason FROM scheduler.runs"
                                                  " WHERE job_id = 'WL-DIED'")
        finally:
            await conn.close()
        assert attempt == 2 and reason.startswith("rerun: ")
    assert tap.emitted("WL-DIED") == ["workload.queued", "workload.started", "workload.completed"]


async def test_resources_show_allocated_and_measured_use_per_gpu_type_and_workload(scheduler, publish, tap):
    await register(publish, scheduler, "CL-PROBE")
    wl = workload("WL-RES", component("CL-PROBE", gpu_count=1, memory="2GB", sleep_s=3))
    await publish("workload.approved", WorkloadApproved(workload_id="WL-RES", auto=True, workload=wl))
    await tap.wait_for("workload.started", "WL-RES")
    viewer = scheduler.headers("viewer")

    async def measured():
        body = (await scheduler.client.get("/resources", headers=viewer)).json()
        return body if body["memory"]["used_bytes"] else None

    body = await wait_until(measured, message="a usage sample")
    a100 = next(g for g in body["gpus"] if g["gpu_type"] == "A100")
    assert (a100["total"], a100["allocated"], a100["idle"], a100["used"]) == (2, 1, 1, None)
    assert body["memory"]["total"] == "128GB" and body["memory"]["allocated"] == "2GB"
    assert 0 < body["memory"]["used_bytes"] < 2 * 10**9  # measured RSS, not the 2GB allocation
    assert body["cpu"]["total"] == 16 and body["cpu"]["allocated"] == 1 and body["cpu"]["used"] is not None
    assert body["gpu"] == {"total": 3, "allocated": 1, "used": None, "idle": 2}

    per_workload = (await scheduler.client.get("/resources/workloads", headers=viewer)).json()["items"]
    assert [(w["workload_id"], w["allocated"]["gpus"], w["allocated"]["memory_bytes"]) for w in per_workload] == [
        ("WL-RES", 1, 2 * 10**9)]
    assert per_workload[0]["used"]["memory_bytes"] > 0 and per_workload[0]["used"]["gpus"] is None
    await scheduler.client.post("/workloads/WL-RES/cancel", headers=scheduler.headers())
    await tap.wait_for("workload.cancelled", "WL-RES")


async def test_each_component_run_is_a_span_in_the_requests_trace(scheduler, publish, tap):
    setup_tracing("test")
    exporter = InMemorySpanExporter()
    trace.get_tracer_provider().add_span_processor(SimpleSpanProcessor(exporter))
    await register(publish, scheduler, "CL-OK", "CL-BAD")
    wl = workload("WL-TRACE", component("CL-OK"), component("CL-BAD", exit_code=2), edges=[("CL-OK", "CL-BAD")])
    with trace.get_tracer("test").start_as_current_span("POST /trainings") as request_span:
        origin = request_span.get_span_context().trace_id
        headers = inject_headers()
    await publish("workload.approved", WorkloadApproved(workload_id="WL-TRACE", auto=True, workload=wl),
                  correlation_id="WL-TRACE", headers=headers)
    await tap.wait_for("workload.failed", "WL-TRACE")

    spans = {s.name: s for s in exporter.get_finished_spans() if s.context.trace_id == origin}
    ok, bad = spans["run component cl-ok"], spans["run component cl-bad"]
    assert ok.attributes["avatar.workload_id"] == "WL-TRACE" and ok.attributes["avatar.exit_code"] == 0
    assert ok.attributes["avatar.node"] == "node-b" and ok.status.status_code == trace.StatusCode.UNSET
    assert bad.attributes["avatar.exit_code"] == 2 and bad.status.status_code == trace.StatusCode.ERROR
    assert ok.parent.span_id == spans["process avatar.events"].context.span_id


async def test_one_of_two_replicas_leads_and_a_standby_takes_over(scheduler_settings, publish, tap):
    settings = scheduler_settings()
    contexts = [running_service(create_app, settings), running_service(create_app, settings)]
    replicas = [await c.__aenter__() for c in contexts]
    try:
        await wait_until(lambda: any(r.app.state.scheduler.leadership.leading for r in replicas), message="a leader")
        assert [r.app.state.scheduler.leadership.leading for r in replicas].count(True) == 1
        index = next(i for i, r in enumerate(replicas) if r.app.state.scheduler.leadership.leading)
        standby = replicas[1 - index]
        await register(publish, standby, "CL-PROBE")
        wl = workload("WL-HA", component("CL-PROBE", gpu_count=1, sleep_s=1.5))
        await publish("workload.approved", WorkloadApproved(workload_id="WL-HA", auto=True, workload=wl))
        await tap.wait_for("workload.started", "WL-HA")

        await contexts[index].__aexit__(None, None, None)  # the leader goes away mid-run
        contexts[index] = None
        await wait_until(lambda: standby.app.state.scheduler.leadership.leading, timeout=10, message="failover")
        await tap.wait_for("workload.completed", "WL-HA", timeout=30)
        assert tap.emitted("WL-HA") == ["workload.queued", "workload.started", "workload.completed"]
        assert await allocations(standby) == [] and component_processes("WL-HA") == []
    finally:
        for context in contexts:
            if context is not None:
                await context.__aexit__(None, None, None)


async def test_metrics_show_queue_depth_and_gpus_by_state(scheduler, publish, tap):
    await register(publish, scheduler, "CL-PROBE")
    await publish("workload.approved", WorkloadApproved(
        workload_id="WL-M", auto=True, workload=workload("WL-M", component("CL-PROBE", gpu_count=1))))
    await tap.wait_for("workload.completed", "WL-M")
    text = (await scheduler.client.get("/metrics")).text
    assert 'avatar_queue_depth{priority="high"} 0.0' in text
    assert 'avatar_gpus{gpu_type="A100",state="idle"} 2.0' in text
    assert 'avatar_workloads_total{event="completed",service="scheduler"}' in text
    assert 'avatar_saga_step_seconds_count{step="queue_wait"}' in text
