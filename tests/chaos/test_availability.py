"""A running training survives every fault that is not its own (issue 21): PostgreSQL restarts, every
database connection terminated (twice), Redis lost and restarted, the scheduler SIGKILLed and restarted
10 s later, and the scheduler's leadership handed over, each while a batch of 20 workloads runs a
component that spans the fault. Submits during an outage answer 202 (the trainer does not need what is
away) or 503 with Retry-After naming the server, never 500.

After each fault, with the servers of this module's own (a private PostgreSQL cluster and Redis, so the
shared ones other tests use are never touched): no healthy run started again, no workload lost or
duplicated, no GPU held twice at any sampled moment (PostgreSQL's live runs, Redis's allocations), no
allocation outliving its run and no live run without its allocation for long at any sampled moment, none
left allocated, every workload terminal within 60 s of the healing, and trainer, scheduler and models
agree on each. Each scenario's figures are printed (and appended to $AVATAR_CHAOS_REPORT when set).
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import re
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import AsyncIterator, Callable

import asyncpg
import httpx
import pytest

from services.kit.demo import Demo
from services.kit.stack import Stack
from services.scheduler.settings import SchedulerSettings
from tests.e2e.conftest import running_stack, urls
from tests.support.chaos import Sampler, attempts, report, settle
from tests.support.postgres_server import PostgresServer
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.slow

WORKLOADS = 20
SLEEPS = (8.0, 10.0, 12.0, 14.0)  # the probe's sleep_s (one App each), cycled over a batch: each spans its fault
PROBE = {"gpu_type": "V100", "gpu_count": 1, "memory": "8GB", "max_runtime": "10m"}
NODES = "nodes:\n" + "".join(
    f"  - name: node-v100-{n}\n    status: Active\n    cpu: 64\n    memory: 512GB\n"
    f"    gpus:\n      V100: {{count: 8, memory: 32GB}}\n" for n in (1, 2, 3))  # 24 GPUs: a whole batch at once
HEALED_WITHIN = 60  # seconds from the healing until every workload is terminal
SERVED_WITHIN = 5   # seconds from Redis being back until the scheduler serves what needs it
LIVE_WITHIN = 90    # seconds for a batch's runs to be live
DOWN_SECONDS = 3.0  # a dependency's outage
LONGEST_DOWN_SECONDS = 8.0  # when it lasts until a run has ended meanwhile: half the leader's grace (below)
FINAL = {"model stored", "failed", "cancelled", "rejected"}
TERMINAL_TYPES = ("workload.completed", "workload.failed", "workload.cancelled", "workload.rejected")
# the chaos stack's scheduler: a lease grace well above the 3 s outages (the default is 30 s; shorter keeps
# the SIGKILL scenario, which waits the lease out, quick), and an audit every few seconds
SCHEDULER_ENV = {"AVATAR_SCHEDULER_LEADER_GRACE_SECONDS": "15", "AVATAR_SCHEDULER_LEADER_RENEW_SECONDS": "3",
                 "AVATAR_SCHEDULER_AUDIT_SECONDS": "5"}


@dataclass
class Chaos:
    stack: Stack
    postgres: PostgresServer
    redis: RedisServer
    demo: Demo
    database: str  # the stack's database URL, on the private cluster
    apps: dict[str, float]  # App -> its probe's sleep_s
    sched_prefix: str
    runs_dir: Path  # the local runner's run directories (each run's exit status, written as it ends)

    def sampler(self) -> Sampler:
        return Sampler(self.database, redis_url=self.redis.url, sched_prefix=self.sched_prefix)

    def ended_between(self, since: float, until: float) -> int:
        """How many runs' components ended in this span (wall clock): their exit status was written then."""
        return sum(since <= path.stat().st_mtime <= until for path in self.runs_dir.glob("*/exit"))


@pytest.fixture(scope="module")
def postgres():
    with PostgresServer() as server:
        yield server


@pytest.fixture(scope="module")
def redis_server():
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="module")
async def chaos(infra, postgres, redis_server, settings):
    # not under pytest's basetemp: a concurrent pytest session prunes old basetemps, state dir and logs included
    run_dir = Path(tempfile.mkdtemp(prefix="avatar-availability-"))
    try:
        async with chaos_stack(infra, postgres, redis_server, settings, run_dir) as made:
            yield made
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


