"""The unit of work: every state change of a service goes through one.

`async with uow:` opens a transaction (or, for an event handler, joins the consumer's, which also holds
the event's inbox claim); repositories bound to it load aggregates, locked when asked; aggregates
record the events their changes imply on themselves; `await uow.commit()` moves every recorded event
into the outbox in the same transaction, commits, and only then releases what was counted and any
after-commit callback. Leaving the block without committing rolls back. Nothing else writes to the outbox.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable, Iterable, NamedTuple, Sequence

import asyncpg
from pydantic import BaseModel

from contracts.events import Event, make_event
from services.kit import metrics
from services.kit.outbox import Outbox
from services.kit.telemetry import continue_workload_trace, in_trace, inject_headers, recall_trace


class Recorded(NamedTuple):
    """An event an aggregate recorded: its type, its payload, the workload (or App) it is about and,
    when a unit handles several delivered events at once, which of them caused it; `trace` is the trace
    context it carries when that is not the unit's own (one event per workload, each in its own trace)."""

    type: str
    data: BaseModel
    correlation_id: str
    cause: Event | None = None
    trace: dict[str, Any] | None = None


@dataclass
class Aggregate:
    """An entity that records the events its changes imply; the unit of work publishes them on commit.

    `correlation_id` is what its events are about (a workload id, an App id): a subclass names it."""

    events: list[Recorded] = field(default_factory=list, repr=False, compare=False, kw_only=True)

    @property
    def correlation_id(self) -> str:
        raise NotImplementedError

    def record(self, event_type: str, data: BaseModel, *, correlation_id: str | None = None,
               cause: Event | None = None, trace: dict[str, Any] | None = None) -> None:
        self.events.append(Recorded(event_type, data, correlation_id or self.correlation_id, cause, trace))


@dataclass(frozen=True)
class Statement:
    """One guarded write: an INSERT, UPDATE or DELETE with a RETURNING clause, `$1..$n` in `args`."""

    sql: str
    args: Sequence[Any]


class AbstractUnitOfWork:
    """What every unit of work does, with or without a database: tracks the aggregates it loaded and
    the events recorded, and hands them over on commit (tests use a fake built on this)."""

    cause: Event | None = None
    committed: bool = False

    def __init__(self) -> None:
        self._seen: list[tuple[Aggregate, dict[str, Any] | None]] = []
        self._recorded: list[Recorded] = []

    def _reset(self) -> None:
        self._seen, self._recorded, self.committed = [], [], False

    def track(self, aggregate: Any, *, trace: dict[str, Any] | None = None) -> Any:
        """An aggregate loaded or added in this unit: its recorded events go out on commit, carrying
        `trace` (a span's context, `inject_headers(span=...)`) when it is not the unit's own."""
        if aggregate is not None and not any(seen is aggregate for seen, _ in self._seen):
            self._seen.append((aggregate, trace))
        return aggregate

    def record(self, event_type: str, data: BaseModel, *, correlation_id: str | None = None,
               cause: Event | None = None, trace: dict[str, Any] | None = None) -> None:
        """An event no aggregate owns (a read model's change, an API's notice). Its correlation id is
        the cause's (the event being handled) unless given."""
        cause = cause or self.cause
        if correlation_id is None:
            if cause is None:
                raise ValueError("an event recorded outside an event handler names its correlation id")
            correlation_id = cause.correlation_id
        self._recorded.append(Recorded(event_type, data, correlation_id, cause, trace))

    def collect(self) -> list[Recorded]:
        """Every event recorded in this unit so far, in order, taken off the aggregates."""
        found: list[Recorded] = []
        for aggregate, trace in self._seen:
            events = aggregate.events
            if events:
                found.extend(events if trace is None else
                             (event if event.trace is not None else event._replace(trace=trace) for event in events))
                aggregate.events = []
        found.extend(self._recorded)
        self._recorded = []
        return found


