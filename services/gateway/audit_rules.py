"""What the audit log records, how big each field may be, how a search becomes SQL and how a cell is
written to CSV. Pure: no I/O, so every rule is tested on its own (tests/unit/gateway/test_audit_rules.py).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Mapping

Kind = Literal["request", "decision", "refusal"]
KINDS: tuple[Kind, ...] = ("request", "decision", "refusal")
Outcome = Literal["ok", "refused", "failed"]

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
REFUSALS = frozenset({401, 403, 429})
API_PREFIX = "/api/"
# the accounts code audits these answers itself, with the user they name (a request row would say
# nobody): a login (200) and a wrong password or deactivated user (401). Any other answer there (a 422,
# a 500) is recorded as a request; a 429 is always recorded, since the address limiter in front refuses
# a flood before the login code runs (the login throttle's own 429 then has both rows).
SELF_AUDITED: dict[tuple[str, str], frozenset[int]] = {("POST", "/api/auth/login"): frozenset({200, 401})}

# bounds of what a client or a producer controls: a row stays small whatever it sends
MAX_USER_AGENT = 512
MAX_PATH = 2048
MAX_ROUTE = 512
MAX_ADDRESS = 128
MAX_ACTOR = 255
MAX_ACTION = 64
MAX_TARGET_TYPE = 64
MAX_TARGET_ID = 255
MAX_COMMENT = 2000
MAX_REQUEST_ID = 128
MAX_TARGET_IDS = 16          # path parameters kept per request
MAX_JSON_BYTES = 16 * 1024   # a before/after state larger than this is kept as a marker of its size
MAX_SEARCH_LIMIT = 500
DEFAULT_SEARCH_LIMIT = 100

_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")


def recorded_kind(method: str, path: str, status: int) -> Kind | None:
    """Which row a request leaves, once its status is known: every refusal at the door (401/403/429),
    every state-changing request under /api/ whatever its outcome, nothing else (a login's 200 or 401 is
    its decision's row)."""
    if status == 429:
        return "refusal"
    if status in SELF_AUDITED.get((method, path), ()):
        return None
    if status in REFUSALS:
        return "refusal"
    if method in MUTATING and path.startswith(API_PREFIX):
        return "request"
    return None


def clip(text: Any, limit: int) -> str | None:
    """`text` as a string of at most `limit` characters (None stays None). A NUL is dropped: PostgreSQL's
    text cannot hold it and a row must never fail to store over one character."""
    if text is None:
        return None
    text = str(text)
    if "\x00" in text:
        text = text.replace("\x00", "")
    return text if len(text) <= limit else text[:limit - 1] + "…"


def bounded_json(value: Any) -> Any:
    """A before/after state as stored: as given while its JSON is at most MAX_JSON_BYTES, else a marker
    saying it was too big to keep (the row is still written)."""
    if value is None:
        return None
    try:
        text = json.dumps(value, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        return {"unstorable": type(value).__name__}
    size = len(text.encode())
    if size > MAX_JSON_BYTES or "\\u0000" in text:
        return {"truncated": True, "bytes": size}
    return json.loads(text)  # plain JSON types only (datetimes etc. as their text)


def bounded_target_ids(params: Mapping[str, Any] | None) -> dict[str, str] | None:
    """A request's path parameters (the ids it acts on), at most MAX_TARGET_IDS, each clipped."""
    if not params:
        return None
    return {clip(name, 64): clip(value, MAX_TARGET_ID)
            for name, value in list(params.items())[:MAX_TARGET_IDS]}  # type: ignore[misc]


def target_of(target_ids: Mapping[str, str] | None) -> tuple[str | None, str | None]:
    """(target_type, target_id) of a request: its last path parameter, the most specific id in the path
    (`/api/users/{user_id}/tokens/{token_id}` acts on a token); `workload_id` → type "workload"."""
    if not target_ids:
        return None, None
    name, value = list(target_ids.items())[-1]
    kind = name[:-3] if name.endswith("_id") and len(name) > 3 else name
    return clip(kind, MAX_TARGET_TYPE), clip(value, MAX_TARGET_ID)


def trace_id_hex(trace_id: int) -> str | None:
    """An OpenTelemetry trace id (0: none) as its 32 hex digits."""
    return format(trace_id, "032x") if trace_id else None


def valid_trace_id(value: str | None) -> str | None:
    return value if value is not None and _TRACE_ID.match(value) else None


def outcome_of(status: int) -> Outcome:
    """A request's outcome from its HTTP status: a 4xx is a refusal, a 5xx a failure."""
    if status < 400:
        return "ok"
    return "refused" if status < 500 else "failed"


# ------------------------------------------------------------------------------------------- search


@dataclass(frozen=True)
class AuditQuery:
    user: str | None = None
    action: str | None = None          # a prefix: "approval." finds every approval decision
    target_type: str | None = None
    target_id: str | None = None
    kind: Kind | None = None
    status: int | None = None
    outcome: Outcome | None = None
    since: datetime | None = None      # `from`, inclusive
    until: datetime | None = None      # `to`, exclusive
    before_id: int | None = None       # keyset cursor: rows older than this one


def like_prefix(text: str) -> str:
    """A LIKE pattern matching what starts with `text` literally (its `%`, `_`, `\\` are not wildcards)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def where_clause(query: AuditQuery) -> tuple[str, list[Any]]:
    """The WHERE clause (with `$n` placeholders) and its arguments for a search. Rows are ordered
    newest first by (at, id); `before_id` continues after that row in this order."""
    conditions: list[str] = []
    args: list[Any] = []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if query.user is not None:
        conditions.append(f"actor = {arg(query.user)}")
    if query.action is not None:
        conditions.append(f"action LIKE {arg(like_prefix(query.action))}")
    if query.target_type is not None:
        conditions.append(f"target_type = {arg(query.target_type)}")
    if query.target_id is not None:
        conditions.append(f"target_id = {arg(query.target_id)}")
    if query.kind is not None:
        conditions.append(f"kind = {arg(query.kind)}")
    if query.status is not None:
        conditions.append(f"status = {arg(query.status)}")
    if query.outcome is not None:
        conditions.append(f"outcome = {arg(query.outcome)}")
    if query.since is not None:
        conditions.append(f"at >= {arg(query.since)}")
    if query.until is not None:
        conditions.append(f"at < {arg(query.until)}")
    if query.before_id is not None:
        cursor = arg(query.before_id)
        conditions.append(f"(at, id) < (SELECT c.at, c.id FROM audit_log c WHERE c.id = {cursor})")
    return (" WHERE " + " AND ".join(conditions)) if conditions else "", args


# ---------------------------------------------------------------------------------------------- CSV

# a spreadsheet runs a cell starting with one of these as a formula (OWASP "CSV injection")
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> str:
    """One cell's text, safe to open in a spreadsheet: JSON for objects, ISO 8601 for times, and any text
    a spreadsheet would take for a formula (even after leading spaces) prefixed with an apostrophe,
    which makes it plain text. The csv module quotes separators, quotes and line breaks."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)  # numbers we produce: a negative one is not a formula
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (dict, list)):
        text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    else:
        text = str(value)
    if text.startswith(FORMULA_TRIGGERS) or text.lstrip(" \n").startswith(FORMULA_TRIGGERS):
        return "'" + text
    return text