@contextlib.asynccontextmanager
async def chaos_stack(infra, postgres, redis_server, settings, run_dir: Path) -> AsyncIterator[Chaos]:
    (run_dir / "nodes.yaml").write_text(NODES)
    scheduler = {**SCHEDULER_ENV, "AVATAR_SCHEDULER_NODES_FILE": str(run_dir / "nodes.yaml"),
                 "AVATAR_SCHEDULER_STATE_DIR": str(run_dir / "scheduler-state")}
    async with running_stack(infra, run_dir, postgres_server=postgres.base, redis_url=redis_server.url,
                             service_env={"scheduler": scheduler}) as stack:
        demo = Demo(urls(stack), settings, timeout=60, episodes=5)
        components = demo.library_components()
        apps = {demo.build_app(f"Outage-{sleep:.0f}s", [("probe-task", [("probe", {
                    "params": {"sleep_s": sleep}, "resources": {"gpu_type": "V100", "gpu_count": 1, "memory": "8GB"}})])],
                    components): sleep for sleep in SLEEPS}
        for app_id in apps:
            demo.ready_in_trainer(app_id)
        environment = stack.environment()
        prefix = SchedulerSettings.model_construct(redis_prefix=environment.get("AVATAR_REDIS_PREFIX", "")).sched_prefix
        yield Chaos(stack, postgres, redis_server, demo, environment["AVATAR_POSTGRES_URL"], apps, prefix,
                    run_dir / "scheduler-state" / "runs")


