"""The Job aggregate: what each transition allows, what it changes and which event it records (pure)."""
from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from services.scheduler.domain import Job, TransitionRefused
from services.scheduler.records import JobRecord, RunRecord
from tests.unit.scheduler_service.fakes import NOW, T0, component, looptest, workload


def waiting_job(*components, **values) -> Job:
    job = Job.accept_workload(workload("WL-1", *(components or (component("C1"), component("C2")))),
                              staging_bucket="stg", trace_headers={"traceparent": "00-x"})
    job.events.clear()
    if values:
        job.state = replace(job.state, **values)
    return job


def runs_of(job: Job, **values) -> list[RunRecord]:
    return [RunRecord(run_id=p.run_id, job_id=job.job_id, round=p.round, seq=p.seq, task_id=p.task_id,
                      component_id=p.component_id, name=p.name, output_prefix=p.output_prefix, **values)
            for p in job.planned]


def types(job: Job) -> list[str]:
    return [e.type for e in job.events]


def test_an_accepted_workload_waits_with_its_planned_runs_and_records_workload_queued():
    job = Job.accept_workload(workload("WL-1", component("C1"), component("C2"), priority="low"),
                              staging_bucket="stg", trace_headers={"traceparent": "00-x"})
    assert (job.status, job.kind, job.state.priority, job.state.trace_headers) == (
        "waiting", "workload", "low", {"traceparent": "00-x"})
    assert [(p.run_id, p.output_prefix) for p in job.planned] == [
        ("WL-1/1/T1/C1", "s3://stg/WL-1/T1/C1/"), ("WL-1/1/T1/C2", "s3://stg/WL-1/T1/C2/")]
    assert types(job) == ["workload.queued"] and job.events[0].correlation_id == "WL-1"


def test_a_loop_test_is_its_own_job_of_the_workload_with_rounds_and_a_runtime_limit_per_round():
    job = Job.accept_looptest(looptest(workload("WL-1", component("C1")), mode="general", episodes=4), NOW,
                              staging_bucket="stg", trace_headers={})
    assert (job.job_id, job.correlation_id, job.state.rounds, job.state.max_runtime_s) == (
        "LT:WL-1:TR-1", "WL-1", 4, 4 * 7200)
    assert job.planned[-1].output_prefix == "s3://stg/WL-1/looptest/TR-1/run-4/T1/C1/"


def test_starting_a_waiting_workload_runs_it_and_announces_where_its_first_components_run():
    job = waiting_job()
    placed = [replace(runs_of(job)[0], node="node-a", gpu_type="A100", gpu_indices=[2])]
    job.start(placed, NOW + timedelta(hours=2))
    assert (job.status, job.state.deadline) == ("running", NOW + timedelta(hours=2))
    [started] = job.events
    assert started.type == "workload.started"
    assert [(a.component_id, a.node, a.gpu_indices) for a in started.data.allocations] == [("C1", "node-a", [2])]


def test_a_loop_test_starts_without_announcing_it_and_nothing_starts_twice():
    job = Job.accept_looptest(looptest(workload("WL-1", component("C1"))), NOW, staging_bucket="stg",
                              trace_headers={})
    job.events.clear()
    job.start([], NOW)
    assert job.status == "running" and job.events == []
    with pytest.raises(TransitionRefused):
        job.start([], NOW)


def test_stopping_records_the_outcome_first_and_remembers_whether_anything_ran():
    job = waiting_job(status="running")
    job.begin_stopping("failed", stage="timeout", reason="timeout: exceeded max_runtime 2h")
    assert (job.status, job.state.outcome, job.state.failure_stage, job.state.was_running) == (
        "stopping", "failed", "timeout", True)
    assert job.events == []  # the terminal event comes once the compensation is done
    with pytest.raises(TransitionRefused, match="already ending"):
        job.begin_stopping("cancelled", stage="cancel", cancelled_by="kim")
    with pytest.raises(TransitionRefused, match="not an outcome"):
        waiting_job().begin_stopping("stopping")


def test_finishing_publishes_the_outcome_recorded_when_it_began_stopping():
    job = waiting_job(status="running")
    job.begin_stopping("cancelled", stage="cancel", reason="cancelled by kim", cancelled_by="kim")
    job.finish(runs_of(job, status="stopped"), {})
    assert job.status == "cancelled"
    [cancelled] = job.events
    assert cancelled.type == "workload.cancelled"
    assert (cancelled.data.cancelled_by, cancelled.data.was_running) == ("kim", True)


