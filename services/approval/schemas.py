"""What the approval HTTP API reads and answers: request bodies and response shapes."""
from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
from pydantic import BaseModel, ConfigDict, Field, field_validator

from contracts.resources import Memory, parse_memory
from contracts.workload import LoopTest
from services.approval.domain import STATUS_LABELS, TEST_REQUIRED, ApprovalRequest, TestRun

_FORBID = ConfigDict(extra="forbid")


class ThresholdsBody(BaseModel):
    model_config = _FORBID
    gpu_count: int = Field(ge=1, le=1024, description="a component with this many GPUs or more needs approval")
    memory: Memory = Field(description="a component with this much memory or more needs approval, e.g. '128GB'")

    @field_validator("memory")
    @classmethod
    def _positive(cls, value: str) -> str:
        if parse_memory(value) <= 0:
            raise ValueError("the memory threshold must be above zero")
        return value


class ThresholdsView(BaseModel):
    gpu_count: int
    memory: str
    updated_by: str | None
    updated_at: datetime


class LoopTestBody(BaseModel):
    model_config = _FORBID
    episodes: int | None = Field(default=None, ge=1, le=1000,
                                 description="RL: episodes (at least 3, default 10); general: repeated runs (default 5)")


class AttachBody(BaseModel):
    model_config = _FORBID
    test_run_id: str = Field(min_length=1, max_length=64)


class RejectBody(BaseModel):
    model_config = _FORBID
    comment: str = Field(min_length=1, max_length=2000, description="why (recorded; required)")

    @field_validator("comment")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a rejection needs a comment saying why")
        return value.strip()


def _loop_test(value: LoopTest | dict[str, Any] | None) -> dict[str, Any] | None:
    if isinstance(value, LoopTest):
        return value.model_dump(mode="json", by_alias=True)
    return value


class ApprovalSummary(BaseModel):
    workload_id: str
    app_id: str
    spec_version: str
    name: str
    requester: str
    priority: str
    submitted_at: datetime
    status: str
    status_label: str
    needs_approval: bool
    auto_approved: bool
    reasons: list[str]
    loop_test_status: str | None
    test_run_id: str | None
    decided_by: str | None
    decided_at: datetime | None
    resources: dict[str, Any]
    warning: str | None = Field(description=f'"{TEST_REQUIRED}" while the loop test has not passed')


class ApprovalDetail(ApprovalSummary):
    comment: str | None
    approvable: bool
    loop_test: dict[str, Any] | None = Field(description="docs/spec.md §5.2 loopTest")
    workload: dict[str, Any] = Field(description="the workload (docs/spec.md §4.3) with needsApproval and loopTest")


class TestRunView(BaseModel):
    __test__ = False  # not a pytest class

    test_run_id: str
    workload_id: str
    app_id: str
    spec_version: str
    mode: str
    episodes: int
    status: str
    requested_by: str
    requested_at: datetime
    completed_at: datetime | None
    resources: dict[str, Any] = Field(description="the resources at run time (docs/spec.md §13.4)")
    loop_test: dict[str, Any]


def summary_row(row: asyncpg.Record) -> ApprovalSummary:
    loop_test = row["loop_test"]
    decided = row["status"] in ("approved", "rejected", "cancelled")
    return ApprovalSummary(
        workload_id=row["workload_id"], app_id=row["app_id"], spec_version=row["spec_version"], name=row["name"] or "",
        requester=row["requester"], priority=row["priority"], submitted_at=row["submitted_at"], status=row["status"],
        status_label=STATUS_LABELS[row["status"]], needs_approval=row["needs_approval"],
        auto_approved=not row["needs_approval"], reasons=row["reasons"],
        loop_test_status=loop_test["status"] if loop_test else None, test_run_id=row["test_run_id"],
        decided_by=row["decided_by"], decided_at=row["decided_at"], resources=row["resources"],
        warning=TEST_REQUIRED if row["needs_approval"] and not decided and row["status"] != "awaiting approval"
        else None)


def detail(request: ApprovalRequest) -> ApprovalDetail:
    workload = request.workload
    loop_test = _loop_test(request.loop_test)
    wire = workload.to_wire()
    wire["needsApproval"] = request.needs_approval
    if loop_test is not None:
        wire["loopTest"] = loop_test
    return ApprovalDetail(
        workload_id=workload.workload_id, app_id=workload.app_id, spec_version=workload.spec_version,
        name=workload.name, requester=workload.requester, priority=workload.priority,
        submitted_at=workload.submitted_at, status=request.status, status_label=STATUS_LABELS[request.status],
        needs_approval=request.needs_approval, auto_approved=request.auto_approved, reasons=request.reasons,
        loop_test_status=request.loop_test.status if request.loop_test else None, test_run_id=request.test_run_id,
        decided_by=request.decided_by, decided_at=request.decided_at,
        resources=workload.resources.model_dump(mode="json", by_alias=True), warning=request.warning,
        comment=request.comment, approvable=request.status == "awaiting approval", loop_test=loop_test,
        workload=wire)


def run_view(run: TestRun) -> TestRunView:
    return TestRunView(
        test_run_id=run.test_run_id, workload_id=run.workload_id, app_id=run.app_id, spec_version=run.spec_version,
        mode=run.mode, episodes=run.episodes, status=run.status, requested_by=run.requested_by,
        requested_at=run.requested_at, completed_at=run.completed_at, resources=run.resources,
        loop_test=_loop_test(run.loop_test) or {})
