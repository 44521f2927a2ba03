"""Approval rules (pure): the resource threshold, the approval request's life, and test runs.

Entities change their own state and record the events that change implies on themselves; the
handlers (handlers.py) save them through the unit of work, whose commit publishes those events.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from contracts.thresholds import Thresholds
from contracts.events import (ApprovalRequired, LoopTestCompleted, LoopTestOutcome, LoopTestRequested,
                              WorkloadApproved, WorkloadCancelled, WorkloadRejected)
from contracts.resources import format_memory
from contracts.workload import LoopTest, Workload
from services.approval import verdict
from services.kit.errors import Conflict
from services.kit.unit_of_work import Aggregate

TEST_REQUIRED = "테스트 필요"
Decision = Literal["approved", "rejected", "cancelled"]
STATUSES = ("pending", "awaiting approval", "approved", "rejected", "cancelled")
STATUS_LABELS = {"pending": "대기", "awaiting approval": "승인대기", "approved": "승인", "rejected": "반려",
                 "cancelled": "취소"}




def approval_reasons(workload: Workload, limits: Thresholds) -> list[str]:
    """Why the workload needs an admin; empty when it may run at once. Components count one by
    one, never summed: four 3-GPU components stay below a 4-GPU threshold. The requested envelope
    counts too (a request may ask for more than its largest component)."""
    reasons = []
    for task in workload.spec.tasks:
        for component in task.components:
            over = limits.reasons(component.resources.gpu_count, component.resources.memory)
            if over:
                reasons.append(f"component '{component.name}' ({component.component_id}) in {task.task_id}: "
                               + ", ".join(over))
    envelope = limits.reasons(workload.resources.gpu_count, workload.resources.memory)
    if envelope and not reasons:  # the envelope is usually the largest component's; name it only if it is the cause
        reasons.append("requested resources: " + ", ".join(envelope))
    return reasons


def loop_test_mode(workload: Workload) -> Literal["rl", "general"]:
    return "rl" if workload.is_training_request else "general"


def executed_at(moment: datetime) -> str:
    """docs/spec.md §5.2 writes "2026-02-09 14:30" (UTC here)."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M")


def resource_snapshot(workload: Workload) -> dict[str, Any]:
    """docs/spec.md §13.4: a test run keeps the spec's maximum resource values as they were at run time."""
    components = workload.spec.components()
    largest = workload.spec.largest_component()
    return {
        "max_gpu_count": max((c.resources.gpu_count for c in components), default=0),
        "max_memory": format_memory(max((c.resources.memory_bytes for c in components), default=0)),
        "largest_component": None if largest is None else {
            "component_id": largest.component_id, "name": largest.name, **largest.resources.model_dump()},
        "requested": workload.resources.model_dump(mode="json", by_alias=True),
    }


@dataclass
class TestRun:
    """One execution of the minimum run test (ST-03), kept for attaching to later requests."""

    __test__ = False  # not a pytest class

    test_run_id: str
    workload_id: str
    app_id: str
    spec_version: str
    mode: Literal["rl", "general"]
    episodes: int
    requested_by: str
    requested_at: datetime
    resources: dict[str, Any]
    loop_test: LoopTest
    completed_at: datetime | None = None
    raw: dict[str, Any] | None = None

    @property
    def status(self) -> str:
        return self.loop_test.status

    def complete(self, completed: LoopTestCompleted, now: datetime) -> bool:
        """Judge the scheduler's raw results; False when this run was already judged."""
        if self.status != "running":
            return False
        if completed.mode != self.mode:
            raise ValueError(f"test run {self.test_run_id} ran in {self.mode} mode, the result is for {completed.mode}")
        self._finish(verdict.judge(completed, self.episodes), now)
        self.raw = completed.model_dump(mode="json", exclude={"workload_id", "test_run_id"})
        return True

    def time_out(self, after_seconds: int, now: datetime) -> bool:
        if self.status != "running":
            return False
        self._finish(verdict.timed_out(self.mode, after_seconds), now)
        return True

    def _finish(self, judged: verdict.Verdict, now: datetime) -> None:
        self.loop_test = LoopTest(status="passed" if judged.passed else "failed", episodes=self.episodes,
                                  results=judged.results, executed_by=self.requested_by, executed_at=executed_at(now))
        self.completed_at = now


