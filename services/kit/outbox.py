"""Transactional outbox: events are rows written with the state change, published later by a relay.

One relay per service publishes at a time: the one whose listening connection holds the service's
advisory lock (a standby tries again every poll; a crashed holder's lock goes with its connection).
Being alone, it reads unsent rows without row locks or a transaction of its own, publishes them with
publisher confirms, then marks them sent: two statements a round. A crash between publish and mark
republishes the rows: consumers' inboxes absorb the duplicate. It sleeps on LISTEN/NOTIFY with a
polling fallback.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from typing import Any, Awaitable, Callable, Sequence

import asyncpg
from pydantic import BaseModel

from contracts.events import Event, make_event
from services.kit import metrics
from services.kit.db import advisory_lock_key
from services.kit.pacing import Floor
from services.kit.telemetry import correlation_id, in_trace, inject_headers, recall_trace
from services.kit.wakeups import Wakeups

log = logging.getLogger(__name__)
Publish = Callable[[str, bytes, dict[str, Any]], Awaitable[None]]


class Outbox:
    def __init__(self, service: str, wakeups: Wakeups) -> None:
        self.service = service
        self.channel = f"{service}_outbox"
        # rows added here wake the publishing relay once committed: this process's directly, another
        # replica's or the event side's by a NOTIFY sent after the commit (services/kit/wakeups.py)
        self.wakeups = wakeups

    async def add(self, conn: asyncpg.Connection, event: Event) -> Event:
        """Record an event in the caller's transaction; it is published only if that transaction commits.

        The row keeps the current trace context; written outside any span (a background loop), it takes
        the latest context this service saw for the event's correlation id, so the trace goes on."""
        await self.add_many(conn, [(event, await self._headers(conn, event))])
        return event

    async def add_many(self, conn: asyncpg.Connection, events: Sequence[tuple[Event, dict[str, Any]]]) -> None:
        """Record events, each with the trace headers it carries, in the caller's transaction."""
        if not events:
            return
        # one round trip for the rows; payloads go as the JSON text pydantic writes (no dict built only
        # to be serialised again)
        await conn.execute(
            "INSERT INTO outbox (event_id, routing_key, payload, headers)"
            " SELECT e, r, p::jsonb, h::jsonb FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[]) AS t(e, r, p, h)",
            [event.event_id for event, _ in events], [event.type for event, _ in events],
            [event.to_json() for event, _ in events], [json.dumps(headers) for _, headers in events],
        )
        self.wakeups.after_commit(conn, self.channel)

    async def emit(self, conn: asyncpg.Connection, event_type: str, data: BaseModel, *, correlation_id: str,
                   causation_id: uuid.UUID | None = None) -> Event:
        event = make_event(event_type, data, producer=self.service, correlation_id=correlation_id,
                           causation_id=causation_id)
        return await self.add(conn, event)

    async def emit_with(self, conn: asyncpg.Connection, change: str, args: Sequence[Any], event_type: str,
                        data: BaseModel, *, correlation_id: str) -> Event | None:
        """A state change and its event in one statement: atomic without a transaction of its own (one
        round trip instead of four: BEGIN, the change, the outbox row, COMMIT).

        `change` is one INSERT, UPDATE or DELETE with a RETURNING clause, its parameters $1..$n in `args`;
        the event is recorded only if it returned a row. Returns the event, or None when nothing changed."""
        event = make_event(event_type, data, producer=self.service, correlation_id=correlation_id)
        headers = await self._headers(conn, event)
        n = len(args)
        changed = await conn.fetchval(
            f"WITH change AS ({change}),"
            f" added AS (INSERT INTO outbox (event_id, routing_key, payload, headers)"
            f" SELECT ${n + 1}::uuid, ${n + 2}::text, ${n + 3}::text::jsonb, ${n + 4}::text::jsonb"
            f" WHERE EXISTS (SELECT 1 FROM change) RETURNING id)"
            f" SELECT count(*) FROM added",
            *args, event.event_id, event.type, event.to_json(), json.dumps(headers))
        if not changed:
            return None
        self.wakeups.after_commit(conn, self.channel)
        return event

    async def _headers(self, conn: asyncpg.Connection, event: Event) -> dict[str, Any]:
        headers = inject_headers()
        if not in_trace():
            headers = await recall_trace(conn, event.correlation_id) or headers
        return headers


def relay_lock_key(channel: str) -> int:
    """The advisory lock the publishing relay of a service holds (one key per outbox)."""
    return advisory_lock_key("outbox-relay", channel)