@dataclass
class Batch:
    """One scenario's workloads: the batch of 20 and whatever a submit during the outage got accepted."""

    chaos: Chaos
    scenario: str
    workloads: dict[str, float] = field(default_factory=dict)  # workload -> its probe's sleep_s
    submits: collections.Counter = field(default_factory=collections.Counter)  # during outages, by answer
    problems: list[str] = field(default_factory=list)

    async def launch(self, *, live: int = WORKLOADS, ending_within: float | None = 1.0) -> None:
        """Submit the batch; return once `live` of its runs are running and (unless None) the first of them
        is due to end within `ending_within` seconds: the fault that follows meets runs ending."""
        self.submit_all()
        await self.wait_live(at_least=live)
        if ending_within is not None:
            await self.wait_ending(within=ending_within)

    def submit_all(self) -> None:
        apps = list(self.chaos.apps.items())
        for index in range(WORKLOADS):
            app_id, sleep = apps[index % len(apps)]
            self.workloads[self.chaos.demo.submit(app_id, PROBE, priority="normal", episodes=5,
                                                  name=f"{self.scenario} {index:02d}")] = sleep

    def submit_during(self, away: str) -> int:
        """One submit while `away` is away: 202 (the workload joins the batch) or 503 with Retry-After naming
        the server; anything else is a problem. Returns the status."""
        demo = self.chaos.demo
        app_id, sleep = next(iter(self.chaos.apps.items()))
        body = {"app_id": app_id, "name": f"{self.scenario} during the outage", "priority": "normal",
                "resources": PROBE, "training_config": {"episodes": 5, "simulation_seed": 42}}
        try:
            response = demo.http.post(f"{demo.base['trainer']}/training-requests", json=body,
                                      headers=demo.researcher, timeout=15)
        except httpx.HTTPError as exc:
            self.submits["no answer"] += 1
            self.problems.append(f"a submit with {away} away got no answer: {exc!r}")
            return 599
        self.submits[response.status_code] += 1
        if response.status_code == 202:
            self.workloads[response.json()["workload_id"]] = sleep
        elif response.status_code == 503:
            detail = response.json().get("detail") or {}
            if not (response.headers.get("retry-after") or "").isdigit() or detail.get("dependency") != away \
                    or detail.get("code") != "dependency_unavailable":
                self.problems.append(f"a submit with {away} away: 503 without Retry-After naming it: "
                                     f"{response.headers.get('retry-after')!r} {detail}")
        else:
            self.problems.append(f"a submit with {away} away answered {response.status_code}: {response.text[:300]}")
        return response.status_code

    def submit_for(self, seconds: float, away: str, every: float = 0.5,
                   until: Callable[[], bool] | None = None) -> None:
        """Submits while `away` is away, for `seconds` or until `until` holds."""
        began = time.monotonic()
        while time.monotonic() - began < seconds and not (until is not None and until()):
            self.submit_during(away)
            time.sleep(every)

    async def running(self) -> int:
        conn = await asyncpg.connect(self.chaos.database)
        try:
            return await conn.fetchval("SELECT count(DISTINCT job_id) FROM scheduler.runs"
                                       " WHERE job_id = ANY($1::text[]) AND status = 'running'", list(self.workloads))
        finally:
            await conn.close()

    async def wait_live(self, at_least: int = WORKLOADS) -> float:
        began = time.monotonic()
        while (live := await self.running()) < at_least:
            if time.monotonic() - began > LIVE_WITHIN:
                raise AssertionError(f"{self.scenario}: only {live} of {len(self.workloads)} runs live after "
                                     f"{LIVE_WITHIN}s:\n{self.chaos.stack.tail('scheduler', 30)}")
            await asyncio.sleep(0.3)
        return time.monotonic() - began

    async def wait_ending(self, within: float = 1.0) -> None:
        """Until the first live run's component is due to end `within` seconds from now, so that the fault
        that follows meets runs ending (their end recorded and their GPUs released during the outage)."""
        began = time.monotonic()
        while True:
            conn = await asyncpg.connect(self.chaos.database)
            try:
                rows = await conn.fetch("SELECT job_id, started_at FROM scheduler.runs WHERE job_id = ANY($1::text[])"
                                        " AND status = 'running'", list(self.workloads))
            finally:
                await conn.close()
            # a run already past its end (recorded late, after an earlier fault) is not one the fault can meet
            now = time.time()
            ends = (row["started_at"].timestamp() + self.workloads[row["job_id"]] for row in rows)
            due = min((end for end in ends if end > now), default=float("inf"))
            if due - now <= within or time.monotonic() - began > LIVE_WITHIN:
                return
            await asyncio.sleep(0.1)

    def statuses(self) -> dict[str, str]:
        return {workload: self.chaos.demo.request(workload)["status"] for workload in self.workloads}

    async def healed(self) -> float | None:
        """Seconds from now until every workload is terminal in the trainer (None: not within the bound)."""
        async def all_final() -> bool:
            return all(status in FINAL for status in self.statuses().values())

        return await settle(all_final, timeout=HEALED_WITHIN + 30, interval=1.0)

    async def aftermath(self, sampler: Sampler, recovered: float | None, **more) -> dict:
        """Every property once the batch has settled: its figures, and the problems found."""
        demo, chaos = self.chaos.demo, self.chaos
        final = self.statuses()
        runs = await attempts(chaos.database, self.workloads)
        for workload, status in final.items():
            detail = demo.request(workload)
            ends = [item["type"] for item in detail["timeline"] if item["type"] in TERMINAL_TYPES]
            stored = [item for item in detail["timeline"] if item["type"] == "model.stored"]
            scheduled = demo.http.get(f"{demo.base['scheduler']}/workloads/{workload}", headers=demo.admin)
            scheduler_status = scheduled.json().get("status") if scheduled.status_code == 200 else scheduled.status_code
            model_id = (detail.get("model") or {}).get("model_id")
            model = demo.http.get(f"{demo.base['models']}/models/{model_id}", headers=demo.researcher) \
                if model_id else None
            model_view = (model.json().get("workload_id"), model.json().get("status")) \
                if model is not None and model.status_code == 200 else None
            if (status, ends, len(stored), scheduler_status, model_view) != \
                    ("model stored", ["workload.completed"], 1, "completed", (workload, "stored")):
                self.problems.append(f"{workload}: trainer {status!r} (terminal events {ends}, {len(stored)} "
                                     f"model.stored), scheduler {scheduler_status!r}, models {model_view}")
        conn = await asyncpg.connect(chaos.database)
        try:
            known = {row["workload_id"]: row["name"] for row in await conn.fetch(
                "SELECT workload_id, name FROM trainer.training_requests WHERE name LIKE $1 || ' %'", self.scenario)}
            jobs = {row["job_id"] for row in await conn.fetch(
                "SELECT job_id FROM scheduler.jobs WHERE job_id = ANY($1::text[])", list(self.workloads))}
            models = collections.Counter(row["workload_id"] for row in await conn.fetch(
                "SELECT workload_id FROM models.models WHERE workload_id = ANY($1::text[])", list(self.workloads)))
            ended = collections.Counter(row["about"] for row in await conn.fetch(
                "SELECT payload->>'correlation_id' AS about FROM scheduler.outbox WHERE routing_key = ANY($1::text[])"
                " AND payload->>'correlation_id' = ANY($2::text[])", list(TERMINAL_TYPES), list(self.workloads)))
        finally:
            await conn.close()
        lost = sorted(w for w in self.workloads if w not in known or w not in jobs)
        duplicated = sorted({*(w for w in known if w not in self.workloads),  # a refused submit stored after all
                             *(w for w, n in models.items() if n > 1), *(w for w, n in ended.items() if n > 1)})
        leaked = await self.leaked()
        found = {"workloads": len(self.workloads), "reruns": sum(n > 1 for n in runs.values()),
                 "stuck": sum(status not in FINAL for status in final.values()),
                 "not stored": sum(status != "model stored" for status in final.values()),
                 "lost": len(lost), "duplicated": len(duplicated), "leaked gpus": leaked,
                 "double-booked samples": len(sampler.double_booked), "leaked samples": len(sampler.leaked),
                 "unaccounted samples": len(sampler.unaccounted), "samples": sampler.samples,
                 "seconds to recover": recovered, "submits during the outage": dict(self.submits), **more}
        report(self.scenario, found)
        if lost or duplicated:
            self.problems.append(f"lost {lost}, duplicated {duplicated}")
        if any(n > 1 for n in runs.values()):
            self.problems.append(f"healthy runs started again: { {w: n for w, n in runs.items() if n > 1} }")
        if sampler.double_booked:
            self.problems.append(f"double-booked: {sampler.double_booked[:10]}")
        if sampler.leaked or sampler.unaccounted:
            self.problems.append(f"allocations without a live run, or live runs without their allocation, for more "
                                 f"than {sampler.grace:.0f}s: {sorted(set(sampler.leaked + sampler.unaccounted))[:10]}")
        if leaked:
            self.problems.append(f"{leaked} GPUs still allocated once every workload ended")
        if recovered is None or recovered > HEALED_WITHIN:
            self.problems.append(f"not every workload terminal within {HEALED_WITHIN}s of the healing: {recovered}")
        return found

    async def leaked(self, within: float = 10) -> int:
        """GPUs still allocated (the scheduler's /resources) a moment after every workload ended."""
        demo = self.chaos.demo
        allocated = -1
        began = time.monotonic()
        while time.monotonic() - began < within:
            response = demo.http.get(f"{demo.base['scheduler']}/resources", headers=demo.admin)
            if response.status_code == 200:
                allocated = sum(item["allocated"] for item in response.json()["gpus"])
                if allocated == 0:
                    return 0
            await asyncio.sleep(0.5)
        return allocated

    def check(self) -> None:
        tails = "".join(f"\n--- {name}\n{self.chaos.stack.tail(name, 20)}" for name in ("trainer", "scheduler"))
        assert not self.problems, f"{self.scenario}:\n" + "\n".join(self.problems[:40]) + tails


