"""The audit log (AU-04): who did what, from where, with what outcome, kept append-only.

Three ways in, one table (migrations/0003_audit.sql):
- `install(app)`: a pure ASGI middleware records every state-changing request under /api/ and every
  refusal (401/403/429) as one row. It only looks at the method, the path and the response status, and
  queues the row in memory; `AuditLog`'s flusher inserts the queue in batches, so a response never
  waits for the audit write.
- `AuditLog.decision(...)`: the gateway's own decisions (users, tokens, keys, logins), written at once,
  in the caller's transaction when it gives one (a rolled-back change leaves no record).
- `subscribe(platform, audit_log)`: the services' decisions, from their `audit.recorded` events, stored
  in the consumer's transaction, once per event id.

Admins search it at GET /api/audit and export it at GET /api/audit.csv. Old rows are removed only by
the retention job (services/gateway/retention.py), run as the schema's owner.
"""
from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import logging
import time
import uuid
from datetime import datetime, timezone
from typing import Annotated, Any, AsyncIterator, Awaitable, Callable, Sequence

import asyncpg
import prometheus_client
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from opentelemetry import trace
from pydantic import BaseModel

from services.gateway import audit_rules as rules
from services.gateway.audit_rules import AuditQuery, Kind, Outcome
from services.gateway.identity import AdminCaller, Caller
from services.kit import metrics

log = logging.getLogger(__name__)

COLUMNS = ("at", "kind", "actor", "actor_role", "via", "token_id", "address", "user_agent", "method", "route",
           "path", "target_type", "target_id", "target_ids", "status", "outcome", "action", "before", "after",
           "comment", "producer", "event_id", "request_id", "trace_id")
_INSERT = (f"INSERT INTO audit_log ({', '.join(COLUMNS)}) "
           f"VALUES ({', '.join(f'${i}' for i in range(1, len(COLUMNS) + 1))})")
_INSERT_EVENT = _INSERT + " ON CONFLICT (event_id) DO NOTHING"

FLUSH_SECONDS = 0.05     # the longest a queued row waits for its insert
RETRY_MAX_SECONDS = 2.0  # while PostgreSQL is away, the flusher retries at most this far apart
BATCH_ROWS = 500         # rows per insert statement
MAX_PENDING = 10_000     # rows queued at most; beyond, a request writes its own row before it ends
REQUEST_ID_HEADER = b"x-request-id"

ROWS = prometheus_client.Counter("avatar_audit_rows_total", "Audit rows stored, by kind and how they were written",
                                 ["kind", "path"])
EVENT_ROWS = metrics.Counter("avatar_audit_events_stored_total", "audit.recorded events stored, by producer",
                             ["producer"])
LOST = prometheus_client.Counter("avatar_audit_rows_lost_total", "Audit rows that could not be stored (each is "
                                 "logged at ERROR with its content)", ["reason"])
PENDING = prometheus_client.Gauge("avatar_audit_pending_rows", "Audit rows queued, not yet inserted")

Row = tuple  # the values of COLUMNS, in order
_KIND = COLUMNS.index("kind")


def make_row(**fields: Any) -> Row:
    unknown = set(fields) - set(COLUMNS)
    if unknown:
        raise TypeError(f"not audit columns: {sorted(unknown)}")
    if fields.get("at") is None:
        fields["at"] = datetime.now(timezone.utc)
    return tuple(fields.get(column) for column in COLUMNS)


def _current_trace_id() -> str | None:
    return rules.trace_id_hex(trace.get_current_span().get_span_context().trace_id)


def _caller_fields(caller: Caller | None) -> dict[str, Any]:
    if caller is None:
        return {}
    return {"actor": rules.clip(caller.user, rules.MAX_ACTOR), "actor_role": caller.role, "via": caller.via,
            "token_id": caller.token_id}


def header_value(headers: Sequence[tuple[bytes, bytes]], name: bytes) -> str | None:
    """The first value of the header `name` (lower case) among ASGI headers, or None."""
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _peer(scope: dict[str, Any]) -> str | None:
    # the peer only: X-Forwarded-For is anyone's to write until a trusted proxy in front is configured
    client = scope.get("client")
    return rules.clip(client[0], rules.MAX_ADDRESS) if client else None