class UnitOfWork(AbstractUnitOfWork):
    """One command or one event: its state change, its outbox rows and what it counts commit together.

    A service subclasses it to bind its repositories to the connection (`bind`). A unit made for an
    event handler (`conn=` the consumer's connection, `cause=` the event) shares the consumer's
    transaction: commit() adds the outbox rows there and the consumer commits them with its inbox claim
    (and, under load, with the other events of its batch)."""

    def __init__(self, pool: asyncpg.Pool, outbox: Outbox, *, conn: asyncpg.Connection | None = None,
                 cause: Event | None = None) -> None:
        super().__init__()
        self._pool = pool
        self._outbox = outbox
        self._joined = conn
        self.cause = cause
        self.conn: asyncpg.Connection = conn  # type: ignore[assignment]  # set on entry
        self._transaction: Any = None
        self._counts: metrics.Deferred | None = None

    @property
    def service(self) -> str:
        return self._outbox.service

    # ------------------------------------------------------------------ the block

    async def __aenter__(self) -> "UnitOfWork":
        await self._open(begin=True)
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self._close()

    @contextlib.asynccontextmanager
    async def statement(self) -> AsyncIterator["UnitOfWork"]:
        """A connection without a transaction of its own, for reads and at most one guarded write that
        commits with its events in one statement (`commit_guarded`): one round trip instead of four."""
        await self._open(begin=False)
        try:
            yield self
        finally:
            await self._close()

    async def _open(self, *, begin: bool) -> None:
        self._reset()
        if self._joined is None:
            self._counts = metrics.Deferred()
            try:
                self.conn = await self._pool.acquire()
                if begin:
                    self._transaction = self.conn.transaction()
                    await self._transaction.start()
            except BaseException:
                await self._close()
                raise
        self.bind(self.conn)

    async def _close(self) -> None:
        if self._joined is not None:
            return
        try:
            if self._transaction is not None and not self.committed:
                await self._transaction.rollback()
        finally:
            self._transaction = None
            if self.conn is not None:
                conn, self.conn = self.conn, None  # type: ignore[assignment]
                await self._pool.release(conn)
            if self._counts is not None:
                counts, self._counts = self._counts, None
                counts.release() if self.committed else counts.discard()

    def bind(self, conn: asyncpg.Connection) -> None:
        """Bind the service's repositories to this unit's connection (a subclass's hook)."""

    # ------------------------------------------------------------------ what it changes

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run once this unit (or the consumer transaction it joined) has committed."""
        metrics.on_commit(callback)

    def wake(self, channel: str) -> None:
        """Wake what listens on `channel` (services/kit/listening.py) once this unit has committed."""
        self._outbox.wakeups.after_commit(self.conn, channel)

    def continue_trace(self, name: str, workload_id: str) -> contextlib.AbstractAsyncContextManager[Any]:
        """A span in the workload's own trace for work no message carries (a person's decision, a sweep)."""
        return continue_workload_trace(self.conn, name, workload_id)

    # ------------------------------------------------------------------ commit

    async def commit(self) -> list[Event]:
        """Write the recorded events to the outbox and commit; returns the events written."""
        events = await self._events(self.collect())
        if events:
            await self._outbox.add_many(self.conn, events)
        if self._joined is None:
            if self._transaction is None:
                raise RuntimeError("commit() outside `async with uow`: a statement() unit commits with commit_guarded")
            transaction, self._transaction = self._transaction, None  # a failed COMMIT leaves nothing to roll back
            await transaction.commit()
        self.committed = True
        return [event for event, _ in events]

    async def commit_guarded(self, change: Statement) -> bool:
        """Commit a unit whose one write is `change` (it RETURNs a row when it applied) together with the
        events recorded meanwhile, in one statement; False, and nothing written, when it did not apply."""
        if self._transaction is not None or self._joined is not None:
            raise RuntimeError("commit_guarded() is for a statement() unit, which has no transaction to share")
        events = await self._events(self.collect())
        if not await self._outbox.add_with(self.conn, change.sql, change.args, events):
            return False
        self.committed = True
        return True

    async def _events(self, recorded: Iterable[Recorded]) -> list[tuple[Event, dict[str, Any]]]:
        """Each recorded event made whole (its producer, correlation and causation), with the trace
        context it carries: the current span's, or outside any trace the latest this service saw for
        its workload, so the trace goes on."""
        made: list[tuple[Event, dict[str, Any]]] = []
        recalled: dict[str, dict[str, Any]] = {}
        current = inject_headers()
        traced = in_trace()
        for item in recorded:
            cause = item.cause or self.cause
            event = make_event(item.type, item.data, producer=self.service, correlation_id=item.correlation_id,
                               causation_id=cause.event_id if cause is not None else None)
            headers = item.trace or current
            if item.trace is None and not traced:
                if item.correlation_id not in recalled:
                    recalled[item.correlation_id] = await recall_trace(self.conn, item.correlation_id) or current
                headers = recalled[item.correlation_id]
            made.append((event, headers))
        return made


UnitOfWorkFactory = Callable[..., UnitOfWork]
