"""What the live event stream (GET /api/events) shows, and to whom: pure rules, no I/O.

Every role reads every workload through the services' APIs, so every logged-in caller sees every saga
event. What it sees of one is what a console needs to redraw a list or a timeline, never more: an
allow-list of fields per event type, so a field added to a contract later stays hidden until it is
named here. Left out on purpose:

- the App spec and training config a workload carries (training.requested, looptest.requested,
  workload.approved, workload.completed): they hold env values, secret references and whatever the
  researcher put in envConfig/rewardParams;
- a loop test's raw results (rewards, run records) and an artifact's storage prefix and log location:
  internal records the services answer for, to those who ask for them.

An event type without a rule here is never streamed (fail closed): `audit.recorded`, which the gateway
also receives, belongs to the audit log (admins, GET /api/audit), not to this stream. The console fetches
the details it needs from the services' APIs, which apply their own checks.
"""
from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from typing import Any, Mapping, Union

from services.kit.auth import ROLES

# A field to keep: a name (kept whole), or (name, fields) to keep only those fields of the object or of
# each object of the list it holds.
Field = Union[str, tuple[str, "Fields"]]
Fields = tuple[Field, ...]

_LOOP_TEST: Fields = ("status", "episodes", "executedBy", "executedAt")
_RESOURCES: Fields = ("gpuType", "gpuCount", "memory", "cpu", "maxRuntime")

# event type -> the fields of its `data` a caller sees (the wire form: the envelope snake_case, the
# embedded workload camelCase)
RULES: dict[str, Fields] = {
    "training.requested": ("workloadId", "appId", "specVersion", "name", "requester", "priority", "submittedAt",
                           ("resources", _RESOURCES), "isTrainingRequest", "testRunRef"),
    "approval.required": ("workload_id", "app_id", "reasons", ("loop_test", _LOOP_TEST)),
    "looptest.requested": ("workload_id", "test_run_id", "mode", "episodes", "requested_by"),
    "looptest.completed": ("workload_id", "test_run_id", "mode", "failure"),
    "looptest.passed": ("workload_id", "test_run_id", ("loop_test", _LOOP_TEST)),
    "looptest.failed": ("workload_id", "test_run_id", ("loop_test", _LOOP_TEST)),
    "workload.approved": ("workload_id", "auto", "approved_by"),
    "workload.rejected": ("workload_id", "rejected_by", "comment"),
    "workload.cancel_requested": ("workload_id", "requested_by"),
    "workload.queued": ("workload_id", "priority", "loop_test"),
    "queue.changed": ("workload_id", "action", "priority", "position", "changed_by"),
    "node.status_changed": ("name", "status", "previous", "changed_by"),
    # which component changed, not its image, params or command: the library's API answers those
    "component.registered": (("component", ("component_id", "name", "version", "type")),),
    "component.updated": (("component", ("component_id", "name", "version", "type")),),
    "workload.started": ("workload_id",
                         ("allocations", ("task_id", "component_id", "node", "gpu_type", "gpu_indices"))),
    "workload.completed": ("workload_id", ("artifacts", ("task_id", "component_id", "name"))),
    "workload.failed": ("workload_id", "stage", "reason", "component_id"),
    "workload.cancelled": ("workload_id", "cancelled_by", "was_running"),
    "model.stored": ("workload_id", "model_id", "app_id", "version", "size_bytes", "files"),
    "model.store_failed": ("workload_id", "reason", "attempt", "will_retry"),
    "model.alias_moved": ("app_id", "alias", "model_id", "version", "previous_model_id", "action", "moved_by",
                          "sequence"),
}
STREAMED = frozenset(RULES)
# which roles see an event type: all of them today (see the module's docstring)
AUDIENCE: dict[str, frozenset[str]] = {event_type: frozenset(ROLES) for event_type in RULES}

MAX_PATTERNS = 32
_PATTERN = re.compile(r"[a-z_*]+(\.[a-z_*]+)*")
_CORRELATION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")


def may_see(role: str, event_type: str) -> bool:
    return role in AUDIENCE.get(event_type, ())


def _keep(value: Any, fields: Fields) -> Any:
    if isinstance(value, list):
        return [_keep(item, fields) for item in value]
    if not isinstance(value, Mapping):
        return None  # the rule expected an object here: show nothing rather than whatever came
    kept: dict[str, Any] = {}
    for field in fields:
        name, inner = (field, None) if isinstance(field, str) else field
        if name in value:
            kept[name] = value[name] if inner is None or value[name] is None else _keep(value[name], inner)
    return kept


def project(wire: Mapping[str, Any]) -> dict[str, Any] | None:
    """What the stream carries of an event (its wire form, `Event.to_wire()`): the envelope's public
    fields and the allowed fields of its data; None for a type that is never streamed."""
    fields = RULES.get(wire.get("type", ""))
    if fields is None:
        return None
    return {"event_id": wire["event_id"], "type": wire["type"], "occurred_at": wire["occurred_at"],
            "producer": wire["producer"], "correlation_id": wire["correlation_id"],
            "data": _keep(wire.get("data") or {}, fields)}


class FilterError(ValueError):
    """A filter the client sent cannot be used (the message says why, for a 400)."""


@dataclass(frozen=True)
class Filter:
    """What one client asked for: event types (expanded from its globs) and, optionally, one workload."""

    types: frozenset[str]
    correlation_id: str | None = None

    def admits(self, event_type: str, correlation_id: str) -> bool:
        return event_type in self.types and (self.correlation_id is None or correlation_id == self.correlation_id)


def narrowed(wanted: Filter, role: str) -> Filter:
    """The filter for a caller whose role is now `role` (it may see fewer types than when it connected)."""
    types = frozenset(t for t in wanted.types if may_see(role, t))
    return wanted if types == wanted.types else Filter(types, wanted.correlation_id)


def parse_filter(role: str, types: str | None, workload: str | None) -> Filter:
    """The client's filter from `?types=workload.*,model.stored` (a glob per dotted type, comma separated;
    none: every type) and `?workload=WL-...` (the correlation id), narrowed to what `role` may see."""
    allowed = frozenset(t for t in STREAMED if may_see(role, t))
    chosen = allowed
    if types is not None and types.strip():
        patterns = [p.strip() for p in types.split(",") if p.strip()]
        if len(patterns) > MAX_PATTERNS:
            raise FilterError(f"at most {MAX_PATTERNS} patterns in `types`, got {len(patterns)}")
        chosen = frozenset()
        for pattern in patterns:
            if len(pattern) > 64 or not _PATTERN.fullmatch(pattern):
                raise FilterError(f"`types` pattern {pattern[:64]!r} is not a dotted event type glob "
                                  "(e.g. workload.* or model.stored)")
            matched = frozenset(t for t in allowed if fnmatch.fnmatchcase(t, pattern))
            if not matched:
                raise FilterError(f"`types` pattern {pattern!r} matches no event type the stream carries; "
                                  f"known: {', '.join(sorted(allowed))}")
            chosen |= matched
    if workload is not None and not _CORRELATION.fullmatch(workload):
        raise FilterError("`workload` must be a workload (or App) id: 1-64 letters, digits, '.', '_', ':' or '-'")
    return Filter(chosen, workload)
