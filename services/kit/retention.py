"""Retention of the messaging bookkeeping every service keeps: sent outbox rows, inbox records and
remembered trace contexts. Without it the three tables grow with every event, forever.

The retention must outlast any way the same event can arrive twice: a relay that crashed between
publishing and marking a row sent republishes it within seconds; a message unacked while a consumer
was down is redelivered when the consumer comes back. Days, not minutes: the default is 7. An inbox
record younger than that is never deleted, so a duplicate within the retention is still absorbed.

Deletes go in small batches (each its own short transaction) so a large backlog never holds locks
for long or competes with the saga for minutes.
"""
from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import asyncpg

from services.kit import metrics

log = logging.getLogger(__name__)

# (table, the statement deleting up to $2 rows older than $1); outbox rows are found by id order (the
# oldest first), the others by their time index
_SWEEPS = (
    ("outbox", "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE sent_at IS NOT NULL"
               " AND sent_at < now() - $1::interval ORDER BY id LIMIT $2)"),
    ("inbox", "DELETE FROM inbox WHERE ctid IN (SELECT ctid FROM inbox WHERE received_at < now() - $1::interval"
              " LIMIT $2)"),
    ("trace_context", "DELETE FROM trace_context WHERE correlation_id IN (SELECT correlation_id FROM trace_context"
                      " WHERE updated_at < now() - $1::interval LIMIT $2)"),
)


async def prune(pool: asyncpg.Pool, older_than: timedelta, *, batch: int = 1000,
                max_batches: int = 100) -> dict[str, int]:
    """Delete rows older than `older_than`; returns how many per table. At most max_batches batches
    per table in one call: the next sweep goes on where this one stopped."""
    deleted: dict[str, int] = {}
    for table, statement in _SWEEPS:
        total = 0
        for _ in range(max_batches):
            status = await pool.execute(statement, older_than, batch)
            count = int(status.rsplit(" ", 1)[-1])
            total += count
            if count < batch:
                break
        deleted[table] = total
    return deleted


async def sweep_forever(pool: asyncpg.Pool, service: str, older_than: timedelta, every: float, *,
                        batch: int = 1000, max_batches: int = 100) -> None:
    """The service loop: prune now and then every `every` seconds; a failed sweep waits for the next.
    A sweep that stopped at its cap goes on after a short pause, so a busy service's backlog shrinks
    however fast it grows, without one long sweep competing with the saga."""
    while True:
        capped = False
        try:
            deleted = await prune(pool, older_than, batch=batch, max_batches=max_batches)
            capped = any(count >= batch * max_batches for count in deleted.values())
            for table, count in deleted.items():
                metrics.RETENTION_DELETED.labels(service, table).inc(count)
            if any(deleted.values()):
                log.info("%s retention: deleted %s", service, deleted)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the database may be away; the rows wait for the next sweep
            log.warning("%s retention sweep failed: %s", service, exc)
        await asyncio.sleep(min(every, 1.0) if capped else every)
