"""Transactional outbox: events are rows written with the state change, published later by a relay.

The relay reads unsent rows with FOR UPDATE SKIP LOCKED (so replicas share the work), publishes
them with publisher confirms, then marks them sent. A crash between publish and mark republishes
the row: consumers' inboxes absorb the duplicate. It sleeps on LISTEN/NOTIFY with a polling fallback.
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
from services.kit.telemetry import correlation_id, in_trace, inject_headers, recall_trace

log = logging.getLogger(__name__)
Publish = Callable[[str, bytes, dict[str, Any]], Awaitable[None]]


class Outbox:
    def __init__(self, service: str) -> None:
        self.service = service
        self.channel = f"{service}_outbox"

    async def add(self, conn: asyncpg.Connection, event: Event) -> Event:
        """Record an event in the caller's transaction; it is published only if that transaction commits.

        The row keeps the current trace context; written outside any span (a background loop), it takes
        the latest context this service saw for the event's correlation id, so the trace goes on."""
        headers = inject_headers()
        if not in_trace():
            headers = await recall_trace(conn, event.correlation_id) or headers
        await self.add_many(conn, [(event, headers)])
        return event

    async def add_many(self, conn: asyncpg.Connection, events: Sequence[tuple[Event, dict[str, Any]]]) -> None:
        """Record events, each with the trace headers it carries, in the caller's transaction."""
        if not events:
            return
        # one round trip: the rows, and one wake-up of the relay (delivered only if the transaction
        # commits); payloads go as the JSON text pydantic writes (no dict built only to be serialised again)
        await conn.execute(
            "WITH added AS (INSERT INTO outbox (event_id, routing_key, payload, headers)"
            " SELECT e, r, p::jsonb, h::jsonb FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[]) AS t(e, r, p, h)"
            " RETURNING id) SELECT pg_notify($5, '') WHERE EXISTS (SELECT 1 FROM added)",
            [event.event_id for event, _ in events], [event.type for event, _ in events],
            [event.to_json() for event, _ in events], [json.dumps(headers) for _, headers in events], self.channel,
        )

    async def emit(self, conn: asyncpg.Connection, event_type: str, data: BaseModel, *, correlation_id: str,
                   causation_id: uuid.UUID | None = None) -> Event:
        event = make_event(event_type, data, producer=self.service, correlation_id=correlation_id,
                           causation_id=causation_id)
        return await self.add(conn, event)


class OutboxRelay:
    def __init__(self, pool: asyncpg.Pool, outbox: Outbox, publish: Publish, *, poll_seconds: float = 1.0,
                 batch_size: int = 200) -> None:
        self._pool = pool
        self._outbox = outbox
        self._publish = publish
        self._poll_seconds = poll_seconds
        self._batch_size = batch_size
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._listener: asyncpg.Connection | None = None
        self._stopping = False
        self._stats_at = 0.0
        # test seam: called after publishing a batch and before marking it sent
        self.after_publish: Callable[[list[uuid.UUID]], Awaitable[None]] | None = None

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

    async def _close_listener(self) -> None:
        if self._listener is not None:
            listener, self._listener = self._listener, None
            try:
                await listener.remove_listener(self._outbox.channel, self._on_notify)
            except Exception:  # a broken connection has no listener left to remove
                pass
            await self._pool.release(listener)

    async def _listen(self) -> None:
        if self._listener is not None and not self._listener.is_closed():
            return
        await self._close_listener()
        self._listener = await self._pool.acquire()  # held for LISTEN while the relay runs
        await self._listener.add_listener(self._outbox.channel, self._on_notify)

    async def _run(self) -> None:
        backoff = 0.2
        while not self._stopping:
            try:
                await self._listen()
                # cleared before looking: a row committed after the SELECT's snapshot notifies, so the
                # wait below returns at once for it; a round that found fewer rows than a batch need not
                # look again (an empty SELECT and a backlog count per published batch, under load)
                self._wake.clear()
                published = await self.relay_once()
                backoff = 0.2
                if published >= self._batch_size or self._stopping:
                    continue
                try:
                    await asyncio.wait_for(self._wake.wait(), self._poll_seconds)
                except asyncio.TimeoutError:
                    pass
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # broker or database away: keep the rows, try again later
                log.warning("outbox relay of %s failed, retrying in %.1fs: %s", self._outbox.service, backoff, exc)
                await self._close_listener()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _publish_row(self, row: asyncpg.Record) -> None:
        # its own task (gather): the workload bound here tags the PRODUCER span with avatar.workload_id
        if row["correlation_id"]:
            correlation_id.set(row["correlation_id"])
        await self._publish(row["routing_key"], row["body"].encode(), row["headers"] or {})

    async def relay_once(self) -> int:
        async with self._pool.acquire() as conn:
            async with conn.transaction():
                rows = await conn.fetch(
                    "SELECT id, event_id, routing_key, payload::text AS body,"
                    " payload->>'correlation_id' AS correlation_id, headers FROM outbox WHERE sent_at IS NULL"
                    " ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED", self._batch_size)
                if rows:
                    await asyncio.gather(*(self._publish_row(row) for row in rows))
                    if self.after_publish is not None:
                        await self.after_publish([row["event_id"] for row in rows])
                    await conn.execute("UPDATE outbox SET sent_at = now() WHERE id = ANY($1::bigint[])",
                                       [row["id"] for row in rows])
                    for row in rows:
                        metrics.EVENTS_PUBLISHED.labels(self._outbox.service, row["routing_key"]).inc()
                # the backlog gauges: when idle, else at most once a second (a busy relay runs many rounds)
                now = time.monotonic()
                stats = None
                if not rows or now - self._stats_at >= 1.0:
                    stats = await conn.fetchrow(
                        "SELECT count(*) AS n, extract(epoch FROM now() - min(created_at)) AS age"
                        " FROM outbox WHERE sent_at IS NULL")
                    self._stats_at = now
        if stats is not None:
            metrics.OUTBOX_PENDING.labels(self._outbox.service).set(stats["n"])
            metrics.OUTBOX_OLDEST_AGE.labels(self._outbox.service).set(float(stats["age"] or 0))
        return len(rows)
