"""What can be asked of the scheduler: one command per state change, each with one handler (handlers.py)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from contracts.events import ComponentSnapshot, LoopTestRequested
from contracts.workload import Workload
from services.kit.messagebus import Command


@dataclass(frozen=True)
class AcceptWorkload(Command):
    """An approved workload joins the queue (or ends cancelled, when its cancel came first)."""

    workload: Workload


@dataclass(frozen=True)
class AcceptLoopTest(Command):
    """A loop test of a workload joins the queue ahead of all other work."""

    request: LoopTestRequested
    requested_at: datetime


@dataclass(frozen=True)
class CancelWorkload(Command):
    """A person cancels a workload (and any loop test of it still going): its requester or an admin.
    Waiting work ends at once; running work stops its components first."""

    workload_id: str
    by: str
    is_admin: bool = False
    role: str | None = None  # the person's role, for the audit record


@dataclass(frozen=True)
class ReorderQueue(Command):
    """QU-03: a waiting workload's new priority class, and/or a place right before or after another."""

    workload_id: str
    priority: Literal["high", "normal", "low"] | None = None
    before: str | None = None
    after: str | None = None
    by: str | None = None  # the admin who asked (recorded in the audit log); None: not a person's decision
    role: str | None = None


@dataclass(frozen=True)
class SetNodeStatus(Command):
    """RS-04: an admin drains, takes down or re-activates a node."""

    name: str
    status: Literal["Active", "Drain", "Down"]
    by: str
    role: str | None = None


@dataclass(frozen=True)
class RecordComponent(Command):
    """The library published a version of a component (registered or changed): what a spec component of
    that version runs, kept beside the versions before it (CL-05)."""

    component: ComponentSnapshot
    published_at: datetime


@dataclass(frozen=True)
class CancelResult:
    outcome: Literal["cancelled", "stopping", "terminal", "unknown", "recorded"]
    status: str | None = None
