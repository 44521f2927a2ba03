"""A person's decision, recorded by the service that makes it (AU-04).

`record_decision` adds an `audit.recorded` event to the decision's unit of work (or to the aggregate it
changed), so it reaches the outbox in the same transaction as the change: a decision rolled back leaves
no record, a committed one always has one. The gateway consumes the events into its append-only log.
`before`/`after` hold only the fields the decision changed (never a whole spec, never a secret's value).
The HTTP request's `X-Request-ID` and trace id come from services/kit/request_id.py.
"""
from __future__ import annotations

import hashlib
from typing import Any, Iterable

from pydantic import TypeAdapter, ValidationError

from contracts.events import AuditRecorded, AuditState
from contracts.topology import AUDIT
from services.kit.auth import Principal
from services.kit.request_id import request_identity
from services.kit.unit_of_work import AbstractUnitOfWork, Aggregate

MAX_CORRELATION = 64  # the envelope's correlation_id (contracts/events.py Event)
MAX_COMMENT = 2000
_STATE = TypeAdapter(AuditState)

# Every decision a service records, so the audit log's readers (the gateway's filters, docs) can list them.
DECISIONS: dict[str, str] = {
    "approval.loop_test_run": "the minimum run test of a workload was started",
    "approval.loop_test_attach": "an earlier passed test run was attached to a workload",
    "approval.approve": "an admin approved a workload",
    "approval.reject": "an admin rejected a workload (with the comment)",
    "approval.threshold_change": "the approval thresholds changed",
    "scheduler.priority_change": "a waiting workload's priority class changed (before/after position)",
    "scheduler.queue_move": "a waiting workload was placed before or after another (before/after position)",
    "scheduler.cancel": "a waiting or running workload was cancelled",
    "scheduler.node_drain": "a node was drained",
    "scheduler.node_down": "a node was taken down",
    "scheduler.node_activate": "a node was activated again",
    "trainer.cancel_request": "someone asked to cancel a training request",
    "models.alias_move": "an App's model alias was pointed at another model",
    "models.alias_rollback": "an App's model alias was returned to its previous model",
    "builder.env_vars_change": "an App's env vars or secrets changed (names only, never a value)",
    "builder.owner_transfer": "an App was given to another owner",
    "library.component_update": "a component was published in a new version",
    "library.owner_transfer": "a component was given to another owner",
}


def correlation_for(target_id: str) -> str:
    """The target id as an envelope correlation id: itself when short enough, else a stable digest of it."""
    if len(target_id) <= MAX_CORRELATION:
        return target_id
    return target_id[:MAX_CORRELATION - 17] + "~" + hashlib.sha256(target_id.encode()).hexdigest()[:16]


def fit(state: dict[str, Any] | None) -> dict[str, Any] | None:
    """`state` when it is within an audit record's bounds, else only the names of its fields: a decision
    is never refused because its record would be too large (e.g. an App with hundreds of env vars)."""
    if state is None:
        return None
    try:
        return _STATE.validate_python(state)
    except ValidationError:
        return {"omitted": "too large to record", "fields": list_of(state, limit=20)}  # 20 x 128 fit


def list_of(names: Iterable[Any], *, limit: int = 40) -> list[str]:
    """Sorted names, at most `limit` of them (and then a last entry saying how many were left out)."""
    ordered = sorted(str(name)[:128] for name in names)
    if len(ordered) <= limit:
        return ordered
    return ordered[:limit - 1] + [f"... {len(ordered) - limit + 1} more"]


def decision(*, action: str, actor: Principal | str, target_type: str, target_id: str,
             before: dict[str, Any] | None = None, after: dict[str, Any] | None = None,
             comment: str | None = None, actor_role: str | None = None) -> AuditRecorded:
    """The payload of one decision, with the current request's ids; a too long comment is cut."""
    if action not in DECISIONS:
        raise ValueError(f"unknown audit action {action!r}: add it to services/kit/audit.py DECISIONS")
    identity = request_identity()
    if isinstance(actor, Principal):
        actor, actor_role = actor.user, actor_role or actor.role
    if comment is not None and len(comment) > MAX_COMMENT:
        comment = comment[:MAX_COMMENT - 1] + "…"
    return AuditRecorded(action=action, actor=actor, actor_role=actor_role, target_type=target_type,
                         target_id=target_id, before=fit(before), after=fit(after), comment=comment,
                         request_id=identity.request_id, trace_id=identity.trace_id)


def record_decision(where: AbstractUnitOfWork | Aggregate, *, action: str, actor: Principal | str,
                    target_type: str, target_id: str, before: dict[str, Any] | None = None,
                    after: dict[str, Any] | None = None, comment: str | None = None,
                    actor_role: str | None = None, correlation_id: str | None = None) -> AuditRecorded:
    """Record the decision in `where` (a unit of work, or an aggregate it tracks); published on commit.

    `actor` is the route's Principal (or the user's id, with `actor_role` when known); `correlation_id`
    is the workload the decision is about when there is one, else the target's id is used."""
    data = decision(action=action, actor=actor, target_type=target_type, target_id=target_id, before=before,
                    after=after, comment=comment, actor_role=actor_role)
    where.record(AUDIT, data, correlation_id=correlation_for(correlation_id or target_id))
    return data

