"""The reconciler: renews live leases, releases allocations whose run is gone, stops runner runs
no scheduled run owns, and samples usage."""
from __future__ import annotations

import asyncio
import logging

from services.scheduler import domain, store
from services.scheduler import metrics as m
from services.scheduler.engine.context import Adapters, LeadershipOver, LiveRuns, Wake, confirm_leading
from services.scheduler.engine.usage import UsageSampler
from services.scheduler.engine.watcher import stop_attempt

log = logging.getLogger(__name__)


class Reconciler:
    def __init__(self, io: Adapters, live: LiveRuns, wake: Wake, *, usage: UsageSampler) -> None:
        self.io = io
        self.live = live
        self.wake = wake
        self.usage = usage

    async def loop(self) -> None:
        while True:
            await asyncio.sleep(self.io.settings.scheduler_reconcile_seconds)
            try:
                await self.reconcile_once()
            except asyncio.CancelledError:
                raise
            except LeadershipOver as exc:  # standing down any moment now
                log.warning("reconcile skipped: %s", exc)
            except Exception:
                log.exception("reconcile failed")

    async def reconcile_once(self) -> int:
        """Renew the leases of live runs; release allocations whose run is gone. Returns how
        many were released."""
        allocator, watched = self.io.allocator, self.live.allocations
        released = 0
        allocations = await allocator.allocations()
        strangers = [a.allocation_id for a in allocations if a.allocation_id not in watched]
        async with self.io.pool.acquire() as conn:
            owners = await store.allocation_owners(conn, strangers)
        for allocation in allocations:
            if allocation.allocation_id in watched:
                await allocator.renew_lease(allocation.allocation_id, self.io.settings.scheduler_lease_seconds)
                continue
            owner = owners.get(allocation.allocation_id)
            transitional = owner is not None and owner.status in domain.RUN_LIVE
            await confirm_leading(self.io)  # a stale leader would take a successor's allocation away
            if await allocator.release(allocation.allocation_id, only_if_expired=transitional):
                released += 1
                m.RELEASED.labels("reconciler").inc()
                m.DRIFT.labels("allocation without a live run").inc()
                log.warning("released allocation %s of %s on %s: its run is gone", allocation.allocation_id,
                            allocation.workload_id, allocation.node)
        await self._stop_orphans()
        await self.usage.sample()
        if released:
            self.wake()
        return released

    async def _stop_orphans(self) -> None:
        """Stop runner runs no run of ours owns (e.g. started just before a crash)."""
        try:
            live = await self.io.runner.list_live()
        except Exception as exc:
            log.debug("cannot list the runner's live runs: %s", exc)
            return
        for attempt in live - self.live.allocations:
            if attempt in self.live.allocations:  # started while we were listing
                continue
            await confirm_leading(self.io)  # a stale leader would stop its successor's runs
            log.warning("stopping run %s: no scheduled run owns it", attempt)
            await stop_attempt(self.io.runner, attempt, self.io.settings.scheduler_stop_grace_seconds)
            m.ORPHANS_STOPPED.inc()
            m.DRIFT.labels("runner run without a live run").inc()
