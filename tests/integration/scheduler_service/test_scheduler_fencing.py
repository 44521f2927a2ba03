"""Split brain stays impossible: a leader stands down before PostgreSQL lets its lease go, and a leader whose
lease another replica took (it does not know yet) neither writes nor stops, releases or restores anything of
its successor's, through the engine it really runs (Engine.lead with its term's fenced pool)."""
from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from contracts.events import WorkloadApproved
from services.scheduler.engine.context import LeadershipOver
from services.scheduler.main import create_app
from tests.integration.scheduler_service.support import (allocations, component, component_processes, register,
                                                         workload)
from tests.support.infra import wait_until
from tests.support.services import running_service


async def _connect(url: str) -> asyncpg.Connection:
    return await asyncpg.connect(url, server_settings={"search_path": "scheduler"})


async def test_a_leader_whose_renewals_hang_stands_down_before_its_lease_runs_out(scheduler_settings, fresh):
    """Renewals that hang (PostgreSQL reachable but the lease row busy, a network that drops packets) are the
    worst case: each try takes the whole check interval. The engine must be stopped before PostgreSQL's
    expiry, when a standby may take the lease."""
    settings = scheduler_settings(scheduler_leader_grace_seconds=3, scheduler_leader_renew_seconds=1)
    async with running_service(create_app, settings) as service:
        state = service.app.state.scheduler
        await wait_until(lambda: state.leadership.leading and state.engine.leading, message="leadership")
        epoch = state.leadership.epoch
        blocker = await _connect(fresh.postgres_url)
        try:
            tx = blocker.transaction()
            await tx.start()
            # renewals (UPDATEs) wait behind this lock; reads, and the fencing trigger's FOR KEY SHARE, do not
            expires = (await blocker.fetchval("SELECT extract(epoch FROM expires_at) FROM leadership"
                                              " FOR NO KEY UPDATE"))
            stopped_at = None
            while time.time() < float(expires) + 3:
                if not state.engine.leading:
                    stopped_at = time.time()
                    break
                await asyncio.sleep(0.02)
            assert stopped_at is not None, "the leader led on past its lease"
            assert stopped_at < float(expires), f"led {stopped_at - float(expires):.2f}s past its lease"
            await tx.rollback()
        finally:
            await blocker.close()
        # the lock gone, it takes the lease again (a new term: the old one may have been taken meanwhile)
        await wait_until(lambda: state.leadership.leading and state.leadership.epoch == epoch + 1,
                         timeout=15, message="leadership again")


async def test_a_leader_whose_lease_was_taken_leaves_its_successors_runs_and_allocations_alone(
        scheduler_settings, publish, tap, fresh):
    settings = scheduler_settings(scheduler_leader_grace_seconds=60, scheduler_leader_renew_seconds=2,
                                  scheduler_audit_seconds=3600)
    async with running_service(create_app, settings) as service:
        state = service.app.state.scheduler
        engine, leadership = state.engine, state.leadership
        await wait_until(lambda: leadership.leading and engine.leading, message="leadership")
        epoch = leadership.epoch
        await register(publish, service, "CL-PROBE")
        wl = workload("WL-FENCE", component("CL-PROBE", gpu_count=1, sleep_s=6.0))
        await publish("workload.approved", WorkloadApproved(workload_id="WL-FENCE", auto=True, workload=wl))
        await tap.wait_for("workload.started", "WL-FENCE")
        await wait_until(lambda: component_processes("WL-FENCE"), message="the component process")
        [held] = await allocations(service, "WL-FENCE")

        # the engine's connections are its term's: they carry its fencing token
        async with engine.io.pool.acquire() as conn:
            assert await conn.fetchval("SELECT current_setting('avatar.leader_epoch')") == str(epoch)

        admin = await _connect(fresh.postgres_url)
        try:
            # another replica takes the lease; this leader learns it only when a renewal gets through, and
            # until then its renewals hang (the row is locked), as when its network drops packets
            await admin.execute("UPDATE leadership SET epoch = epoch + 1, holder = 'successor',"
                                " expires_at = now() + interval '60 seconds'")
            tx = admin.transaction()
            await tx.start()
            await admin.execute("SELECT 1 FROM leadership FOR NO KEY UPDATE")
            try:
                assert leadership.leading and engine.leading  # it does not know yet
                with pytest.raises(asyncpg.PostgresError, match="fenced"):  # its writes are refused
                    await engine.io.pool.execute("UPDATE runs SET reason = reason WHERE job_id = 'WL-FENCE'")

                # the run is the successor's now: to this leader it looks like nobody's (an orphan), yet it
                # must neither stop it nor give its GPUs back
                engine.live.allocations.discard(held.allocation_id)
                with pytest.raises(LeadershipOver):
                    await engine.reconcile_once()
                await engine.io.allocator.release(held.allocation_id)  # Redis forgets it: nothing is restored
                with pytest.raises(LeadershipOver):
                    await engine.audit.audit_once()
                await asyncio.sleep(1.5)  # the reconciler's own rounds (every 0.5 s) leave them alone too
                assert component_processes("WL-FENCE")
                assert await allocations(service, "WL-FENCE") == []

                # an API command made meanwhile is not refused for this leader's lost term
                await publish("workload.approved", WorkloadApproved(workload_id="WL-FENCE-2", auto=True, workload=(
                    workload("WL-FENCE-2", component("CL-PROBE", gpu_count=1, sleep_s=0.1)))))

                async def waiting():
                    return await admin.fetchval("SELECT status FROM jobs WHERE job_id = 'WL-FENCE-2'") == "waiting"

                await wait_until(waiting, message="the second workload recorded")
                moved = await service.client.patch("/queue/WL-FENCE-2", json={"priority": "high"},
                                                   headers=service.headers("admin"))
                assert moved.status_code == 200, moved.text
            finally:
                await tx.rollback()
            # the successor goes away: this replica leads again, adopts the run and finishes both workloads
            await admin.execute("UPDATE leadership SET expires_at = '-infinity'")
        finally:
            await admin.close()
        await wait_until(lambda: leadership.leading and leadership.epoch == epoch + 2, timeout=20,
                         message="a new term")
        for workload_id in ("WL-FENCE", "WL-FENCE-2"):
            await tap.wait_for("workload.completed", workload_id, timeout=30)
        assert tap.emitted("WL-FENCE") == ["workload.queued", "workload.started", "workload.completed"]
        detail = (await service.client.get("/workloads/WL-FENCE", headers=service.headers("viewer"))).json()
        assert detail["components"][0]["attempt"] == 1  # adopted, never stopped nor run again
        await wait_until(lambda: _none_left(service), message="every allocation released")


async def _none_left(service) -> bool:
    return await allocations(service) == []
