"""Usage samples of the watched runs, measured by the runner, kept in Redis for the HTTP views."""
from __future__ import annotations

import logging

from services.scheduler.engine.context import Adapters, LiveRuns

log = logging.getLogger(__name__)


class UsageSampler:
    def __init__(self, io: Adapters, live: LiveRuns, *, measures: frozenset[str]) -> None:
        self.io = io
        self.live = live
        self.measures = measures

    async def sample(self) -> None:
        if not self.measures:
            return
        io = self.io
        ttl = max(3 * io.settings.scheduler_reconcile_seconds, 10)
        for run_id, active in list(self.live.active.items()):
            try:
                usage = await io.runner.usage(active.handle)
            except Exception as exc:
                log.debug("usage of %s unavailable: %s", run_id, exc)
                continue
            if usage is None:
                continue
            fields = {k: v for k, v in (("memory_bytes", usage.memory_rss_bytes),
                                        ("cpu_cores", usage.cpu_cores)) if v is not None}
            if fields:
                key = f"{io.settings.sched_prefix}usage:{run_id}"
                await io.redis.hset(key, mapping={k: str(v) for k, v in fields.items()})
                await io.redis.expire(key, int(ttl))
