"""The usage history's samples (RS-06): while this replica leads, the cluster's figures (what GET /resources
answers) are written every `scheduler_history_seconds` to `resource_samples`, and samples older than
`scheduler_history_retention_days` are deleted in small batches. Only the leader records, so two replicas
never write the same moment twice; a sample lost to a database blip is a gap in the chart, nothing more.
"""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone

import asyncpg

from services.scheduler import figures, history
from services.scheduler.engine.context import Adapters

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
    def __init__(self, io: Adapters, *, measures: frozenset[str]) -> None:
        self.io = io
        self.measures = measures

    async def sample_once(self, now: datetime | None = None) -> int:
        """One sample now, then the samples past the retention pruned; how many old ones went."""
        io = self.io
        now = now or datetime.now(timezone.utc)
        view = await figures.cluster_resources(io.pool, io.redis, io.allocator, io.settings.sched_prefix,
                                               self.measures)
        await record(io.pool, history.sample_rows(view), now)
        return await prune(io.pool, now - timedelta(days=io.settings.scheduler_history_retention_days))

    async def loop(self) -> None:
        while True:  # the first sample at once: a new leader's chart does not start with a gap
            try:
                await self.sample_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a dependency away: this moment is a gap in the chart
                log.warning("usage history sample failed: %s", exc)
            await asyncio.sleep(self.io.settings.scheduler_history_seconds)