@dataclass
class ApprovalRequest(Aggregate):
    workload: Workload
    needs_approval: bool
    reasons: list[str]
    loop_test: LoopTest | None
    test_run_id: str | None = None
    decision: Decision | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None
    comment: str | None = None

    @classmethod
    def receive(cls, workload: Workload, limits: Thresholds, now: datetime) -> "ApprovalRequest":
        """A new training request: approved at once below the threshold, else it waits for a test and an admin."""
        reasons = approval_reasons(workload, limits)
        if not reasons:
            request = cls(workload, False, [], None, decision="approved", decided_at=now)
            request.record("workload.approved",
                   WorkloadApproved(workload_id=workload.workload_id, auto=True, workload=workload))
            return request
        request = cls(workload, True, reasons, LoopTest())
        request.record("approval.required",
               ApprovalRequired(workload_id=workload.workload_id, app_id=workload.app_id, reasons=reasons,
                                loop_test=LoopTest()))
        return request

    @property
    def workload_id(self) -> str:
        return self.workload.workload_id

    @property
    def correlation_id(self) -> str:
        return self.workload.workload_id

    @property
    def status(self) -> str:
        if self.decision is not None:
            return self.decision
        return "awaiting approval" if self.loop_test and self.loop_test.status == "passed" else "pending"

    @property
    def auto_approved(self) -> bool:
        return not self.needs_approval and self.decision == "approved"

    @property
    def warning(self) -> str | None:
        """docs/spec.md §5.2: the approve button warns until the loop test has passed."""
        if self.needs_approval and self.decision is None and self.status != "awaiting approval":
            return TEST_REQUIRED
        return None

    def may_act(self, user: str, is_admin: bool) -> bool:
        """Running or attaching a test: an admin, or the developer who requested the training."""
        return is_admin or user == self.workload.requester

    def _require_open(self, action: str) -> None:
        if not self.needs_approval:
            raise Conflict(f"{self.workload_id} was approved automatically (below the threshold); "
                           f"it has no approval step to {action}", code="auto_approved")
        if self.decision is not None:
            raise Conflict(f"cannot {action}: {self.workload_id} is already {self.decision}",
                           code="already_decided", status=self.decision)

    def start_loop_test(self, *, test_run_id: str, episodes: int, by: str, now: datetime) -> TestRun:
        self._require_open("run a loop test for")
        if self.loop_test and self.loop_test.status == "running":
            raise Conflict(f"loop test {self.test_run_id} of {self.workload_id} is still running",
                           code="test_running", test_run_id=self.test_run_id)
        mode = loop_test_mode(self.workload)
        self.loop_test = LoopTest(status="running", episodes=episodes, executed_by=by, executed_at=executed_at(now))
        self.test_run_id = test_run_id
        self.record("looptest.requested",
               LoopTestRequested(workload_id=self.workload_id, test_run_id=test_run_id, mode=mode, episodes=episodes,
                                 requested_by=by, workload=self.workload))
        return TestRun(test_run_id=test_run_id, workload_id=self.workload_id, app_id=self.workload.app_id,
                       spec_version=self.workload.spec_version, mode=mode, episodes=episodes, requested_by=by,
                       requested_at=now, resources=resource_snapshot(self.workload), loop_test=self.loop_test)

    def record_outcome(self, run: TestRun) -> bool:
        """A judged run becomes the request's loopTest, unless a newer run or attachment replaced it."""
        if run.test_run_id != self.test_run_id or run.status not in ("passed", "failed"):
            return False
        self.loop_test = run.loop_test
        self.record(f"looptest.{run.status}",
               LoopTestOutcome(workload_id=self.workload_id, test_run_id=run.test_run_id, loop_test=run.loop_test))
        return True

    def attach(self, run: TestRun) -> None:
        """The developer's earlier test result: only a passed run of the same App spec version counts."""
        self._require_open("attach a test result to")
        if run.status != "passed":
            raise Conflict(f"test run {run.test_run_id} has not passed (status {run.status}); "
                           "only a passed test can be attached", code="test_not_passed")
        if (run.app_id, run.spec_version) != (self.workload.app_id, self.workload.spec_version):
            raise Conflict(f"test run {run.test_run_id} was run for {run.app_id} version {run.spec_version}, "
                           f"not for {self.workload.app_id} version {self.workload.spec_version}",
                           code="other_spec_version")
        self.test_run_id = run.test_run_id
        self.record_outcome(run)

    def approve(self, by: str, now: datetime) -> bool:
        """False when it was already approved: approving twice publishes one approval."""
        if self.decision == "approved":
            return False
        self._require_open("approve")
        if not self.loop_test or self.loop_test.status != "passed":
            status = self.loop_test.status if self.loop_test else "pending"
            raise Conflict(f"{TEST_REQUIRED}: 최소 실행 테스트가 통과(passed)된 경우에만 승인할 수 있습니다 "
                           f"(loopTest status: {status})", code="test_required", loop_test_status=status)
        self._decide("approved", by, now)
        self.record("workload.approved",
               WorkloadApproved(workload_id=self.workload_id, auto=False, approved_by=by, workload=self.workload))
        return True

    def reject(self, by: str, comment: str, now: datetime) -> bool:
        if self.decision == "rejected":
            return False
        self._require_open("reject")
        self._decide("rejected", by, now, comment)
        self.record("workload.rejected",
               WorkloadRejected(workload_id=self.workload_id, rejected_by=by, comment=comment))
        return True

    def cancel(self, by: str, now: datetime) -> bool:
        """Before a decision the approval step owns the workload, so it ends it; once approved the
        scheduler does, and a rejected or cancelled request has nothing left to cancel."""
        if not self.needs_approval or self.decision is not None:
            return False
        self._decide("cancelled", by, now)
        self.record("workload.cancelled",
               WorkloadCancelled(workload_id=self.workload_id, cancelled_by=by, was_running=False))
        return True

    def _decide(self, decision: Decision, by: str, now: datetime, comment: str | None = None) -> None:
        self.decision, self.decided_by, self.decided_at, self.comment = decision, by, now, comment
