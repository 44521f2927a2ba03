"""Benchmark: the training saga end to end, six services on this machine, against the broker's own ceiling.

    .venv/bin/python bench/bench_saga.py                       # 1,000 requests, 50 clients; appends to RESULTS.md
    .venv/bin/python bench/bench_saga.py --n 200 --clients 20 --no-record
    .venv/bin/python bench/bench_saga.py --rate 20             # open loop: 20 submits/s spread over the clients
    .venv/bin/python bench/bench_saga.py --profile             # also py-spy each service during the run
    .venv/bin/python bench/bench_saga.py --env AVATAR_SCHEDULER_LOCAL_NICE=0   # A/B a service setting
    .venv/bin/python bench/bench_saga.py --rate 50 --split trainer --background-nice 5   # the front door first

Everything is real: the local PostgreSQL, RabbitMQ and Redis (a fresh database, vhost and key prefix of its
own), the S3 stand-in (moto's S3 backend served by waitress, services/kit/s3server.py, in a process of its own so
it never shares this client's GIL)
and the six services as processes (services.kit.stack.Stack on free ports). An App of one Task with the
`bench-trivial` component (command `true`, registered through the library API; `--component probe` uses the
reference probe instead) is built through the builder; then N training requests below the
approval threshold (auto-approved) are submitted by C concurrent clients (one aiohttp session each).

Measured:
- submit API latency (client side, POST /training-requests → 202);
- a tap (plain aio-pika, an exclusive queue bound to avatar.events for the terminal events only: a workload's
  end and its model's) records their receive time: submit → `workload.completed` latency, completions per
  second. Every other figure about events is read after the run from the services' own outboxes (each row is
  one broker publish, its payload exactly the message body, its `sent_at` the relay's mark after the
  broker confirmed it): events (broker publishes) per workload by type, message sizes, each saga hop from
  the events' `occurred_at` (same clock: one machine) and the publish lag. A tap bound to `#` (`--tap-all`,
  what the bench did before) costs the machine ~1.8 ms of CPU per workload (six more deliveries for the
  broker, six more messages parsed by this client), about 5% of what it measures;
- CPU seconds per workload of every process (services, component subprocesses, RabbitMQ, PostgreSQL
  backends of this database, Redis, S3) from /proc, so what bounds the rate on this machine is visible;
- the broker's ceiling, in the same run once the saga is done: a plain aio-pika publish→consume loop on the
  same RabbitMQ, same message size, persistent with publisher confirms and manual acks (as the services do).
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aio_pika  # noqa: E402
import aiohttp  # noqa: E402
import httpx  # noqa: E402

from contracts.topology import EXCHANGE, SUBSCRIPTIONS  # noqa: E402
from reports import add_record_option, publish  # noqa: E402  (a sibling module: bench/ is on the path)
from services.kit.auth import mint_token  # noqa: E402
from services.kit.demo import Demo  # noqa: E402
from services.kit.priority import lower_priority  # noqa: E402
from services.kit.settings import Settings  # noqa: E402
from services.kit.stack import (PLATFORM, SERVICES, Stack, add_layout_options, ensure_local_servers, event_side,  # noqa: E402
                                parse_layout)
from tests.support.infra import free_port, make_infra  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
PROBE_RESOURCES = {"gpu_type": "V100", "gpu_count": 0, "memory": "1GB", "max_runtime": "10m"}
TAPPED = ("workload.completed", "workload.failed", "workload.cancelled", "model.stored", "model.store_failed")
HOPS = (  # (label, from, to): from/to are event types, "submit" is the client's send time
    ("submit → training.requested", "submit", "training.requested"),
    ("training.requested → workload.approved", "training.requested", "workload.approved"),
    ("workload.approved → workload.queued", "workload.approved", "workload.queued"),
    ("workload.queued → workload.started", "workload.queued", "workload.started"),
    ("workload.started → workload.completed", "workload.started", "workload.completed"),
    ("workload.completed → model.stored", "workload.completed", "model.stored"),
)


# ---------------------------------------------------------------- small helpers

def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def ms(value: float) -> str:
    return f"{value * 1000:,.1f}"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# ---------------------------------------------------------------- CPU accounting from /proc

def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw.rsplit(")", 1)[1].split()


def cpu_of(pid: int, *, children: bool = False) -> float:
    fields = _stat(pid)
    if fields is None:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if children:  # reaped children (the scheduler's component subprocesses)
        ticks += int(fields[13]) + int(fields[14])
    return ticks / CLK_TCK


def pids_named(name: str, cmdline_contains: str | None = None) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            comm = Path(f"/proc/{entry}/comm").read_text().strip()
            if comm != name:
                continue
            if cmdline_contains is not None:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                if cmdline_contains not in cmdline:
                    continue
        except OSError:
            continue
        found.append(int(entry))
    return found


def python_speed(loops: int = 1_000_000, rounds: int = 3) -> float:
    """Seconds a fixed pure-Python loop takes on one core, best of `rounds`: how fast this machine is
    right now. The same command's CPU per workload swings with it (same commit: 36 ms one day, 66-83
    the next), so runs are compared within a session, or by this figure across sessions."""
    best = float("inf")
    for _ in range(rounds):
        started, total = time.perf_counter(), 0
        for i in range(loops):
            total += i * i % 7
        best = min(best, time.perf_counter() - started)
    return best


def steal_seconds() -> float:
    """CPU time the hypervisor gave to others while this machine wanted it (/proc/stat), so far."""
    return int(Path("/proc/stat").read_text().splitlines()[0].split()[8]) / CLK_TCK


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    parts = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = parts[3] + parts[4]
    return (sum(parts) - idle) / CLK_TCK, sum(parts) / CLK_TCK


@dataclass
class CpuSampler:
    stack: Stack
    database: str
    s3_pid: int
    collector_pid: int | None = None
    scheduler_children: bool = True

    def pid_of(self, service: str) -> int:
        return int((self.stack.run_dir / f"{service}.pid").read_text())

    def sample(self) -> dict[str, float]:
        values = {}
        for service in SERVICES:
            pids = [self.pid_of(process) for process in self.stack.processes((service,))]  # two if split
            values[service] = sum(cpu_of(pid) for pid in pids)
            if service == "scheduler":
                values["components (scheduler's children)"] = sum(cpu_of(pid, children=True) for pid in pids) \
                    - values[service]
        values["rabbitmq (beam.smp)"] = sum(cpu_of(p) for p in pids_named("beam.smp"))
        # postgres backends retitle themselves "postgres: user database host(port) state"
        values[f"postgresql (backends of {self.database})"] = sum(
            cpu_of(p) for p in pids_named("postgres", f" {self.database} "))
        values["redis-server"] = sum(cpu_of(p) for p in pids_named("redis-server"))
        values["s3 (moto)"] = cpu_of(self.s3_pid)
        if self.collector_pid is not None:
            values["otlp collector (test receiver)"] = cpu_of(self.collector_pid)
        times = os.times()
        values["this client (submit + tap)"] = times.user + times.system
        return values


# ---------------------------------------------------------------- infrastructure

S3_CODE = """
import os, sys, time
os.environ.setdefault("AWS_ACCESS_KEY_ID", "avatar-local")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "avatar-local-secret")
sys.path.insert(0, sys.argv[2])
from services.kit.s3server import S3Server
server = S3Server(port=int(sys.argv[1])).start()
print("ready", flush=True)
sys.stdin.read()  # until the parent closes our stdin
server.stop()
"""


COLLECTOR_CODE = """
import sys
from tests.support.otlp import OtlpReceiver
receiver = OtlpReceiver().start()
print(receiver.endpoint, flush=True)
sys.stdin.read()  # until the parent closes our stdin
print(len(receiver.snapshot()), flush=True)
receiver.stop()
"""


def start_collector() -> tuple[subprocess.Popen, str]:
    """An OTLP/HTTP receiver in a process of its own (tests/support/otlp.py: decodes and keeps every span)."""
    process = subprocess.Popen([sys.executable, "-c", COLLECTOR_CODE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               cwd=ROOT, text=True)
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def stop_collector(process: subprocess.Popen) -> int | None:
    try:
        out, _ = process.communicate("", timeout=30)
        return int(out.strip().splitlines()[-1])
    except Exception:
        process.kill()
        return None


@dataclass
class Environment:
    run_dir: Path
    s3: subprocess.Popen
    stack: Stack
    infra: object
    redis_prefix: str

    @property
    def base(self) -> dict[str, str]:
        return {name: f"http://127.0.0.1:{port}" for name, port in self.stack.ports.items()}

    @property
    def rabbitmq_url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:5672/{self.stack.vhost}"


async def bring_up(extra_env: dict[str, str], split: tuple[str, ...] = (), background_nice: int = 0, *,
                   with_gateway: bool = False, service_env: dict[str, dict[str, str]] | None = None,
                   run_prefix: str = "avatar-bench-saga-") -> Environment:
    """The six services (and the gateway, `with_gateway`: its port known before the six start, so they verify
    its tokens) on free ports with a fresh database, vhost and Redis prefix."""
    processes = PLATFORM if with_gateway else SERVICES
    run_dir = Path(tempfile.mkdtemp(prefix=run_prefix))
    s3_port = free_port()
    # a session of its own, as each service has: with Linux's autogroup scheduling a session is a CPU
    # group, and the S3 server sharing this client's would delay the client's reading of its answers
    s3 = subprocess.Popen([sys.executable, "-c", S3_CODE, str(s3_port), str(ROOT)], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=open(run_dir / "s3.log", "wb"), cwd=run_dir,
                          start_new_session=True)
    if background_nice:  # the S3 server serves the saga's background work (logs, models), not the submit
        lower_priority(s3.pid, background_nice)
    infra = make_infra(f"http://127.0.0.1:{s3_port}")
    prefix = f"avatar-bench-{infra.run_id}:"
    stack = Stack(run_dir=run_dir, s3_port=s3_port, ports={name: free_port() for name in processes}, split=split,
                  background_nice=background_nice, service_env=service_env or {},
                  extra_env={"AVATAR_REDIS_PREFIX": prefix, "AVATAR_SCHEDULER_STATE_DIR": str(run_dir / "runs"),
                             "AVATAR_LOG_LEVEL": "WARNING", **extra_env})
    env = Environment(run_dir, s3, stack, infra, prefix)
    try:
        assert s3.stdout is not None and s3.stdout.readline().strip() == b"ready", "the S3 server did not start"
        await asyncio.to_thread(ensure_local_servers)  # waits until RabbitMQ accepts commands
        stack.database = (await infra.fresh_database()).rsplit("/", 1)[1]
        for attempt in range(10):  # RabbitMQ may be restarting (another session's chaos tests share it)
            try:
                infra.fresh_vhost()
                break
            except subprocess.CalledProcessError:
                if attempt == 9:
                    raise
                await asyncio.sleep(3)
        stack.vhost = infra.vhost
        await asyncio.to_thread(stack.up, processes, 180)
    except BaseException:
        await tear_down(env, keep=True)
        raise
    return env


async def tear_down(env: Environment, keep: bool) -> None:
    with contextlib.suppress(Exception):
        env.stack.down()
    with contextlib.suppress(Exception):
        env.s3.stdin.close()  # type: ignore[union-attr]
        env.s3.wait(10)
    if env.s3.poll() is None:
        env.s3.kill()
    with contextlib.suppress(Exception):
        await env.infra.cleanup()  # type: ignore[attr-defined]
    with contextlib.suppress(Exception):
        import redis.asyncio as aioredis

        client = aioredis.from_url("redis://127.0.0.1:6379/0")
        async for key in client.scan_iter(match=f"{env.redis_prefix}*", count=1000):
            await client.delete(key)
        await client.aclose()
    if keep:
        log(f"kept {env.run_dir} (service logs)")
    else:
        shutil.rmtree(env.run_dir, ignore_errors=True)


TRIVIAL_COMPONENT = {  # what the issue asks for: a component whose command does (almost) nothing
    "name": "bench-trivial", "image": {"registry": "registry.avatar.io/bench-trivial", "tag": "1.0"},
    "description": "Benchmark component: the command `true`. Writes no artifacts and no metrics.",
    "version": "1.0", "type": "other", "resources": {"gpu_type": "V100", "gpu_count": 0, "memory": "1GB"},
    "params": {}, "command": ["true"],
}


def build_bench_app(base: dict[str, str], component: str) -> str:
    demo = Demo(base, Settings(env="local"), timeout=120, episodes=1)
    components = demo.library_components()
    if component == "trivial":
        created = demo.call("POST", "library", "/components", headers=demo.admin, json=TRIVIAL_COMPONENT,
                            expect=201)
        components[created["name"]] = created
        tasks = [("trivial-task", [("bench-trivial", {})])]
    else:
        if "probe" not in components:
            page = demo.call("GET", "library", "/components", params={"q": "probe", "page_size": 100})
            components.update({item["name"]: item for item in page["items"]})
        tasks = [("probe-task", [("probe", {"params": {"sleep_s": 0}})])]
    app_id = demo.build_app(f"Bench-{component}", tasks, components)
    demo.ready_in_trainer(app_id)
    return app_id


# ---------------------------------------------------------------- the tap

@dataclass
class Tap:
    url: str
    first: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)  # (corr, type) → (recv, occurred)
    watched: set[str] = field(default_factory=set)
    done_types: tuple[str, ...] = ("workload.completed", "workload.failed", "workload.cancelled")
    keys: tuple[str, ...] = TAPPED
    ended: dict[str, str] = field(default_factory=dict)
    stored: set[str] = field(default_factory=set)
    lost: bool = False

    async def start(self) -> None:
        self.connection = await aio_pika.connect(self.url)
        self.connection.close_callbacks.add(self._closed)
        channel = await self.connection.channel()
        await channel.set_qos(prefetch_count=2000)
        exchange = await channel.declare_exchange(EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue("", exclusive=True, auto_delete=True)
        for key in self.keys:
            await queue.bind(exchange, routing_key=key)
        await queue.consume(self._on_message, no_ack=True)

    def _closed(self, *_: object) -> None:
        self.lost = True

    async def _on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        now = time.time()
        try:
            body = json.loads(message.body)
            kind, corr, occurred = body["type"], body.get("correlation_id") or "", parse_time(body["occurred_at"])
        except (ValueError, KeyError, TypeError):
            return
        self.first.setdefault((corr, kind), (now, occurred))
        if kind in self.done_types:
            self.ended.setdefault(corr, kind)
        elif kind in ("model.stored", "model.store_failed"):
            self.stored.add(corr)

    async def wait(self, ids: set[str], what: str, done: "callable", timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        last = -1
        while True:
            count = sum(1 for i in ids if done(i))
            if count >= len(ids):
                return True
            if time.monotonic() > deadline or self.lost:
                log(f"gave up waiting for {what}: {count}/{len(ids)}" + (" (tap lost its connection)"
                                                                          if self.lost else ""))
                return False
            if count != last and sys.stdout.isatty():
                sys.stdout.write(f"\r  {what}: {count}/{len(ids)}   ")
                sys.stdout.flush()
                last = count
            await asyncio.sleep(0.2)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.connection.close()


# ---------------------------------------------------------------- the outboxes

@dataclass(frozen=True)
class Published:
    type: str
    correlation_id: str
    occurred_at: float
    sent_at: float | None  # the relay's mark, once the broker confirmed the publish
    size: int  # bytes of the message body


async def published_events(postgres_url: str, ids: set[str]) -> list[Published]:
    """Every event the services published about these workloads, from their outboxes (the services' own
    record: one row per broker publish)."""
    import asyncpg

    conn = await asyncpg.connect(postgres_url)
    try:
        found: list[Published] = []
        for service in SERVICES:
            rows = await conn.fetch(
                f'SELECT routing_key, payload->>\'correlation_id\' AS corr, payload->>\'occurred_at\' AS occurred,'
                f' extract(epoch FROM sent_at) AS sent, octet_length(payload::text) AS size FROM "{service}".outbox'
                f" WHERE payload->>'correlation_id' = ANY($1::text[])", list(ids))
            found += [Published(r["routing_key"], r["corr"], parse_time(r["occurred"]),
                                None if r["sent"] is None else float(r["sent"]), r["size"]) for r in rows]
        return found
    finally:
        await conn.close()


async def trainer_behind(postgres_url: str, ids: set[str], timeout: float) -> int:
    """Wait until the trainer's timelines hold every saga event published about these workloads; the
    events still missing when it gave up (0: it caught up)."""
    import asyncpg

    wanted = sorted({key for key in SUBSCRIPTIONS["trainer"] if key != "#"})
    conn = await asyncpg.connect(postgres_url)
    try:
        deadline = time.monotonic() + timeout
        while True:
            published = 0
            for service in SERVICES:
                published += await conn.fetchval(
                    f'SELECT count(*) FROM "{service}".outbox WHERE routing_key = ANY($1::text[])'
                    f" AND payload->>'correlation_id' = ANY($2::text[])", wanted, list(ids))
            recorded = await conn.fetchval('SELECT count(*) FROM "trainer".timeline WHERE workload_id = ANY($1::text[])',
                                           list(ids))
            if recorded >= published or time.monotonic() > deadline:
                return max(0, published - recorded)
            await asyncio.sleep(0.25)
    finally:
        await conn.close()


# ---------------------------------------------------------------- submitting

@dataclass
class Submission:
    index: int
    sent_at: float  # wall clock, comparable with the events' occurred_at and the tap's receive times
    latency: float
    status: int
    workload_id: str | None


async def submit_all(trainer: str, token: str, app_id: str, n: int, clients: int, rate: float,
                     label: str) -> tuple[list[Submission], float]:
    counter = itertools.count()
    results: list[Submission] = []
    began = time.time()
    began_mono = time.perf_counter()

    # aiohttp, not httpx: the clients share the services' two cores, and aiohttp costs about half the CPU
    # per request (its parser is C); each client keeps one connection, as a real client would
    async def client() -> None:
        async with aiohttp.ClientSession(base_url=trainer, headers={"Authorization": f"Bearer {token}"},
                                         timeout=aiohttp.ClientTimeout(total=120),
                                         connector=aiohttp.TCPConnector(limit=1)) as http:
            while (k := next(counter)) < n:
                if rate > 0:  # open loop: request k is due at k / rate, whatever the others are doing
                    delay = began_mono + k / rate - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                body = {"app_id": app_id, "name": f"{label}-{k}", "priority": "normal",
                        "resources": PROBE_RESOURCES, "training_config": {"episodes": 1}}
                sent_at, started = time.time(), time.perf_counter()
                try:
                    async with http.post("/training-requests", json=body) as response:
                        status = response.status
                        workload_id = (await response.json()).get("workload_id") if status == 202 else None
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    status, workload_id = 0, None
                results.append(Submission(k, sent_at, time.perf_counter() - started, status, workload_id))

    await asyncio.gather(*(client() for _ in range(clients)))
    return sorted(results, key=lambda s: s.index), time.time() - began


# ---------------------------------------------------------------- the broker's ceiling

async def broker_ceiling(url: str, size: int, messages: int, window: int, prefetch: int) -> dict[str, float]:
    """Publish `messages` persistent messages of `size` bytes with confirms (at most `window` unconfirmed)
    to a queue a consumer on its own connection drains with manual acks; latency = publish → consume."""
    publisher = await aio_pika.connect(url)
    consumer = await aio_pika.connect(url)
    try:
        pub_channel = await publisher.channel(publisher_confirms=True)
        con_channel = await consumer.channel()
        await con_channel.set_qos(prefetch_count=prefetch)
        exchange = await pub_channel.declare_exchange(f"bench.ceiling.{uuid.uuid4().hex[:6]}",
                                                      aio_pika.ExchangeType.TOPIC, auto_delete=True)
        queue = await con_channel.declare_queue("", exclusive=True, auto_delete=True)
        await queue.bind(exchange.name, routing_key="#")
        latencies: list[float] = []
        done = asyncio.Event()
        padding = b"x" * max(0, size - 40)

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            latencies.append(time.perf_counter() - float(message.body[:24]))
            await message.ack()
            if len(latencies) >= messages:
                done.set()

        await queue.consume(on_message)
        gate = asyncio.Semaphore(window)

        async def publish_one(i: int) -> None:
            async with gate:
                body = f"{time.perf_counter():<24.6f}".encode() + padding
                await exchange.publish(aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                                                        content_type="application/json"),
                                       routing_key="training.requested")

        started = time.perf_counter()
        await asyncio.gather(*(publish_one(i) for i in range(messages)))
        published = time.perf_counter() - started
        await asyncio.wait_for(done.wait(), 120)
        elapsed = time.perf_counter() - started
        return {"messages": messages, "size": size, "window": window, "prefetch": prefetch,
                "publish_rate": messages / published, "rate": messages / elapsed,
                "p50": pct(latencies, 50), "p99": pct(latencies, 99)}
    finally:
        await publisher.close()
        await consumer.close()


# ---------------------------------------------------------------- profiling

async def service_counters(bases: dict[str, str]) -> dict[str, float]:
    """What the bench reads off the services' /metrics: the scheduler engine's iterations (count, seconds)
    and, per service, the events consumed and those handled in committed batches."""
    found: dict[str, float] = {}
    async with httpx.AsyncClient(timeout=10) as client:
        for service, base in bases.items():
            text = (await client.get(f"{base}/metrics")).text
            for name, labels, value in re.findall(r"^(avatar_[a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$", text, re.M):
                if name in ("avatar_scheduler_iteration_seconds_count", "avatar_scheduler_iteration_seconds_sum"):
                    found[name] = float(value)
                elif name in ("avatar_events_consumed_total", "avatar_consumer_batched_events_total"):
                    found[f"{service}:{name}"] = found.get(f"{service}:{name}", 0.0) + float(value)
                elif (kind := _bucket_kind(name, labels)) is not None:
                    le = re.search(r'le="([^"]+)"', labels).group(1)
                    found[f"{service}:{kind}:{le}"] = float(value)
    return found


def _bucket_kind(name: str, labels: str) -> str | None:
    """Which of the histograms the bench reads a bucket line belongs to: the loop lag, or accepted submits."""
    if name == "avatar_event_loop_lag_seconds_bucket":
        return "lag"
    if name == "avatar_http_request_duration_seconds_bucket" and all(part in labels for part in SUBMIT_LABELS):
        return "submit"
    return None


SUBMIT_LABELS = ('method="POST"', 'route="/training-requests"', 'code="202"')


def buckets_of(counted: dict[str, float], prefix: str) -> list[tuple[float, float]]:
    """A histogram's cumulative buckets during the run: (le, samples at most le), by le."""
    return sorted((float(key.rsplit(":", 1)[1]), value) for key, value in counted.items() if key.startswith(prefix))


