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

from contracts.events import Event
from contracts.topology import PUBLISHES
from services.kit import metrics
from services.kit.db import advisory_lock_key
from services.kit.listening import Backoff, Listening
from services.kit.pacing import Floor
from services.kit.telemetry import correlation_id
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

    def _check(self, events: Sequence[tuple[Event, dict[str, Any]]]) -> None:
        """A service records only the events it publishes, as itself: consumers would refuse any other."""
        allowed = PUBLISHES.get(self.service)
        for event, _ in events:
            if allowed is not None and (event.type not in allowed or event.producer != self.service):
                raise ValueError(f"{self.service} does not publish {event.type} as {event.producer!r} "
                                 "(contracts/topology.py PUBLISHES)")

    async def add_many(self, conn: asyncpg.Connection, events: Sequence[tuple[Event, dict[str, Any]]]) -> None:
        """Record events, each with the trace headers it carries, in the caller's transaction."""
        if not events:
            return
        self._check(events)
        # one round trip for the rows; payloads go as the JSON text pydantic writes (no dict built only
        # to be serialised again)
        await conn.execute(
            "INSERT INTO outbox (event_id, routing_key, payload, headers)"
            " SELECT e, r, p::jsonb, h::jsonb FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[]) AS t(e, r, p, h)",
            [event.event_id for event, _ in events], [event.type for event, _ in events],
            [event.to_json() for event, _ in events], [json.dumps(headers) for _, headers in events],
        )
        self.wakeups.after_commit(conn, self.channel)

    async def add_with(self, conn: asyncpg.Connection, change: str, args: Sequence[Any],
                       events: Sequence[tuple[Event, dict[str, Any]]]) -> bool:
        """A state change and its events in one statement: atomic without a transaction of its own (one
        round trip instead of four: BEGIN, the change, the outbox rows, COMMIT).

        `change` is one INSERT, UPDATE or DELETE with a RETURNING clause, its parameters $1..$n in `args`;
        the events are recorded only if it returned a row. False when nothing changed."""
        n = len(args)
        self._check(events)
        if not events:
            return bool(await conn.fetchval(f"WITH change AS ({change}) SELECT count(*) FROM change", *args))
        changed = await conn.fetchval(
            f"WITH change AS ({change}),"
            f" added AS (INSERT INTO outbox (event_id, routing_key, payload, headers)"
            f" SELECT e, r, p::jsonb, h::jsonb FROM unnest(${n + 1}::uuid[], ${n + 2}::text[], ${n + 3}::text[],"
            f" ${n + 4}::text[]) AS t(e, r, p, h) WHERE EXISTS (SELECT 1 FROM change) RETURNING 1)"
            f" SELECT count(*) FROM change",
            *args, [event.event_id for event, _ in events], [event.type for event, _ in events],
            [event.to_json() for event, _ in events], [json.dumps(headers) for _, headers in events])
        if not changed:
            return False
        self.wakeups.after_commit(conn, self.channel)
        return True


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
        # holds the lock and LISTENs; the rounds run on its connection
        self._listening = Listening.on_pool(pool, outbox.channel, outbox.wakeups,
                                            lock_key=relay_lock_key(outbox.channel), prepare=self._prepare)
        self._task: asyncio.Task | None = None
        self._stopping = False
        self._stats_at = 0.0
        # test seam: called after publishing a batch and before marking it sent
        self.after_publish: Callable[[list[uuid.UUID]], Awaitable[None]] | None = None

    @property
    def leading(self) -> bool:
        return self._listening.held

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"outbox-relay-{self._outbox.service}")

    async def stop(self, grace: float = 5.0) -> None:
        """Let the batch in flight be marked sent (so it is not republished needlessly), then stop."""
        self._stopping = True
        self._listening.wake()
        if self._task:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), grace)
            except (asyncio.TimeoutError, Exception):
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
        await self._listening.drop()  # the pool's reset unlocks: another replica may lead

    async def _prepare(self, conn: asyncpg.Connection) -> None:
        # marking rows sent need not wait for the disk: a mark lost with a database crash only
        # republishes those rows, which the consumers' inboxes absorb
        await conn.execute("SET synchronous_commit = off")
        log.info("the outbox relay of %s publishes from this process", self._outbox.service)

    async def _run(self) -> None:
        backoff = Backoff(0.2, 5.0)
        floor = Floor(self._min_round_seconds)
        full = False  # the last round published a whole batch: more are waiting
        while not self._stopping:
            try:
                if not await self._listening.hold():  # another replica's relay publishes: stand by
                    await self._listening.wait(self._poll_seconds)
                    continue
                await floor.wait(ready=full)  # rows committed meanwhile go out together; a backlog at once
                # cleared before looking: a row committed after the SELECT's snapshot notifies, so the
                # wait below returns at once for it; a round that found fewer rows than a batch need not
                # look again (an empty SELECT per published batch, under load)
                self._listening.clear()
                published = await self._round(self._listening.conn)
                backoff.reset()
                full = published >= self._batch_size
                if full or self._stopping:
                    continue
                await self._listening.wait(self._poll_seconds)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # broker or database away: keep the rows, try again later
                log.warning("outbox relay of %s failed, retrying in %.1fs: %s", self._outbox.service,
                            backoff.delay, exc)
                await self._count_backlog()
                await self._listening.drop()
                await backoff.sleep()

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
