"""The event a finished job publishes, built from its PostgreSQL rows (pure)."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from pydantic import BaseModel

from contracts.events import (ComponentAllocation, ComponentArtifacts, LoopTestCompleted, WorkloadCancelled,
                              WorkloadCompleted, WorkloadFailed)
from contracts.workload import Workload
from services.scheduler.domain import RoundRun, general_runs, rl_rewards


def workload_of(job: Mapping[str, Any]) -> Workload:
    return Workload.model_validate(job["workload"])


def allocations(runs: Sequence[Mapping[str, Any]]) -> list[ComponentAllocation]:
    return [ComponentAllocation(task_id=r["task_id"], component_id=r["component_id"], node=r["node"] or "",
                                gpu_type=r["gpu_type"] or "", gpu_indices=list(r["gpu_indices"] or []))
            for r in runs]


def artifacts(runs: Sequence[Mapping[str, Any]]) -> list[ComponentArtifacts]:
    return [ComponentArtifacts(task_id=r["task_id"], component_id=r["component_id"], name=r["name"],
                               prefix=r["output_prefix"], log=r["log_url"], metrics=dict(r["metrics"] or {}))
            for r in runs]


def terminal_event(job: Mapping[str, Any], runs: Sequence[Mapping[str, Any]],
                   component_types: Mapping[str, str]) -> tuple[str, BaseModel]:
    """(routing key, payload) for a job that just reached its outcome. A loop test only ever
    reports looptest.completed; a workload reports completed, failed or cancelled."""
    outcome = job["status"]
    if job["kind"] == "looptest":
        return "looptest.completed", looptest_completed(job, runs, component_types)
    if outcome == "completed":
        return "workload.completed", WorkloadCompleted(workload_id=job["workload_id"], artifacts=artifacts(runs),
                                                       workload=workload_of(job))
    if outcome == "cancelled":
        return "workload.cancelled", WorkloadCancelled(workload_id=job["workload_id"],
                                                       cancelled_by=job["cancelled_by"] or "unknown",
                                                       was_running=bool(job["was_running"]))
    return "workload.failed", WorkloadFailed(workload_id=job["workload_id"], stage=job["failure_stage"] or "run",
                                             reason=job["failure_reason"] or "failed",
                                             component_id=job["failure_component"])


def looptest_completed(job: Mapping[str, Any], runs: Sequence[Mapping[str, Any]],
                       component_types: Mapping[str, str]) -> LoopTestCompleted:
    failure = None if job["status"] == "completed" else (job["failure_reason"] or job["status"])
    if job["mode"] == "general":
        records = general_runs(
            [RoundRun(r["round"], r["status"], r["started_at"], r["finished_at"], r["reason"]) for r in runs],
            int(job["rounds"]), unfinished_reason=failure)
        return LoopTestCompleted(workload_id=job["workload_id"], test_run_id=job["test_run_id"], mode="general",
                                 runs=records, failure=failure)
    rewards = rl_rewards([(component_types.get(r["component_id"], "other"), r["metrics"]) for r in runs
                          if r["status"] == "succeeded"])
    return LoopTestCompleted(workload_id=job["workload_id"], test_run_id=job["test_run_id"], mode="rl",
                             rewards=rewards, failure=failure)