def bucket_bound(buckets: list[tuple[float, float]], q: float) -> float:
    """The upper bound of the bucket that holds the q-th percentile (what a histogram can tell)."""
    total = buckets[-1][1] if buckets else 0.0
    return next((le for le, value in buckets if value >= q / 100 * total), float("nan"))


def share_above(buckets: list[tuple[float, float]], le: float) -> float:
    """The share of the samples above `le` (one of the histogram's bounds)."""
    return 1 - dict(buckets).get(le, 0.0) / buckets[-1][1]


def loop_lag(counted: dict[str, float], service: str) -> tuple[float, float, float, float] | None:
    """A service's loop-lag samples during the run from its histogram's buckets: (samples, share later
    than 10 ms, share later than 50 ms, p99 as the upper bound of its bucket)."""
    buckets = buckets_of(counted, f"{service}:lag:")
    if not buckets or not buckets[-1][1]:
        return None
    return buckets[-1][1], share_above(buckets, 0.01), share_above(buckets, 0.05), bucket_bound(buckets, 99)


def start_profiles(stack: Stack, run_dir: Path, seconds: int) -> list[tuple[str, subprocess.Popen, Path]]:
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        log("py-spy is not installed (.venv/bin/pip install py-spy); no profiles")
        return []
    started = []
    for service in stack.processes():
        pid = int((stack.run_dir / f"{service}.pid").read_text())
        out = run_dir / f"profile-{service}.txt"
        process = subprocess.Popen([spy, "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "50",
                                    "--format", "raw", "--output", str(out), "--nonblocking", "--gil"],
                                   stdout=subprocess.DEVNULL, stderr=open(run_dir / f"profile-{service}.err", "wb"))
        started.append((service, process, out))
    return started


