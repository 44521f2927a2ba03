"""The allocation audit: Redis allocations, PostgreSQL's live runs and the runner's live processes or pods,
compared in the background, drift repaired and counted (`avatar_allocation_drift_total`, by kind).

PostgreSQL is the record and the runner the truth about a run, so:
- a live run whose allocation Redis lacks (or holds on other GPUs) gets it back as PostgreSQL has it:
  left out, its GPUs would be handed to a second run (double-booked); when another allocation holds them
  by now, nothing is restored and the drift is counted as a "conflict";
- a live run this leader does not watch is adopted (or, really gone, run again): left alone, it would
  stay `running` forever;
- an allocation no live run owns is given back, and a runner run no live run owns is stopped (the
  reconciler does both every few seconds and counts them here too).
"""
from __future__ import annotations

import asyncio
import logging

from services.scheduler import store
from services.scheduler import metrics as m
from services.scheduler.engine.context import Adapters, LiveRuns, Wake, confirm_leading
from services.scheduler.records import RunRecord
from services.scheduler.engine.recovery import Recovery

log = logging.getLogger(__name__)


class Audit:
    def __init__(self, io: Adapters, live: LiveRuns, wake: Wake, *, recovery: Recovery) -> None:
        self.io = io
        self.live = live
        self.wake = wake
        self.recovery = recovery

    async def loop(self) -> None:
        while True:
            await asyncio.sleep(self.io.settings.scheduler_audit_seconds)
            try:
                await self.audit_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a dependency away: the next round looks again
                log.warning("allocation audit failed: %s", exc)

    async def audit_once(self) -> dict[str, int]:
        """One comparison; how much drift of each kind it repaired."""
        io = self.io
        # PostgreSQL first: a run is allocated in Redis before PostgreSQL records it, and its end is
        # recorded before the release, so every run read live here held its allocation when Redis is read
        async with io.pool.acquire() as conn:
            live = await store.live_allocations(conn)
        allocations = {a.allocation_id: a for a in await io.allocator.allocations()}
        drift = {"missing in redis": 0, "other gpus in redis": 0, "unwatched run": 0, "conflict": 0}
        suspects = []
        for run, deadline in live:
            held = allocations.get(run.allocation_id)
            if held is None:
                suspects.append(("missing in redis", run, deadline))
            elif (held.node, sorted(held.gpu_indices)) != (run.node, sorted(run.gpu_indices or [])):
                suspects.append(("other gpus in redis", run, deadline))
            elif run.status == "running" and run.run_id not in self.live.active \
                    and run.run_id not in self.live.starting:
                suspects.append(("unwatched run", run, deadline))
        if not suspects:
            return drift
        async with io.pool.acquire() as conn:  # still so a moment later? (a run may have ended meanwhile)
            current = await store.runs_by_ids(conn, [s[1].run_id for s in suspects])
            jobs = await store.jobs_by_ids(conn, sorted({s[1].job_id for s in suspects}))
        for kind, run, deadline in suspects:
            now = current.get(run.run_id)
            if now is None or now.status not in ("starting", "running") or now.allocation_id != run.allocation_id:
                continue
            if run.run_id in self.live.active and kind == "unwatched run":
                continue
            await confirm_leading(io)  # a stale leader would change what its successor now owns
            if kind in ("missing in redis", "other gpus in redis"):
                now = await self._still_live(now)  # it may have ended (and been released) since
                if now is None:
                    continue
                if kind == "other gpus in redis":
                    await io.allocator.release(run.allocation_id)
                if not await self.recovery.restore(now, deadline):
                    kind = "conflict"  # another allocation holds its GPUs: left for a person to look at
            if kind == "unwatched run" or (now.status == "running" and run.run_id not in self.live.active
                                           and run.run_id not in self.live.starting):
                await self.recovery.adopt(jobs[run.job_id], now)
            drift[kind] += 1
            m.DRIFT.labels(kind).inc()
            log.warning("allocation audit: run %s of %s: %s, %s", run.run_id, run.job_id, kind,
                        "left as it is" if kind == "conflict" else "repaired")
        if any(drift.values()):
            self.wake()
        return drift

    async def _still_live(self, run: RunRecord) -> RunRecord | None:
        """The run as PostgreSQL has it now, if it is still live with the same allocation."""
        async with self.io.pool.acquire() as conn:
            now = (await store.runs_by_ids(conn, [run.run_id])).get(run.run_id)
        if now is None or now.status not in ("starting", "running") or now.allocation_id != run.allocation_id:
            return None
        return now