def test_only_a_stopping_job_finishes():
    with pytest.raises(TransitionRefused, match="only a stopping job finishes"):
        waiting_job(status="running").finish([], {})


def test_a_failed_loop_test_reports_looptest_completed_never_as_the_workload():
    job = Job.accept_looptest(looptest(workload("WL-1", component("C1")), mode="rl", episodes=3), NOW,
                              staging_bucket="stg", trace_headers={})
    job.events.clear()
    job.start([], NOW)
    job.begin_stopping("failed", stage="run", reason="component c1 (C1) exited with exit code 1", component_id="C1")
    job.finish(runs_of(job, status="failed"), {})
    [report] = job.events
    assert report.type == "looptest.completed"
    assert (report.data.mode, report.data.failure, report.data.rewards) == (
        "rl", "component c1 (C1) exited with exit code 1", [])


def test_a_running_job_whose_runs_are_all_done_completes_with_its_artifacts():
    job = waiting_job(status="running", started_at=T0)
    job.complete(runs_of(job, status="succeeded", log_url="s3://logs/x.log", metrics={"loss": 0.1}), {})
    assert (job.status, job.state.outcome, job.state.was_running) == ("completed", "completed", True)
    [completed] = job.events
    assert completed.type == "workload.completed"
    assert [(a.component_id, a.metrics) for a in completed.data.artifacts] == [("C1", {"loss": 0.1}),
                                                                               ("C2", {"loss": 0.1})]


def test_a_job_completes_only_while_running_and_only_when_nothing_is_left_to_run():
    job = waiting_job(status="running")
    runs = runs_of(job, status="succeeded")
    with pytest.raises(TransitionRefused, match="still has runs to do"):
        job.complete([runs[0], replace(runs[1], status="running")], {})
    stopping = waiting_job(status="stopping", outcome="cancelled")
    with pytest.raises(TransitionRefused, match="only a running job completes"):
        stopping.complete(runs, {})
    assert job.events == [] and stopping.events == []


def test_waiting_work_is_cancelled_at_once_running_work_is_not():
    job = waiting_job()
    job.cancel_waiting("kim")
    assert (job.status, job.state.cancelled_by, job.state.failure_stage, job.state.was_running) == (
        "cancelled", "kim", "cancel", False)
    assert types(job) == ["workload.cancelled"]
    with pytest.raises(TransitionRefused):
        waiting_job(status="running").cancel_waiting("kim")


def test_a_cancel_kept_before_the_approval_takes_the_approved_workload_and_ends_cancelled():
    tombstone = Job.cancelled_before_approval("WL-1", "kim", NOW)
    assert tombstone.is_tombstone and tombstone.events == []
    tombstone.approve_after_cancel(workload("WL-1", component("C1"), requester="ann"))
    assert (tombstone.status, tombstone.state.requester, tombstone.state.cancelled_by) == ("cancelled", "ann", "kim")
    assert tombstone.state.workload["workloadId"] == "WL-1"
    assert types(tombstone) == ["workload.cancelled"] and tombstone.events[0].data.was_running is False
    with pytest.raises(TransitionRefused):
        tombstone.approve_after_cancel(workload("WL-1", component("C1")))  # it has its workload now


def test_a_run_ends_with_a_final_status_only_and_only_as_a_run_of_its_own_job():
    job = waiting_job(status="running")
    run = replace(runs_of(job)[0], status="running", exit_code=None)
    ended = job.end_run(run, "failed", exit_code=3, last_line="boom", reason="component c1 (C1) exited")
    assert (ended.status, ended.exit_code, ended.last_line, ended.run_id) == ("failed", 3, "boom", run.run_id)
    with pytest.raises(TransitionRefused, match="not how a run ends"):
        job.end_run(run, "running", reason=None)
    other = replace(run, job_id="WL-2")
    with pytest.raises(TransitionRefused, match="not a run of job"):
        job.end_run(other, "stopped", reason="stopped")


def test_records_are_built_from_rows_by_column_name():
    row = {"job_id": "WL-1", "kind": "workload", "workload_id": "WL-1", "status": "waiting", "priority": "high",
           "unknown_column": 1}
    assert JobRecord.of(row) == JobRecord(job_id="WL-1", kind="workload", workload_id="WL-1", status="waiting",
                                          priority="high")
