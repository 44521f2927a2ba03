"""The usage history's samples (RS-06): while this replica leads, the cluster's figures (what GET /resources
answers) are written every `scheduler_history_seconds` to `resource_samples`, and samples older than
`scheduler_history_retention_days` are deleted in small batches. Only the leader records, so two replicas
never write the same moment twice; a sample lost to a database blip is a gap in the chart, nothing more.

It runs beside the engine, not among its leading loops, on the service's own pool: a chart's sample never
competes with the engine's term of leadership (its fenced pool, its task group) while a run starts or ends.
"""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import asyncpg

from services.scheduler import figures, history
from services.scheduler.core.allocator import RedisAllocator
from services.scheduler.settings import SchedulerSettings

log = logging.getLogger(__name__)
PRUNE_BATCH = 5000
PRUNE_MAX_BATCHES = 20

_INSERT = ("INSERT INTO resource_samples (at, resource, total, allocated, used)"
           " SELECT $1, * FROM unnest($2::text[], $3::float8[], $4::float8[], $5::float8[])"
           " ON CONFLICT (at, resource) DO NOTHING")
_PRUNE = ("DELETE FROM resource_samples WHERE ctid IN (SELECT ctid FROM resource_samples"
          " WHERE at < $1 LIMIT $2)")


async def record(pool: asyncpg.Pool, rows: list[history.SampleRow], at: datetime) -> None:
    await pool.execute(_INSERT, at, [r.resource for r in rows], [r.total for r in rows],
                       [r.allocated for r in rows], [r.used for r in rows])


async def prune(pool: asyncpg.Pool, older_than: datetime, *, batch: int = PRUNE_BATCH,
                max_batches: int = PRUNE_MAX_BATCHES) -> int:
    """Delete samples taken before `older_than`, a batch per statement (short locks); how many went.
    At most max_batches batches: the next round goes on where this one stopped."""
    deleted = 0
    for _ in range(max_batches):
        count = int((await pool.execute(_PRUNE, older_than, batch)).rsplit(" ", 1)[-1])
        deleted += count
        if count < batch:
            break
    return deleted


class HistoryRecorder:
    def __init__(self, *, pool: asyncpg.Pool, redis: Any, allocator: RedisAllocator, settings: SchedulerSettings,
                 measures: frozenset[str], leading: Callable[[], bool]) -> None:
        self.pool, self.redis, self.allocator, self.settings = pool, redis, allocator, settings
        self.measures = measures
        self.leading = leading

    async def sample_once(self, now: datetime | None = None) -> int:
        """One sample now, then the samples past the retention pruned; how many old ones went."""
        now = now or datetime.now(timezone.utc)
        view = await figures.cluster_resources(self.pool, self.redis, self.allocator, self.settings.sched_prefix,
                                               self.measures)
        await record(self.pool, history.sample_rows(view), now)
        return await prune(self.pool, now - timedelta(days=self.settings.scheduler_history_retention_days))

    async def loop(self) -> None:
        """Samples every `scheduler_history_seconds` while this replica leads; the first one as soon as it
        leads, so a new leader's chart does not start with a gap."""
        due = 0.0
        loop = asyncio.get_running_loop()
        poll_seconds = min(1.0, self.settings.scheduler_history_seconds)
        while True:
            if self.leading() and loop.time() >= due:
                due = loop.time() + self.settings.scheduler_history_seconds
                try:
                    await self.sample_once()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # a dependency away: this moment is a gap in the chart
                    log.warning("usage history sample failed: %s", exc)
            elif not self.leading():
                due = 0.0
            await asyncio.sleep(poll_seconds)
