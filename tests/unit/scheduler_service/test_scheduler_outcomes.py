"""The event a finished job publishes (pure: records in, payload out)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from contracts.resources import Resources
from contracts.spec import AppSpec, ImageRef, SpecComponent, SpecTask
from contracts.workload import RequestedResources, Workload
from services.scheduler.outcomes import terminal_event
from services.scheduler.records import JobRecord, RunRecord

T0 = datetime(2026, 2, 9, 9, 0, tzinfo=timezone.utc)
APP = AppSpec(app_id="APP-1", name="app", version="1", created_at=T0, tasks=[SpecTask(
    task_id="T1", name="t", components=[SpecComponent(
        component_id="C1", name="rl-agent", image=ImageRef(registry="r", tag="1"),
        resources=Resources(gpu_type="A100", gpu_count=1, memory="1GB"))])])
WORKLOAD = Workload(workload_id="WL-1", app_id="APP-1", spec_version="1", requester="kim", submitted_at=T0,
                    resources=RequestedResources(gpu_type="A100", gpu_count=1, memory="1GB"), spec=APP).to_wire()


def job(**values):
    row = dict(job_id="WL-1", kind="workload", workload_id="WL-1", test_run_id=None, mode=None, rounds=1,
               workload=WORKLOAD, status="completed", failure_stage=None, failure_reason=None,
               failure_component=None, cancelled_by=None, was_running=False)
    row.update(values)
    return JobRecord(**row)


def run(**values):
    row = dict(task_id="T1", component_id="C1", name="rl-agent", round=1, status="succeeded",
               output_prefix="s3://stg/WL-1/T1/C1/", log_url="s3://logs/logs/WL-1/T1/C1.log",
               metrics={"rewards": [1.0, 2.0]}, started_at=T0, finished_at=T0 + timedelta(seconds=2), reason=None)
    row.update(values)
    return RunRecord(run_id=f"WL-1/{row['round']}/T1/C1", job_id="WL-1", **row)


def test_a_completed_workload_lists_each_components_artifacts_and_metrics():
    event_type, payload = terminal_event(job(), [run()], {})
    assert event_type == "workload.completed"
    assert payload.artifacts[0].model_dump() == {
        "task_id": "T1", "component_id": "C1", "name": "rl-agent", "prefix": "s3://stg/WL-1/T1/C1/",
        "log": "s3://logs/logs/WL-1/T1/C1.log", "metrics": {"rewards": [1.0, 2.0]}}
    assert payload.workload.workload_id == "WL-1"


def test_failed_and_cancelled_workloads_carry_stage_reason_and_who():
    event_type, payload = terminal_event(job(status="failed", failure_stage="timeout",
                                             failure_reason="timeout: exceeded max_runtime 2s"), [run()], {})
    assert event_type == "workload.failed"
    assert (payload.stage, payload.reason, payload.component_id) == ("timeout", "timeout: exceeded max_runtime 2s", None)
    event_type, payload = terminal_event(job(status="cancelled", cancelled_by="admin", was_running=True), [], {})
    assert event_type == "workload.cancelled" and payload.cancelled_by == "admin" and payload.was_running


def test_a_loop_test_only_ever_reports_looptest_completed():
    lt = dict(kind="looptest", job_id="LT:WL-1:TR-1", test_run_id="TR-1", mode="rl")
    event_type, payload = terminal_event(job(**lt), [run()], {"C1": "trainer"})
    assert event_type == "looptest.completed"
    assert (payload.rewards, payload.failure) == ([1.0, 2.0], None)
    event_type, payload = terminal_event(job(**lt, status="failed", failure_reason="component x exited"),
                                         [run(status="failed", metrics=None)], {})
    assert event_type == "looptest.completed" and payload.failure == "component x exited" and payload.rewards == []
    general = dict(lt, mode="general", rounds=2)
    event_type, payload = terminal_event(job(**general), [run(), run(round=2)], {})
    assert [(r.run, r.success, r.duration_s) for r in payload.runs] == [(1, True, 2.0), (2, True, 2.0)]