def _route_fields(scope: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    """Route template and the ids it acts on: the proxy's (it knows the upstream's route), else the
    matched gateway route's, else the raw path (a request no route took)."""
    template = state.get("route_template") or getattr(scope.get("route"), "path", None) or scope.get("path")
    target_ids = rules.bounded_target_ids(state.get("target_ids") or scope.get("path_params"))
    target_type, target_id = rules.target_of(target_ids)
    return {"route": rules.clip(template, rules.MAX_ROUTE), "target_ids": target_ids,
            "target_type": target_type, "target_id": target_id}


def request_id_of(state: dict[str, Any]) -> str:
    """The request's id, made once: what the recorder, the gateway's decisions and the response share."""
    request_id = state.get("request_id")
    if not request_id:
        request_id = state["request_id"] = uuid.uuid4().hex
    return request_id


class AuditLog(contextlib.AbstractAsyncContextManager):
    """The store. Request rows are queued and inserted by a background flusher (started on enter,
    drained on exit); decisions and events are written at once."""

    def __init__(self, pool: asyncpg.Pool, settings: Any, *, max_pending: int = MAX_PENDING,
                 flush_seconds: float = FLUSH_SECONDS) -> None:
        self.pool, self.settings = pool, settings
        self.max_pending = max_pending
        self.flush_seconds = flush_seconds
        self._pending: list[Row] = []
        self._lock = asyncio.Lock()  # one insert of the queue at a time, in queue order
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> "AuditLog":
        self._task = asyncio.create_task(self._flush_forever(), name="gateway-audit-flusher")
        return self

    async def __aexit__(self, *exc: Any) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self.flush()
        for row in self._pending:  # the database stayed away to the end: not silently
            self._lose(row, "shutdown")
        self._pending.clear()
        PENDING.set(0)

    # ---------------------------------------------------------------------------------- requests

    async def record(self, row: Row) -> None:
        """Queue a request's row; when the queue is full (the database slower than the requests, or
        away) write it now instead, so the request ends only once its row is stored."""
        if self._task is not None and len(self._pending) < self.max_pending:
            self._pending.append(row)
            return
        try:
            await self._insert([row])
            ROWS.labels(row[_KIND], "direct").inc()
        except Exception as exc:
            self._lose(row, type(exc).__name__)

    async def flush(self) -> bool:
        """Insert everything queued so far (the search calls it first: an admin sees every request that
        ended before theirs). False when PostgreSQL is away: the rows stay queued for the next round."""
        async with self._lock:
            try:
                while self._pending:
                    batch = self._pending[:BATCH_ROWS]
                    try:
                        await self._insert(batch)
                    except (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, OSError,
                            asyncio.TimeoutError) as exc:
                        log.warning("audit rows wait for PostgreSQL (%d queued): %s", len(self._pending), exc)
                        return False
                    except asyncpg.PostgresError:
                        await self._insert_one_by_one(batch)  # one bad row must not hold back the others
                    del self._pending[:len(batch)]
                    for row in batch:
                        ROWS.labels(row[_KIND], "queued").inc()
                return True
            finally:
                PENDING.set(len(self._pending))

    async def _flush_forever(self) -> None:
        delay = self.flush_seconds
        while True:
            await asyncio.sleep(delay)
            if not self._pending:
                continue
            try:
                flushed = await self.flush()
            except Exception:  # the rows stay queued; the next round tries again
                log.exception("audit flush failed")
                flushed = False
            # while the database is away, retry less and less often instead of logging 20 times a second
            delay = self.flush_seconds if flushed else min(RETRY_MAX_SECONDS, max(delay, self.flush_seconds) * 2)

    async def _insert(self, rows: list[Row]) -> None:
        if len(rows) == 1:
            await self.pool.execute(_INSERT, *rows[0])
        else:
            await self.pool.executemany(_INSERT, rows)

    async def _insert_one_by_one(self, rows: list[Row]) -> None:
        for row in rows:
            try:
                await self.pool.execute(_INSERT, *row)
            except asyncpg.PostgresError as exc:
                self._lose(row, type(exc).__name__)

    @staticmethod
    def _lose(row: Row, reason: str) -> None:
        LOST.labels(reason).inc()
        log.error("audit row NOT stored (%s): %r", reason, dict(zip(COLUMNS, row)))

    # --------------------------------------------------------------------------------- decisions

    async def decision(self, *, action: str, actor: Caller | None, target_type: str, target_id: str,
                       before: dict[str, Any] | None = None, after: dict[str, Any] | None = None,
                       comment: str | None = None, outcome: Outcome = "ok", request: Request | None = None,
                       conn: asyncpg.Connection | None = None, actor_user: str | None = None) -> None:
        """Record one of the gateway's own decisions now: in `conn`'s transaction when given (it commits
        or rolls back with the change), else on its own. `actor_user` names the person when there is no
        Caller (a failed login). A failure raises: a change whose record cannot be written must not happen."""
        if outcome not in ("ok", "refused", "failed"):
            raise ValueError(f"outcome must be ok, refused or failed, not {outcome!r}")
        fields: dict[str, Any] = {
            "at": datetime.now(timezone.utc), "kind": "decision", "producer": "gateway",
            "action": rules.clip(action, rules.MAX_ACTION),
            "target_type": rules.clip(target_type, rules.MAX_TARGET_TYPE),
            "target_id": rules.clip(target_id, rules.MAX_TARGET_ID), "before": rules.bounded_json(before),
            "after": rules.bounded_json(after), "comment": rules.clip(comment, rules.MAX_COMMENT),
            "outcome": outcome, "trace_id": _current_trace_id(),
            **_caller_fields(actor),
        }
        if actor is None and actor_user is not None:
            fields["actor"] = rules.clip(actor_user, rules.MAX_ACTOR)
        if request is not None:
            scope = request.scope
            state = scope.setdefault("state", {})
            fields.update(address=_peer(scope), method=rules.clip(scope.get("method"), 16),
                          path=rules.clip(scope.get("path"), rules.MAX_PATH),
                          user_agent=rules.clip(request.headers.get("user-agent"), rules.MAX_USER_AGENT),
                          request_id=request_id_of(state))
            route = _route_fields(scope, state)
            fields.update(route=route["route"], target_ids=route["target_ids"])
        row = make_row(**fields)
        if conn is not None:
            await conn.execute(_INSERT, *row)
        else:
            await self.pool.execute(_INSERT, *row)
        ROWS.labels("decision", "direct").inc()


# ------------------------------------------------------------------------------------ the recorder

Scope = dict[str, Any]
Message = dict[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]


class AuditRecorder:
    """Pure ASGI middleware: one row for each request `audit_rules.recorded_kind` names, written after
    the response (queued; see AuditLog.record). A request it does not record costs a wrapped `send`."""

    def __init__(self, app: ASGIApp, state: Any) -> None:
        self.app = app
        self.app_state = state  # the FastAPI app's state: `audit` is there once the lifespan started

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]],
                       send: Callable[[Message], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.time()
        method, path = scope["method"], scope["path"]
        state = scope.setdefault("state", {})  # shared with request.state: the caller and the proxy's route
        status = 500  # the app raised before answering: the server answers 500
        response_headers: list | None = None

        async def send_noting_status(message: Message) -> None:
            nonlocal status, response_headers
            if message["type"] == "http.response.start":
                status = message["status"]
                if rules.recorded_kind(method, path, status) is not None:
                    response_headers = list(message.get("headers") or ())
                    if header_value(response_headers, REQUEST_ID_HEADER) is None:
                        # the client can quote the id its row carries
                        response_headers.append((REQUEST_ID_HEADER, request_id_of(state).encode()))
                        message = {**message, "headers": response_headers}
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            kind = rules.recorded_kind(method, path, status)
            if kind is not None:
                try:
                    await self._record(kind, scope, state, status, started, response_headers or ())
                except Exception:  # the answer is out already; the failure must not pass unseen either
                    LOST.labels("recorder_error").inc()
                    log.exception("audit row NOT stored for %s %s (%s)", method, path, status)

    async def _record(self, kind: Kind, scope: Scope, state: dict[str, Any], status: int, started: float,
                      response_headers: Sequence[tuple[bytes, bytes]]) -> None:
        audit: AuditLog | None = getattr(self.app_state, "audit", None)
        request_id = header_value(response_headers, REQUEST_ID_HEADER) or request_id_of(state)
        row = make_row(
            at=datetime.fromtimestamp(started, timezone.utc), kind=kind, **_caller_fields(state.get("caller")),
            address=_peer(scope),
            user_agent=rules.clip(header_value(scope.get("headers") or (), b"user-agent"), rules.MAX_USER_AGENT),
            method=rules.clip(scope["method"], 16), path=rules.clip(scope["path"], rules.MAX_PATH),
            **_route_fields(scope, state),
            status=status, outcome=rules.outcome_of(status), request_id=rules.clip(request_id, rules.MAX_REQUEST_ID),
            trace_id=_current_trace_id())
        if audit is None:
            AuditLog._lose(row, "not_started")
            return
        await audit.record(row)


def install(app: Any) -> None:
    """Add the recorder (call after build_service: the middleware added last is the outermost, so it sees
    the status of everything inside, the rate limiter's 429 and the identity's 401/403 included)."""
    app.add_middleware(AuditRecorder, state=app.state)


# ------------------------------------------------------------------------- the services' decisions


def event_row(event: Any) -> Row:
    data = event.data
    target_id = rules.clip(data.target_id, rules.MAX_TARGET_ID)
    # the workload a decision on something else (a component, a node) was about
    target_ids = {"correlation_id": event.correlation_id} if event.correlation_id != data.target_id else None
    return make_row(
        at=event.occurred_at, kind="decision", producer=rules.clip(event.producer, 64), event_id=event.event_id,
        action=rules.clip(data.action, rules.MAX_ACTION), actor=rules.clip(data.actor, rules.MAX_ACTOR),
        actor_role=rules.clip(getattr(data, "actor_role", None), 32),
        target_type=rules.clip(data.target_type, rules.MAX_TARGET_TYPE), target_id=target_id, target_ids=target_ids,
        before=rules.bounded_json(data.before), after=rules.bounded_json(data.after),
        comment=rules.clip(data.comment, rules.MAX_COMMENT), outcome="ok",
        request_id=rules.clip(data.request_id, rules.MAX_REQUEST_ID), trace_id=rules.valid_trace_id(data.trace_id))


def subscribe(platform: Any, audit_log: AuditLog) -> None:
    """Store every `audit.recorded` event in the consumer's transaction (with its inbox claim); the
    unique event id makes a second delivery a no-op even past the inbox's retention."""

    async def store(event: Any, ctx: Any) -> None:
        await ctx.conn.execute(_INSERT_EVENT, *event_row(event))
        EVENT_ROWS.labels(event.producer).inc()

    async def store_together(contexts: Sequence[Any]) -> None:
        await contexts[0].conn.executemany(_INSERT_EVENT, [event_row(ctx.event) for ctx in contexts])
        for ctx in contexts:
            EVENT_ROWS.labels(ctx.event.producer).inc()

    platform.bus.on("audit.recorded", store, together=store_together)


# ------------------------------------------------------------------------------------------- the API

router = APIRouter(tags=["audit"])
_SELECT = "SELECT id, " + ", ".join(COLUMNS) + " FROM audit_log"
_ORDER = " ORDER BY at DESC, id DESC"
EXPORT_BATCH = 1000
# API and CSV names of the columns (the store says actor; a reader asks for the user)
FIELDS = ("id",) + tuple({"actor": "user", "actor_role": "role"}.get(c, c) for c in COLUMNS)


class AuditEntry(BaseModel):
    id: int
    at: datetime
    kind: Kind
    user: str | None
    role: str | None
    via: str | None
    token_id: str | None
    address: str | None
    user_agent: str | None
    method: str | None
    route: str | None
    path: str | None
    target_type: str | None
    target_id: str | None
    target_ids: dict[str, Any] | None
    status: int | None
    outcome: Outcome | None
    action: str | None
    before: Any
    after: Any
    comment: str | None
    producer: str | None
    event_id: uuid.UUID | None
    request_id: str | None
    trace_id: str | None


class AuditPage(BaseModel):
    items: list[AuditEntry]
    next_before_id: int | None  # pass as before_id for the next (older) page; None: this was the last


def _search_query(
    user: Annotated[str | None, Query(max_length=rules.MAX_ACTOR, description="who acted")] = None,
    action: Annotated[str | None, Query(max_length=rules.MAX_ACTION,
                                        description="action prefix, e.g. approval.")] = None,
    target_type: Annotated[str | None, Query(max_length=rules.MAX_TARGET_TYPE)] = None,
    target_id: Annotated[str | None, Query(max_length=rules.MAX_TARGET_ID)] = None,
    kind: Kind | None = None,
    status: Annotated[int | None, Query(ge=100, le=599, description="HTTP status answered")] = None,
    outcome: Outcome | None = None,
    since: Annotated[datetime | None, Query(alias="from", description="at or after (ISO 8601)")] = None,
    until: Annotated[datetime | None, Query(alias="to", description="before (ISO 8601)")] = None,
) -> AuditQuery:
    for name, value in (("from", since), ("to", until)):
        if value is not None and value.tzinfo is None:
            raise HTTPException(422, f"'{name}' needs a time zone (e.g. 2026-01-31T12:00:00Z)")
    if since is not None and until is not None and since >= until:
        raise HTTPException(422, "'from' must be before 'to'")
    return AuditQuery(user=user, action=action, target_type=target_type, target_id=target_id, kind=kind,
                      status=status, outcome=outcome, since=since, until=until)


SearchQuery = Annotated[AuditQuery, Depends(_search_query)]


def _entry(record: asyncpg.Record) -> dict[str, Any]:
    return dict(zip(FIELDS, record.values()))


@router.get("/api/audit", response_model=AuditPage, summary="Search the audit log (admins), newest first")
async def search(request: Request, caller: AdminCaller, query: SearchQuery,
                 limit: Annotated[int, Query(ge=1, le=rules.MAX_SEARCH_LIMIT)] = rules.DEFAULT_SEARCH_LIMIT,
                 before_id: Annotated[int | None, Query(ge=1, description="continue after this row")] = None,
                 ) -> dict[str, Any]:
    audit: AuditLog = request.app.state.audit
    await audit.flush()
    if before_id is not None:
        query = AuditQuery(**{**query.__dict__, "before_id": before_id})
        if not await audit.pool.fetchval("SELECT 1 FROM audit_log WHERE id = $1", before_id):
            raise HTTPException(422, f"before_id {before_id} names no audit row (removed by retention?)")
    where, args = rules.where_clause(query)
    records = await audit.pool.fetch(f"{_SELECT}{where}{_ORDER} LIMIT {limit + 1}", *args)
    items = [_entry(r) for r in records[:limit]]
    return {"items": items, "next_before_id": items[-1]["id"] if len(records) > limit else None}


@router.get("/api/audit.csv", response_class=StreamingResponse,
            summary="Export the audit log as CSV (admins): the same filters, every matching row, newest first")
async def export(request: Request, caller: AdminCaller, query: SearchQuery) -> StreamingResponse:
    audit: AuditLog = request.app.state.audit
    await audit.flush()
    # a bulk read of who did what is itself worth knowing about
    await audit.decision(action="audit.export", actor=caller, target_type="audit_log", target_id="*",
                         after={k: (v.isoformat() if isinstance(v, datetime) else v)
                                for k, v in query.__dict__.items() if v is not None},
                         request=request)
    where, args = rules.where_clause(query)
    return StreamingResponse(_csv(audit.pool, f"{_SELECT}{where}{_ORDER}", args), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": 'attachment; filename="audit.csv"'})


async def _csv(pool: asyncpg.Pool, sql: str, args: list[Any]) -> AsyncIterator[str]:
    """The rows as CSV, read through a server-side cursor in one read-only snapshot, a batch at a time:
    memory stays flat however many rows match."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(FIELDS)
    yield buffer.getvalue()
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        cursor = await conn.cursor(sql, *args)
        while records := await cursor.fetch(EXPORT_BATCH):
            buffer.seek(0)
            buffer.truncate()
            for record in records:
                writer.writerow([rules.csv_cell(value) for value in record.values()])
            yield buffer.getvalue()