REPO_PACKAGES = ("services/", "contracts/", "components/")


def summarise_profile(path: Path, top: int = 8) -> list[tuple[str, float]]:
    """Where a service's CPU goes, from py-spy's collapsed stacks ("frame;frame;leaf count" lines, sampled
    only while holding the GIL): each sample is charged to its innermost frame of this repository (what our
    code called, library time included), else to its leaf."""
    if not path.exists():
        return []
    charged: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = [_frame(f) for f in stack.split(";")]
        ours = [f for f in frames if f[1].startswith(REPO_PACKAGES)]
        fn, file = ours[-1] if ours else frames[-1]
        charged[f"{fn} ({file})"] += int(count)
        total += int(count)
    return [(name, count / total) for name, count in charged.most_common(top)] if total else []


def _frame(frame: str) -> tuple[str, str]:
    match = re.match(r"\s*(?P<fn>.+?) \((?P<file>[^:()]+)(:\d+)?\)$", frame)
    if not match:
        return frame.strip()[:80], ""
    return match.group("fn"), match.group("file").split("site-packages/")[-1]


# ---------------------------------------------------------------- the run

async def run(args: argparse.Namespace) -> str:
    extra = dict(item.split("=", 1) for item in args.env)
    collector = None
    if args.collector:
        collector, extra["OTEL_EXPORTER_OTLP_ENDPOINT"] = start_collector()
    speed = python_speed()  # before anything of the run is up: the machine as the run finds it
    env = await bring_up(extra, tuple(args.split), args.background_nice)
    lines: list[str] = []
    try:
        base = env.base
        token = mint_token(Settings(env="local"), "bench", "researcher")
        log(f"building the {args.component} App through the builder ...")
        app_id = await asyncio.to_thread(build_bench_app, base, args.component)

        tap = Tap(env.rabbitmq_url, keys=("#",) if args.tap_all else TAPPED)
        await tap.start()

        if args.warmup:
            log(f"warm-up: {args.warmup} requests ...")
            warm, _ = await submit_all(base["trainer"], token, app_id, args.warmup, min(args.warmup, 5), 0, "warmup")
            warm_ids = {s.workload_id for s in warm if s.workload_id}
            await tap.wait(warm_ids, "warm-up stored", lambda i: i in tap.stored, 120)

        counters_before = await service_counters(base)
        sampler = CpuSampler(env.stack, env.stack.database, env.s3.pid,
                             collector.pid if collector is not None else None)
        cpu_before, busy_before = sampler.sample(), machine_busy()
        load_before = os.getloadavg()
        steal_before = steal_seconds()
        profiles = start_profiles(env.stack, env.run_dir, args.profile_seconds) if args.profile else []

        mode = f"open loop at {args.rate:g}/s" if args.rate > 0 else "closed loop (as fast as answered)"
        log(f"submitting {args.n} requests from {args.clients} clients, {mode} ...")
        submissions, submit_wall = await submit_all(base["trainer"], token, app_id, args.n, args.clients, args.rate,
                                                     "bench")
        accepted = [s for s in submissions if s.workload_id]
        ids = {s.workload_id for s in accepted}
        log(f"{len(accepted)}/{args.n} accepted in {submit_wall:.1f}s; waiting for workload.completed ...")
        all_ended = await tap.wait(ids, "ended", lambda i: i in tap.ended, args.timeout)
        last_end = time.time()
        log("waiting for model.stored and for the trainer's timelines ...")
        all_stored = await tap.wait(ids, "stored", lambda i: i in tap.stored, args.timeout / 2)
        # the CPU window closes once every consumer has handled every event of the run: work a service
        # left queued (a timeline behind, a model not stored yet) is counted, not deferred out of sight
        behind = await trainer_behind(env.infra.postgres_url, ids, args.timeout / 2)
        ended_at = time.time()
        cpu_after, busy_after = sampler.sample(), machine_busy()
        load_after = os.getloadavg()
        stolen = steal_seconds() - steal_before
        counters_after = await service_counters(base)
        for _, process, _ in profiles:
            with contextlib.suppress(Exception):
                process.wait(args.profile_seconds + 30)

        # ------------------------------------------------------------ figures
        sent = {s.workload_id: s.sent_at for s in accepted}
        first_sent = min(s.sent_at for s in submissions)
        completed = [i for i in ids if tap.ended.get(i) == "workload.completed"]
        failed = Counter(tap.ended[i] for i in ids if i in tap.ended and tap.ended[i] != "workload.completed")
        e2e = [tap.first[(i, "workload.completed")][0] - sent[i] for i in completed]
        to_stored = [tap.first[(i, "model.stored")][0] - sent[i] for i in completed if (i, "model.stored") in tap.first]
        done_times = sorted(tap.first[(i, "workload.completed")][0] for i in completed)
        window = (done_times[-1] - first_sent) if done_times else float("nan")
        rate = len(completed) / window if done_times else 0.0
        lo, hi = int(len(done_times) * 0.1), int(len(done_times) * 0.9)
        steady = (hi - lo) / (done_times[hi - 1] - done_times[lo]) if hi - 1 > lo else float("nan")
        latencies = [s.latency for s in submissions if s.status == 202]
        statuses = Counter(s.status for s in submissions)

        published = await published_events(env.infra.postgres_url, ids)
        per_workload: dict[str, Counter] = defaultdict(Counter)
        first: dict[tuple[str, str], float] = {}  # (workload, type) → occurred_at of its first publish
        for event in published:
            per_workload[event.correlation_id][event.type] += 1
            key = (event.correlation_id, event.type)
            first[key] = min(first.get(key, event.occurred_at), event.occurred_at)
        per_type = Counter()
        for counts in per_workload.values():
            per_type.update(counts)
        n_observed = max(1, len(per_workload))
        publishes = sum(per_type.values()) / n_observed
        deliveries = sum(count * sum(1 for keys in SUBSCRIPTIONS.values() if kind in keys)
                         for kind, count in per_type.items()) / n_observed
        sizes = [event.size for event in published]
        median_size = int(statistics.median(sizes)) if sizes else 1024

        hop_rows = []
        for label, start, end in HOPS:
            values = []
            for i in completed:
                t0 = sent[i] if start == "submit" else first.get((i, start))
                t1 = first.get((i, end))
                if t0 is not None and t1 is not None:
                    values.append(t1 - t0)
            hop_rows.append((label, values))
        relay = defaultdict(list)  # occurred_at → marked sent: outbox commit → relay → broker confirm → mark
        for event in published:
            if event.sent_at is not None:
                relay[event.type].append(event.sent_at - event.occurred_at)

        cpu = {k: cpu_after[k] - cpu_before.get(k, 0.0) for k in cpu_after}
        busy = busy_after[0] - busy_before[0]
        wall = ended_at - first_sent
        ncpu = os.cpu_count() or 1

        log("the broker's ceiling (same RabbitMQ, same message size) ...")
        ceiling = await broker_ceiling(env.rabbitmq_url, median_size, args.ceiling_messages, window=200,
                                       prefetch=Settings().consumer_prefetch)
        ceiling_wide = await broker_ceiling(env.rabbitmq_url, median_size, args.ceiling_messages, window=1000,
                                            prefetch=1000)
        await tap.close()
        spans_received = None
        if collector is not None:
            await asyncio.sleep(1.0)  # the services' batch exporters flush every 200 ms
            spans_received = stop_collector(collector)
            collector = None
        tracing = ("no collector: spans not recorded (the trace context is carried)" if not args.collector else
                   f"services export spans over OTLP to a receiver process ({spans_received} spans received in all, "
                   f"{(spans_received or 0) / max(args.n + args.warmup, 1):.0f} per request)"
                   + (f", sampler {extra.get('OTEL_TRACES_SAMPLER')} {extra.get('OTEL_TRACES_SAMPLER_ARG', '')}"
                      if extra.get("OTEL_TRACES_SAMPLER") else ", every trace recorded"))

        # ------------------------------------------------------------ report
        now = datetime.now(timezone.utc)
        command = " ".join(shlex.quote(a) for a in [".venv/bin/python", "bench/bench_saga.py", *sys.argv[1:]])
        lines += [f"## bench_saga: {args.n} auto-approved requests, {args.clients} clients, {mode} "
                  f"({now:%Y-%m-%d %H:%M} UTC)", "",
                  f"{now:%Y-%m-%d %H:%M} UTC, nproc={ncpu}, {platform.machine()}, Python {platform.python_version()}, "
                  f"{platform.system()} {platform.release()}, load average before/after "
                  f"{load_before[0]:.2f}/{load_after[0]:.2f}; machine speed: a fixed 1M-iteration Python loop "
                  f"takes {1000 * speed:.0f} ms on one core (best of 3, before the run; lower is faster); CPU "
                  f"stolen by the hypervisor during the run: {stolen:.1f} s", "",
                  f"`{command}`", "",
                  "setup: six services (one process each unless split) + RabbitMQ + PostgreSQL + Redis + S3 (moto's S3 backend, waitress) on this machine; "
                  + ("App = one Task with `bench-trivial` (command `true`, 0 GPUs, 1GB), " if args.component == "trivial"
                     else "App = one Task with `probe` (sleep_s 0, 0 GPUs, 1GB), ")
                  + "LocalRunner (one subprocess per component); "
                  + "".join(f"{name} split in two processes (its API; {event_side(name)}: consumers, relay); "
                            for name in args.split)
                  + (f"every process but the API of {', '.join(args.split)} at nice {args.background_nice}, the S3 "
                     f"server too (the front door first); "
                     if args.background_nice else "")
                  + f"{args.warmup} warm-up requests first; tracing: {tracing}", ""]
        lines += ["| figure | value |", "|---|---|",
                  f"| submitted / accepted (202) | {args.n} / {len(accepted)} (statuses {dict(statuses)}) |",
                  f"| submit API latency p50 / p99 / max | {ms(pct(latencies, 50))} / {ms(pct(latencies, 99))} / "
                  f"{ms(max(latencies) if latencies else float('nan'))} ms |",
                  f"| submit throughput | {len(accepted) / submit_wall:,.1f} requests/s ({submit_wall:.1f} s) |",
                  f"| workload.completed | {len(completed)}/{len(accepted)}" + (f", ended otherwise {dict(failed)}"
                                                                                   if failed else "") +
                  ("" if all_ended else " (timed out)") + " |",
                  f"| workloads completed per second (first submit → last completed) | {rate:,.2f} /s |",
                  f"| workloads completed per second, steady state (10%→90% of completions) | {steady:,.2f} /s |",
                  f"| submit → workload.completed p50 / p99 | {ms(pct(e2e, 50))} / {ms(pct(e2e, 99))} ms |",
                  f"| submit → model.stored p50 / p99 ({len(to_stored)} stored{'' if all_stored else ', timed out'}) | "
                  f"{ms(pct(to_stored, 50))} / {ms(pct(to_stored, 99))} ms |",
                  f"| broker publishes per workload (rows in the services' outboxes) | {publishes:.2f} |",
                  f"| broker deliveries per workload (to service queues, tap excluded) | {deliveries:.2f} |",
                  f"| broker ceiling, persistent + confirms, window 200, prefetch {ceiling['prefetch']} | "
                  f"{ceiling['rate']:,.0f} msg/s (p50 {ms(ceiling['p50'])} ms, p99 {ms(ceiling['p99'])} ms, "
                  f"{ceiling['size']} B) |",
                  f"| broker ceiling, window 1000, prefetch 1000 | {ceiling_wide['rate']:,.0f} msg/s "
                  f"(p50 {ms(ceiling_wide['p50'])} ms, p99 {ms(ceiling_wide['p99'])} ms) |",
                  f"| saga's broker load at the measured rate | {rate * publishes:,.0f} publishes/s = "
                  f"{100 * rate * publishes / ceiling['rate']:.1f}% of the ceiling; the ceiling alone would allow "
                  f"{ceiling['rate'] / max(publishes, 1e-9):,.0f} workloads/s |", ""]
        counted = {k: v - counters_before.get(k, 0.0) for k, v in counters_after.items()}
        loops = counted.get("avatar_scheduler_iteration_seconds_count", 0.0)
        loop_seconds = counted.get("avatar_scheduler_iteration_seconds_sum", 0.0)
        batched = {service: (counted.get(f"{service}:avatar_consumer_batched_events_total", 0.0),
                             counted.get(f"{service}:avatar_events_consumed_total", 0.0))
                   for service in env.stack.processes()}
        lines += [f"scheduler engine: {loops:,.0f} iterations during the run = {loops / max(len(completed), 1):.2f} per "
                  f"workload, {1000 * loop_seconds / max(loops, 1):.1f} ms each on average "
                  f"({1000 * loop_seconds / max(len(completed), 1):.1f} ms of wall time per workload)", ""]
        lines += ["deliveries handled in batches (one transaction and claim for the events delivered together): "
                  + ", ".join(f"{service} {n:,.0f} of {total:,.0f}" for service, (n, total) in batched.items() if total),
                  ""]
        inside = buckets_of(counted, "trainer:submit:")
        if inside and inside[-1][1]:
            lines += [f"submit inside the trainer (its avatar_http_request_duration_seconds, {inside[-1][1]:,.0f} "
                      f"accepted): p50 ≤ {1000 * bucket_bound(inside, 50):g} ms, p99 ≤ "
                      f"{1000 * bucket_bound(inside, 99):g} ms, {share_above(inside, 0.025):.1%} "
                      f"> 25 ms, {share_above(inside, 0.05):.1%} > 50 ms; the client saw "
                      f"{sum(1 for v in latencies if v > 0.05) / max(len(latencies), 1):.1%} > 50 ms", ""]
        lags = {service: loop_lag(counted, service) for service in env.stack.processes()}
        lines += ["event loop lag during the run (a timer every 100 ms: how late it ran): "
                  + ", ".join(f"{service} p99 ≤ {1000 * lag[3]:g} ms, {lag[1]:.1%} > 10 ms, {lag[2]:.1%} > 50 ms"
                              for service, lag in lags.items() if lag), ""]
        lines += ["events per workload: " + ", ".join(f"{k} {v / n_observed:.2f}" for k, v in sorted(per_type.items())),
                  ""]
        lines += ["saga hops (from each event's occurred_at; submit = client send time), ms:", "",
                  "| hop | p50 | p99 | max |", "|---|---|---|---|"]
        for label, values in hop_rows:
            lines.append(f"| {label} | {ms(pct(values, 50))} | {ms(pct(values, 99))} | "
                         f"{ms(max(values) if values else float('nan'))} |")
        lines += ["", "publish lag (occurred_at → the relay's mark: outbox commit → relay → broker confirm → marked sent), ms:", "",
                  "| event | p50 | p99 |", "|---|---|---|"]
        for kind in sorted(relay):
            lines.append(f"| {kind} | {ms(pct(relay[kind], 50))} | {ms(pct(relay[kind], 99))} |")
        lines += ["", f"CPU during the run (first submit → every consumer done: the last completion, then "
                  f"{ended_at - last_end:.1f} s more until every model was stored and the trainer's timelines held every "
                  f"event{'' if not behind else f' (gave up with {behind} events missing)'}; {wall:.1f} s wall; machine busy {busy:.1f} of "
                  f"{wall * ncpu:.1f} CPU-seconds = {100 * busy / max(wall * ncpu, 1e-9):.0f}%):", "",
                  "| process | CPU s | CPU ms per workload | share of busy |", "|---|---|---|---|"]
        for name, seconds in sorted(cpu.items(), key=lambda kv: -kv[1]):
            lines.append(f"| {name} | {seconds:.1f} | {1000 * seconds / max(len(completed), 1):.1f} | "
                         f"{100 * seconds / max(busy, 1e-9):.0f}% |")
        accounted = sum(cpu.values())
        lines.append(f"| (not accounted: other processes on the machine) | {busy - accounted:.1f} | "
                     f"{1000 * (busy - accounted) / max(len(completed), 1):.1f} | "
                     f"{100 * (busy - accounted) / max(busy, 1e-9):.0f}% |")
        per = {k: v / max(len(completed), 1) for k, v in cpu.items()}
        components = per.get("components (scheduler's children)", 0.0)
        platform_only = sum(v for k, v in per.items() if not k.startswith(("components", "this client")))
        lines += ["", f"CPU bound on {ncpu} cores: {1000 * (components + platform_only):.0f} ms per workload "
                  f"(components {1000 * components:.0f} + services and servers {1000 * platform_only:.0f}) → at most "
                  f"{ncpu / max(components + platform_only, 1e-9):.1f} workloads/s here; with the components off this "
                  f"machine (pods on GPU nodes) the services and servers alone → at most "
                  f"{ncpu / max(platform_only, 1e-9):.1f} workloads/s; 50/s needs ≤ {1000 * ncpu / 50:.0f} ms per "
                  "workload in all."]
        if profiles:
            lines += ["", f"py-spy (first {args.profile_seconds} s of the run, 50 Hz, samples holding the GIL): "
                      "each service's CPU by its innermost frame of this repository (else the leaf)", ""]
            for service, _, out in profiles:
                top = summarise_profile(out)
                if top:
                    lines.append(f"- {service}: " + "; ".join(f"{name} {share:.0%}" for name, share in top))
        lines.append("")
        return "\n".join(lines)
    finally:
        await tear_down(env, args.keep)
        if collector is not None:
            collector.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000, help="training requests to submit")
    parser.add_argument("--clients", type=int, default=50, help="concurrent submitting clients")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="open loop: submits per second over all clients (0: each client as fast as answered)")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--collector", action="store_true",
                        help="services export their spans over OTLP to a receiver process (all traces recorded "
                             "unless --env OTEL_TRACES_SAMPLER=... samples); default: no collector, no spans")
    parser.add_argument("--component", choices=("trivial", "probe"), default="trivial",
                        help="trivial: a library component whose command is `true` (the issue's 'trivial component "
                             "command'); probe: the reference probe (python, writes two objects to S3)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for the workloads to end")
    parser.add_argument("--ceiling-messages", type=int, default=20000)
    parser.add_argument("--profile", action="store_true", help="py-spy each service during the run")
    parser.add_argument("--profile-seconds", type=int, default=20)
    parser.add_argument("--env", action="append", default=[], metavar="AVATAR_X=VALUE",
                        help="an extra setting for every service (repeatable), e.g. AVATAR_SCHEDULER_LOCAL_NICE=0")
    parser.add_argument("--tap-all", action="store_true",
                        help="bind the tap to every event (#), as the bench did before: ~1.8 ms more CPU per workload")
    add_layout_options(parser)  # --split, --background-nice: as `make up SPLIT=trainer NICE=5`
    parser.add_argument("--keep", action="store_true", help="keep the run directory (service logs)")
    add_record_option(parser)
    args = parse_layout(parser, argv)
    publish(asyncio.run(run(args)), args)
    if not args.no_record:
        log("appended to bench/RESULTS.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
