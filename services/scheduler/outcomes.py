"""The event a finished job publishes, built from its records, and loop-test results (pure)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Mapping, Sequence

from pydantic import BaseModel

from contracts.events import (ComponentAllocation, ComponentArtifacts, LoopTestCompleted, RunRecord as RoundRecord,
                              WorkloadCancelled, WorkloadCompleted, WorkloadFailed)
from contracts.workload import Workload
from services.scheduler.records import JobRecord, RunRecord


def workload_of(job: JobRecord) -> Workload:
    return Workload.model_validate(job.workload)


def allocations(runs: Sequence[RunRecord]) -> list[ComponentAllocation]:
    return [ComponentAllocation(task_id=r.task_id, component_id=r.component_id, node=r.node or "",
                                gpu_type=r.gpu_type or "", gpu_indices=list(r.gpu_indices or []))
            for r in runs]


def artifacts(runs: Sequence[RunRecord]) -> list[ComponentArtifacts]:
    return [ComponentArtifacts(task_id=r.task_id, component_id=r.component_id, name=r.name,
                               prefix=r.output_prefix, log=r.log_url, metrics=dict(r.metrics or {}))
            for r in runs]


def terminal_event(job: JobRecord, runs: Sequence[RunRecord],
                   component_types: Mapping[str, str]) -> tuple[str, BaseModel]:
    """(routing key, payload) for a job that just reached its outcome. A loop test only ever
    reports looptest.completed; a workload reports completed, failed or cancelled."""
    outcome = job.status
    if job.kind == "looptest":
        return "looptest.completed", looptest_completed(job, runs, component_types)
    if outcome == "completed":
        return "workload.completed", WorkloadCompleted(workload_id=job.workload_id, artifacts=artifacts(runs),
                                                       workload=workload_of(job))
    if outcome == "cancelled":
        return "workload.cancelled", WorkloadCancelled(workload_id=job.workload_id,
                                                       cancelled_by=job.cancelled_by or "unknown",
                                                       was_running=bool(job.was_running))
    return "workload.failed", WorkloadFailed(workload_id=job.workload_id, stage=job.failure_stage or "run",
                                             reason=job.failure_reason or "failed",
                                             component_id=job.failure_component)


def looptest_completed(job: JobRecord, runs: Sequence[RunRecord],
                       component_types: Mapping[str, str]) -> LoopTestCompleted:
    failure = None if job.status == "completed" else (job.failure_reason or job.status)
    if job.mode == "general":
        records = general_runs(
            [RoundRun(r.round, r.status, r.started_at, r.finished_at, r.reason) for r in runs],
            int(job.rounds), unfinished_reason=failure)
        return LoopTestCompleted(workload_id=job.workload_id, test_run_id=job.test_run_id, mode="general",
                                 runs=records, failure=failure)
    rewards = rl_rewards([(component_types.get(r.component_id, "other"), r.metrics) for r in runs
                          if r.status == "succeeded"])
    return LoopTestCompleted(workload_id=job.workload_id, test_run_id=job.test_run_id, mode="rl",
                             rewards=rewards, failure=failure)


# ---------------------------------------------------------------- loop-test results

def rl_rewards(metrics: Sequence[tuple[str, Mapping[str, Any] | None]]) -> list[float]:
    """The trainer's per-episode rewards: the first metrics.json with a numeric `rewards` list,
    preferring components of library type `trainer`. `metrics` = [(component type, metrics)]."""
    ordered = sorted(metrics, key=lambda item: item[0] != "trainer")
    for _, m in ordered:
        rewards = (m or {}).get("rewards")
        if isinstance(rewards, list) and rewards and all(
                isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in rewards):
            return [float(x) for x in rewards]
    return []


@dataclass(frozen=True)
class RoundRun:
    round: int
    status: str
    started_at: datetime | None
    finished_at: datetime | None
    reason: str | None = None


def general_runs(runs: Iterable[RoundRun], rounds: int, *, unfinished_reason: str | None = None) -> list[RoundRecord]:
    """One record per round: success when every component succeeded; duration from the first
    start to the last end. Rounds that never ran are reported failed with `unfinished_reason`."""
    by_round: dict[int, list[RoundRun]] = {}
    for run in runs:
        by_round.setdefault(run.round, []).append(run)
    records = []
    for round_ in range(1, rounds + 1):
        items = by_round.get(round_, [])
        starts = [r.started_at for r in items if r.started_at]
        ends = [r.finished_at for r in items if r.finished_at]
        duration = (max(ends) - min(starts)).total_seconds() if starts and ends else 0.0
        success = bool(items) and all(r.status == "succeeded" for r in items)
        reason = None
        if not success:
            reason = next((r.reason for r in items if r.reason), None) or unfinished_reason or "did not run"
        records.append(RoundRecord(run=round_, success=success, duration_s=round(max(0.0, duration), 3),
                                 reason=reason))
    return records