class OutboxRelay:
    def __init__(self, pool: asyncpg.Pool, outbox: Outbox, publish: Publish, *, poll_seconds: float = 1.0,
                 batch_size: int = 200, min_round_seconds: float = 0.0) -> None:
        self._pool = pool
        self._outbox = outbox
        self._publish = publish
        self._poll_seconds = poll_seconds
        self._min_round_seconds = min_round_seconds
        self._batch_size = batch_size
        self._lock_key = relay_lock_key(outbox.channel)
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._listener: asyncpg.Connection | None = None  # holds the lock and LISTENs; the rounds run on it
        self._stopping = False
        self._stats_at = 0.0
        # test seam: called after publishing a batch and before marking it sent
        self.after_publish: Callable[[list[uuid.UUID]], Awaitable[None]] | None = None

    @property
    def leading(self) -> bool:
        return self._listener is not None and not self._listener.is_closed()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"outbox-relay-{self._outbox.service}")

    async def stop(self, grace: float = 5.0) -> None:
        """Let the batch in flight be marked sent (so it is not republished needlessly), then stop."""
        self._stopping = True
        self._wake.set()
        if self._task:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), grace)
            except (asyncio.TimeoutError, Exception):
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
        await self._close_listener()

    def _on_notify(self, *_: Any) -> None:
        self._wake.set()

    def wake(self) -> None:
        """Rows were committed for this relay to publish."""
        self._wake.set()

    async def _close_listener(self) -> None:
        self._outbox.wakeups.unlisten(self._outbox.channel, self.wake)
        if self._listener is not None:
            listener, self._listener = self._listener, None
            try:
                await listener.remove_listener(self._outbox.channel, self._on_notify)
            except Exception:  # a broken connection has no listener left to remove
                pass
            await self._pool.release(listener)  # the pool's reset unlocks: another replica may lead

    async def _lead(self) -> bool:
        """Whether this relay publishes: it holds (or has just taken) the service's relay lock."""
        if self.leading:
            return True
        await self._close_listener()
        conn = await self._pool.acquire()
        try:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", self._lock_key):
                await self._pool.release(conn)
                return False
            await conn.add_listener(self._outbox.channel, self._on_notify)
            # marking rows sent need not wait for the disk: a mark lost with a database crash only
            # republishes those rows, which the consumers' inboxes absorb
            await conn.execute("SET synchronous_commit = off")
        except BaseException:
            await self._pool.release(conn)
            raise
        self._listener = conn
        self._outbox.wakeups.listen(self._outbox.channel, self.wake)
        log.info("the outbox relay of %s publishes from this process", self._outbox.service)
        return True

    async def _run(self) -> None:
        backoff = 0.2
        floor = Floor(self._min_round_seconds)
        full = False  # the last round published a whole batch: more are waiting
        while not self._stopping:
            try:
                if not await self._lead():  # another replica's relay publishes: stand by
                    await self._sleep(self._poll_seconds)
                    continue
                await floor.wait(ready=full)  # rows committed meanwhile go out together; a backlog at once
                # cleared before looking: a row committed after the SELECT's snapshot notifies, so the
                # wait below returns at once for it; a round that found fewer rows than a batch need not
                # look again (an empty SELECT per published batch, under load)
                self._wake.clear()
                published = await self._round(self._listener)
                backoff = 0.2
                full = published >= self._batch_size
                if full or self._stopping:
                    continue
                await self._sleep(self._poll_seconds)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # broker or database away: keep the rows, try again later
                log.warning("outbox relay of %s failed, retrying in %.1fs: %s", self._outbox.service, backoff, exc)
                await self._count_backlog()
                await self._close_listener()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), seconds)
        except asyncio.TimeoutError:
            pass

    async def _publish_row(self, row: asyncpg.Record) -> None:
        # its own task (gather): the workload bound here tags the PRODUCER span with avatar.workload_id
        if row["correlation_id"]:
            correlation_id.set(row["correlation_id"])
        await self._publish(row["routing_key"], row["body"].encode(), row["headers"] or {})

    async def relay_once(self) -> int:
        """One round on a connection of the pool, without the relay lock (tests and tools)."""
        async with self._pool.acquire() as conn:
            return await self._round(conn)

    async def _round(self, conn: asyncpg.Connection) -> int:
        rows = await conn.fetch(
            "SELECT id, event_id, routing_key, payload::text AS body,"
            " payload->>'correlation_id' AS correlation_id, headers FROM outbox WHERE sent_at IS NULL"
            " ORDER BY id LIMIT $1", self._batch_size)
        if rows:
            await asyncio.gather(*(self._publish_row(row) for row in rows))
            if self.after_publish is not None:
                await self.after_publish([row["event_id"] for row in rows])
            await conn.execute("UPDATE outbox SET sent_at = now() WHERE id = ANY($1::bigint[])",
                               [row["id"] for row in rows])
            for row in rows:
                metrics.EVENTS_PUBLISHED.labels(self._outbox.service, row["routing_key"]).inc()
        if len(rows) < self._batch_size:
            # everything unsent as of this round's snapshot is now sent: the backlog is empty, no count needed
            metrics.OUTBOX_PENDING.labels(self._outbox.service).set(0)
            metrics.OUTBOX_OLDEST_AGE.labels(self._outbox.service).set(0)
        elif time.monotonic() - self._stats_at >= 1.0:  # a backlog: counted at most once a second
            await self._count_backlog(conn)
        return len(rows)

    async def _count_backlog(self, conn: asyncpg.Connection | None = None) -> None:
        """The backlog gauges (what grows while the broker is away); best effort."""
        self._stats_at = time.monotonic()
        query = ("SELECT count(*) AS n, extract(epoch FROM now() - min(created_at)) AS age"
                 " FROM outbox WHERE sent_at IS NULL")
        try:
            if conn is not None:
                stats = await conn.fetchrow(query)
            else:  # the relay's own connection failed: the database may be away too, do not wait for it
                async with asyncio.timeout(2.0):
                    async with self._pool.acquire() as pooled:
                        stats = await pooled.fetchrow(query)
        except Exception as exc:
            log.debug("cannot count the outbox backlog of %s: %s", self._outbox.service, exc)
            return
        metrics.OUTBOX_PENDING.labels(self._outbox.service).set(stats["n"])
        metrics.OUTBOX_OLDEST_AGE.labels(self._outbox.service).set(float(stats["age"] or 0))
