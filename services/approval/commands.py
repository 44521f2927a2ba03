"""What a person or a sweep asks the approval service to do (each has one handler in handlers.py)."""
from __future__ import annotations

from dataclasses import dataclass

from services.kit.messagebus import Command


@dataclass(frozen=True)
class SetThresholds(Command):
    gpu_count: int
    memory: str
    by: str
    role: str | None = None  # the deciding user's role, for the audit record


@dataclass(frozen=True)
class RunLoopTest(Command):
    """Start the minimum run test (AP-03); `episodes` None takes the service's default for the mode."""

    workload_id: str
    by: str
    is_admin: bool
    episodes: int | None = None
    role: str | None = None


@dataclass(frozen=True)
class AttachTestRun(Command):
    workload_id: str
    test_run_id: str
    by: str
    is_admin: bool
    role: str | None = None


@dataclass(frozen=True)
class ApproveRequest(Command):
    workload_id: str
    by: str
    role: str | None = None


@dataclass(frozen=True)
class RejectRequest(Command):
    workload_id: str
    by: str
    comment: str
    role: str | None = None


@dataclass(frozen=True)
class FailOverdueTests(Command):
    """Fail every loop test still running after `timeout_seconds`, so a lost result never blocks a request."""

    timeout_seconds: int