def leading(stack: Stack, name: str) -> bool:
    try:
        text = httpx.get(f"http://127.0.0.1:{stack.ports[name]}/metrics", timeout=2).text
    except httpx.HTTPError:
        return False
    match = re.search(r"^avatar_scheduler_leader ([0-9.]+)$", text, re.M)
    return bool(match and float(match.group(1)) == 1)


def wait_ready(stack: Stack, name: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not stack.ready(name):
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} not ready within {timeout}s:\n{stack.tail(name, 30)}")
        time.sleep(0.2)


async def test_a_postgresql_restart_mid_batch_stops_no_run(chaos):
    batch = Batch(chaos, "postgresql restart")
    with chaos.sampler() as sampler:
        # mid-batch: the rest may still be on their way through the saga
        await batch.launch(live=WORKLOADS // 2, ending_within=None)
        chaos.postgres.restart()  # pg_ctl restart -m fast: every session cut, back within a second
        await batch.wait_ending()
        stopped = time.time()
        chaos.postgres.stop()  # then a restart that takes 3 s (pg_ctl stop -m fast ... start): submits meet it
        try:
            batch.submit_for(DOWN_SECONDS, "postgresql")
            # a component ends a few seconds after its run's start plus its sleep (the process starting, a loaded
            # machine): PostgreSQL stays away a little longer, until one has, well within the leader's grace
            batch.submit_for(LONGEST_DOWN_SECONDS - DOWN_SECONDS, "postgresql",
                             until=lambda: chaos.ended_between(stopped, time.time()) >= 1)
        finally:
            chaos.postgres.resume()
        resumed = time.time()
        recovered = await batch.healed()
        # a leader cut off from PostgreSQL keeps its runs going; those that end meanwhile are recorded once it is back
        ended = chaos.ended_between(stopped, resumed)
        await batch.aftermath(sampler, recovered, **{"ended while PostgreSQL was away": ended})
    assert batch.submits[503] >= 1, f"no submit met PostgreSQL away: {batch.submits}"
    batch.check()
    assert ended >= 1, "no run ended while PostgreSQL was away: the scenario did not test recording an end late"


async def test_every_database_connection_terminated_twice_stops_no_run(chaos):
    batch = Batch(chaos, "pg_terminate_backend twice")
    with chaos.sampler() as sampler:
        await batch.launch()
        terminated = []
        for _ in range(2):
            terminated.append(await chaos.postgres.terminate_backends(chaos.database.rsplit("/", 1)[1]))
            for _ in range(2):
                batch.submit_during("postgresql")
            await asyncio.sleep(1.0)
        recovered = await batch.healed()
        await batch.aftermath(sampler, recovered, terminated=terminated)
    assert all(terminated), terminated
    batch.check()


async def test_redis_lost_and_restarted_stops_no_run_and_the_scheduler_serves_at_once(chaos):
    batch = Batch(chaos, "redis shutdown nosave")
    demo = chaos.demo
    with chaos.sampler() as sampler:
        await batch.launch()
        probe = next(iter(batch.workloads))
        lost = time.time()
        chaos.redis.shutdown()  # SHUTDOWN NOSAVE: queue, inventory and allocations are gone
        try:
            batch.submit_for(DOWN_SECONDS, "redis")
        finally:
            chaos.redis.start()
        ended = chaos.ended_between(lost, time.time())  # their GPUs' release met Redis away
        began, served = time.monotonic(), None
        while time.monotonic() - began < 30:
            answers = [demo.http.get(f"{demo.base['scheduler']}{path}", headers=demo.admin).status_code
                       for path in (f"/workloads/{probe}", "/resources", "/queue")]
            if answers == [200, 200, 200]:
                served = round(time.monotonic() - began, 1)
                break
            await asyncio.sleep(0.2)
        recovered = await batch.healed()
        await batch.aftermath(sampler, recovered, **{"seconds until the scheduler serves": served,
                                                     "ended while Redis was away": ended})
    assert served is not None and served <= SERVED_WITHIN, \
        f"the scheduler's GET /workloads/{{id}}, /resources and /queue not served within {SERVED_WITHIN}s of Redis " \
        f"being back ({served})"
    batch.check()
    assert ended >= 1, "no run ended while Redis was away: the scenario did not test a release retried"


async def test_a_scheduler_killed_with_runs_live_adopts_them_and_collects_those_that_ended(chaos):
    batch = Batch(chaos, "scheduler sigkill")
    with chaos.sampler() as sampler:
        await batch.launch(ending_within=None)  # 10 s away or more: the shortest runs end meanwhile
        chaos.stack.stop("scheduler", signal.SIGKILL)  # the process group: its runs have sessions of their own
        killed = time.time()
        batch.submit_for(10, "scheduler", every=1.0)
        # a component ends a few seconds after its run's start plus its sleep on a loaded machine: the
        # scheduler stays away a little longer, until one has
        batch.submit_for(LONGEST_DOWN_SECONDS, "scheduler", every=1.0,
                         until=lambda: chaos.ended_between(killed, time.time()) >= 1)
        chaos.stack.start_service("scheduler")
        restarted = time.time()
        wait_ready(chaos.stack, "scheduler")
        recovered = await batch.healed()
        unwatched = chaos.ended_between(killed, restarted)  # to be collected, not rerun
        await batch.aftermath(sampler, recovered, **{"ended while no scheduler ran": unwatched})
    assert unwatched >= 1, "no run ended while the scheduler was away: the scenario did not test collection"
    batch.check()


async def test_leadership_handed_over_with_runs_live_stops_no_run(chaos):
    stack = chaos.stack
    standby = stack.add_replica("scheduler")
    stack.start_service(standby)
    wait_ready(stack, standby)
    assert leading(stack, "scheduler") and not leading(stack, standby)
    batch = Batch(chaos, "leadership handover")
    with chaos.sampler() as sampler:
        await batch.launch(ending_within=0.5)
        began = time.monotonic()
        stack.stop("scheduler")  # SIGTERM: the leader hands its lease on as it stops
        while not leading(stack, standby):
            assert time.monotonic() - began < 30, f"the standby did not take over:\n{stack.tail(standby, 30)}"
            batch.submit_during("scheduler")
            await asyncio.sleep(0.5)
        handover = round(time.monotonic() - began, 1)
        stack.start_service("scheduler")  # back, as the standby now
        wait_ready(stack, "scheduler")
        recovered = await batch.healed()
        await batch.aftermath(sampler, recovered, **{"seconds to hand over": handover})
    assert leading(stack, standby) and not leading(stack, "scheduler")
    batch.check()
