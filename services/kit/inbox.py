"""The inbox claim: the first statement of every handler's transaction.

Claiming records the event in the inbox (a re-delivered event claims nothing, so its handler is skipped),
remembers the consumer span as its correlation id's latest trace context (later work on the workload
without a message continues the trace from there) and, for handlers that must not run alongside another
transaction on the same thing, takes that thing's advisory lock. One round trip for all of it, for one
event or for a batch of them.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Callable, Sequence

import asyncpg

from contracts.events import Event

# what a handler's transaction is serialised on: (namespace, key), e.g. ("trainer.workload", workload id)
LockKey = Callable[[Event], tuple[str, str]]

_CLAIM_HEAD = (
    "WITH claimed AS ("
    " INSERT INTO inbox (event_id, event_type) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING event_id),"
    " remembered AS ("
    " INSERT INTO trace_context (correlation_id, headers) SELECT $3, $4::jsonb FROM claimed"
    " WHERE $4::jsonb IS NOT NULL"
    " ON CONFLICT (correlation_id) DO UPDATE SET headers = EXCLUDED.headers, updated_at = now())")
_CLAIM = _CLAIM_HEAD + " SELECT EXISTS (SELECT 1 FROM claimed)"

# The lock is taken inside the claim statement, so it is held before the handler's next statement takes
# its snapshot: that statement sees what the previous holder committed. (pg_advisory_xact_lock(
# hashtext(namespace), hashtext(key)): the form the services' own lock helpers use, so a lock taken here
# excludes theirs.)
_CLAIM_AND_LOCK = (_CLAIM_HEAD + ", locked AS (SELECT pg_advisory_xact_lock(hashtext($5), hashtext($6)) FROM claimed)"
                   " SELECT EXISTS (SELECT 1 FROM claimed) AND (SELECT count(*) FROM locked) = 1")

# The same for a batch. An event delivered twice within the batch is claimed once; a correlation id keeps
# the trace context of its last claimed event (one row may be written once per statement); the locks are
# taken in the order of their lock ids, so two batches wanting the same keys queue instead of deadlocking.
_CLAIM_MANY = (
    "WITH delivered AS (SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])"
    " WITH ORDINALITY AS d(event_id, event_type, correlation_id, headers, lock_namespace, lock_key, n)),"
    " claimed AS (INSERT INTO inbox (event_id, event_type)"
    " SELECT DISTINCT ON (event_id) event_id, event_type FROM delivered ORDER BY event_id, n"
    " ON CONFLICT DO NOTHING RETURNING event_id),"
    " remembered AS (INSERT INTO trace_context (correlation_id, headers)"
    " SELECT DISTINCT ON (d.correlation_id) d.correlation_id, d.headers::jsonb"
    " FROM delivered d JOIN claimed c ON c.event_id = d.event_id WHERE d.headers IS NOT NULL"
    " ORDER BY d.correlation_id, d.n DESC"
    " ON CONFLICT (correlation_id) DO UPDATE SET headers = EXCLUDED.headers, updated_at = now()),"
    " locked AS (SELECT pg_advisory_xact_lock(k.namespace, k.key) FROM"
    " (SELECT DISTINCT hashtext(d.lock_namespace) AS namespace, hashtext(d.lock_key) AS key"
    "  FROM delivered d JOIN claimed c ON c.event_id = d.event_id WHERE d.lock_namespace IS NOT NULL"
    "  ORDER BY 1, 2) k)"
    " SELECT array(SELECT event_id FROM claimed) AS claimed, (SELECT count(*) FROM locked) AS locks")


def lock_per_workload(namespace: str) -> LockKey:
    """The LockKey of handlers serialised per workload: (namespace, the event's workload id)."""
    def key(event: Event) -> tuple[str, str]:
        return namespace, event.data.workload_id  # type: ignore[attr-defined]
    return key


@dataclass(frozen=True)
class Claim:
    """One delivered event to claim: its trace context to remember (None: none) and its lock, if any."""

    event: Event
    trace_headers: dict | None = None
    lock: tuple[str, str] | None = None


async def claim(conn: asyncpg.Connection, event: Event, trace_headers: dict | None = None,
                lock: tuple[str, str] | None = None) -> bool:
    """Record the event in the inbox in the caller's transaction; False if it was handled before.
    With `lock` (namespace, key), the claimed event's transaction also holds that advisory lock."""
    if lock is None:
        return await conn.fetchval(_CLAIM, event.event_id, event.type, event.correlation_id, trace_headers)
    return await conn.fetchval(_CLAIM_AND_LOCK, event.event_id, event.type, event.correlation_id, trace_headers,
                               *lock)


async def claim_many(conn: asyncpg.Connection, claims: Sequence[Claim]) -> set[uuid.UUID]:
    """Claim a batch in the caller's transaction: the ids of the events not handled before, each of
    their locks held by the transaction."""
    row = await conn.fetchrow(
        _CLAIM_MANY, [c.event.event_id for c in claims], [c.event.type for c in claims],
        [c.event.correlation_id for c in claims],
        [json.dumps(c.trace_headers) if c.trace_headers is not None else None for c in claims],
        [c.lock[0] if c.lock else None for c in claims], [c.lock[1] if c.lock else None for c in claims])
    return set(row["claimed"])
