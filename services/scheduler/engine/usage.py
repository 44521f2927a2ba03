"""Usage samples of the watched runs, measured by the runner, kept in Redis for the HTTP views."""
from __future__ import annotations

import logging

from services.scheduler.core.runners.base import GpuUsage
from services.scheduler.engine.context import Adapters, LiveRuns

log = logging.getLogger(__name__)
_UNMEASURED = GpuUsage(memory_bytes=None, utilization=None, busy=None)


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
            gpu = usage.gpu or _UNMEASURED
            fields = {k: v for k, v in (("memory_bytes", usage.memory_rss_bytes), ("cpu_cores", usage.cpu_cores),
                                        ("gpus_busy", gpu.busy), ("gpu_memory_bytes", gpu.memory_bytes),
                                        ("gpu_utilization", gpu.utilization)) if v is not None}
            if fields:
                key = f"{io.settings.sched_prefix}usage:{run_id}"
                # the whole sample replaces the last one: a figure that cannot be measured any
                # more (nvidia-smi failing) disappears instead of standing as if it were current
                async with io.redis.pipeline(transaction=True) as pipe:
                    pipe.delete(key)
                    pipe.hset(key, mapping={k: str(v) for k, v in fields.items()})
                    pipe.expire(key, int(ttl))
                    await pipe.execute()
