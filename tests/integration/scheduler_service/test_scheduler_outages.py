"""The scheduler through dependency outages while runs are live: Redis lost (SHUTDOWN NOSAVE, its keys gone)
while runs end, and PostgreSQL connections terminated under the leader. No workload stays running, no GPU
leaks or is held by two live runs, `/resources` agrees with the live runs once healed, and no healthy run
is run again."""
from __future__ import annotations

import asyncio

import asyncpg
import pytest

from contracts.events import WorkloadApproved
from services.scheduler.leader import EPOCH_SETTING
from services.scheduler.main import create_app
from tests.integration.scheduler_service.support import allocations, component, register, workload
from tests.support.chaos import Sampler, attempts, figures, report, settle
from tests.support.infra import wait_until
from tests.support.postgres_server import terminate_backends
from tests.support.redis_server import RedisServer
from tests.support.services import running_service

NODES = """
nodes:
  - name: node-a
    cpu: 16
    memory: 64GB
    gpus:
      A100: {count: 4, memory: 80GB}
"""
TERMINAL = {"completed", "failed", "cancelled"}


@pytest.fixture
def redis_server():
    with RedisServer() as server:
        yield server


@pytest.fixture
def four_gpus(tmp_path):
    path = tmp_path / "nodes-4.yaml"
    path.write_text(NODES)
    return path


async def statuses(service, workload_ids) -> dict[str, str | None]:
    found = {}
    for workload_id in workload_ids:
        response = await service.client.get(f"/workloads/{workload_id}", headers=service.headers("viewer"))
        found[workload_id] = response.json().get("status") if response.status_code == 200 else None
    return found


async def allocated_gpus(service) -> int:
    resources = (await service.client.get("/resources", headers=service.headers("viewer"))).json()
    return sum(item["allocated"] for item in resources["gpus"])


async def healed(service, ids) -> float | None:
    """Seconds until every workload is terminal and nothing is allocated any more (None: not within 60 s)."""
    async def done() -> bool:
        found = await statuses(service, ids)
        return all(status in TERMINAL for status in found.values()) and await allocations(service) == []

    return await settle(done)



async def each_completed_once(tap, ids: list[str]) -> None:
    """Every workload published queued, started, completed once each. The record settles before its event
    comes through the outbox, so each completion is waited for first."""
    for workload_id in ids:
        await tap.wait_for("workload.completed", workload_id, timeout=30)
        assert tap.emitted(workload_id) == ["workload.queued", "workload.started", "workload.completed"]

async def test_losing_redis_while_runs_end_leaves_nothing_stuck_leaked_or_double_booked(
        scheduler_settings, redis_server, four_gpus, publish, tap, fresh):
    settings = scheduler_settings(redis_url=redis_server.url, scheduler_nodes_file=four_gpus)
    ids = [f"WL-REDIS-{index}" for index in range(8)]
    async with running_service(create_app, settings) as service:
        await wait_until(lambda: service.app.state.scheduler.leadership.leading, message="leadership")
        await register(publish, service, "CL-PROBE")
        with Sampler(fresh.postgres_url, redis_url=redis_server.url, sched_prefix=settings.sched_prefix) as sampler:
            for index, workload_id in enumerate(ids):  # two rounds of four; the first ends in the outage
                wl = workload(workload_id, component("CL-PROBE", gpu_count=1, sleep_s=2.0 + 0.2 * (index % 4)),
                              max_runtime="10m")
                await publish("workload.approved", WorkloadApproved(workload_id=workload_id, auto=True, workload=wl))
            await wait_until(lambda: len(tap.of("workload.started")) >= 4, timeout=20, message="four started")
            await asyncio.sleep(1.5)
            redis_server.shutdown()  # its keys are gone: queue, inventory, allocations
            await asyncio.sleep(3)
            redis_server.start()

            recovered = await healed(service, ids)
            leaked = len(await allocations(service))
        final = await statuses(service, ids)
        runs = await attempts(fresh.postgres_url)
        report("redis outage, 8 workloads",
               figures(final, runs, sampler, done="completed", leaked=leaked, recovered=recovered))
        assert sampler.samples > 20 and sampler.double_booked == [], sampler.double_booked[:10]
        assert final == {workload_id: "completed" for workload_id in ids}
        assert runs == {workload_id: 1 for workload_id in ids}  # no reruns
        assert leaked == 0 and await allocated_gpus(service) == 0  # /resources agrees with the live runs: none
        detail = await service.client.get(f"/workloads/{ids[0]}", headers=service.headers("viewer"))
        assert detail.status_code == 200, detail.text
        await each_completed_once(tap, ids)


async def test_the_leader_keeps_its_runs_through_terminated_database_connections(
        scheduler_settings, four_gpus, publish, tap, fresh):
    settings = scheduler_settings(scheduler_nodes_file=four_gpus, scheduler_leader_grace_seconds=30)
    ids = [f"WL-PGBLIP-{index}" for index in range(6)]
    async with running_service(create_app, settings) as service:
        leadership = service.app.state.scheduler.leadership
        await wait_until(lambda: leadership.leading, message="leadership")
        epoch = getattr(leadership, "epoch", None)
        await register(publish, service, "CL-PROBE")
        with Sampler(fresh.postgres_url) as sampler:
            for index, workload_id in enumerate(ids):
                wl = workload(workload_id, component("CL-PROBE", gpu_count=1, sleep_s=3.0 + 0.3 * (index % 4)),
                              max_runtime="10m")
                await publish("workload.approved", WorkloadApproved(workload_id=workload_id, auto=True, workload=wl))
            await wait_until(lambda: len(tap.of("workload.started")) >= 4, timeout=20, message="four started")
            terminated = [await terminate_backends(fresh.postgres_url)]
            await asyncio.sleep(1.0)
            terminated.append(await terminate_backends(fresh.postgres_url))
            recovered = await healed(service, ids)
            leaked = len(await allocations(service))
        final = await statuses(service, ids)
        runs = await attempts(fresh.postgres_url)
        report("pg_terminate_backend twice, 6 workloads", figures(
            final, runs, sampler, done="completed", leaked=leaked, recovered=recovered, terminated=terminated))
        assert all(terminated)
        assert runs == {workload_id: 1 for workload_id in ids}  # not one healthy run started again
        assert final == {workload_id: "completed" for workload_id in ids}
        assert sampler.double_booked == [] and leaked == 0
        assert leadership.leading and leadership.epoch == epoch  # it never stood down
        await each_completed_once(tap, ids)


async def lease_epoch(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval("SELECT epoch FROM scheduler.leadership")
    finally:
        await conn.close()


async def test_a_leader_that_lost_its_lease_cannot_write_after_the_takeover(scheduler_settings, publish, tap, fresh):
    """Split brain: the leader's lease runs out unnoticed (a stalled VM, a long pause) and leadership is taken
    again under a new epoch; whatever the old term still writes is refused, and it stands down at its next
    renewal. The run it started is adopted, not run again."""
    settings = scheduler_settings(scheduler_leader_grace_seconds=30, scheduler_leader_renew_seconds=1)
    contexts = [running_service(create_app, settings), running_service(create_app, settings)]
    replicas = [await context.__aenter__() for context in contexts]
    try:
        await wait_until(lambda: any(r.app.state.scheduler.leadership.leading for r in replicas), message="a leader")
        old = next(r for r in replicas if r.app.state.scheduler.leadership.leading)
        old_epoch = old.app.state.scheduler.leadership.epoch
        assert old_epoch == await lease_epoch(fresh.postgres_url)
        await register(publish, old, "CL-PROBE")
        wl = workload("WL-SPLIT", component("CL-PROBE", gpu_count=1, sleep_s=4.0))
        await publish("workload.approved", WorkloadApproved(workload_id="WL-SPLIT", auto=True, workload=wl))
        await tap.wait_for("workload.started", "WL-SPLIT")
        # a connection of the old term, as the engine's pool makes them (its fencing token in its settings),
        # held by the stalled leader across the takeover
        stale = await asyncpg.connect(fresh.postgres_url, server_settings={
            EPOCH_SETTING: str(old_epoch), "search_path": "scheduler"})
        try:
            await stale.execute("UPDATE runs SET reason = reason WHERE job_id = 'WL-SPLIT'")  # its term: accepted
            conn = await asyncpg.connect(fresh.postgres_url)
            try:  # the old leader's lease runs out unnoticed
                await conn.execute("UPDATE scheduler.leadership SET expires_at = now() - interval '1 second'")
            finally:
                await conn.close()

            async def taken_over():
                return await lease_epoch(fresh.postgres_url) > old_epoch

            await wait_until(taken_over, timeout=15, message="a takeover under a new epoch")
            with pytest.raises(asyncpg.PostgresError, match="fenced"):
                await stale.execute("UPDATE runs SET status = 'failed' WHERE job_id = 'WL-SPLIT'")
            with pytest.raises(asyncpg.PostgresError, match="fenced"):
                await stale.execute("UPDATE jobs SET status = 'failed' WHERE job_id = 'WL-SPLIT'")
            current = await asyncpg.connect(fresh.postgres_url, server_settings={
                EPOCH_SETTING: str(await lease_epoch(fresh.postgres_url)), "search_path": "scheduler"})
            try:  # the new term's writes, and those of connections outside the engine, go through
                await current.execute("UPDATE runs SET reason = reason WHERE job_id = 'WL-SPLIT'")
            finally:
                await current.close()
        finally:
            await stale.close()
        await wait_until(lambda: [r.app.state.scheduler.leadership.epoch for r in replicas
                                  if r.app.state.scheduler.leadership.leading] == [old_epoch + 1],
                         timeout=15, message="one leader, of the new epoch")
        leader = next(r for r in replicas if r.app.state.scheduler.leadership.leading)
        await tap.wait_for("workload.completed", "WL-SPLIT", timeout=30)
        assert tap.emitted("WL-SPLIT") == ["workload.queued", "workload.started", "workload.completed"]
        assert await attempts(fresh.postgres_url) == {"WL-SPLIT": 1}  # adopted, not run again
        assert await allocations(leader) == []
    finally:
        for context in contexts:
            await context.__aexit__(None, None, None)
