"""Benchmark: what the gateway adds to a call, against calling the service directly in the same run.

    .venv/bin/python bench/bench_gateway.py                     # every phase (~3 minutes), prints a report
    .venv/bin/python bench/bench_gateway.py --seconds 10 --submit-seconds 5 --closed-seconds 5   # shorter
    .venv/bin/python bench/bench_gateway.py --only list,download   # some phases (list, throughput, download, submit)
    .venv/bin/python bench/bench_gateway.py --profile --keep    # also py-spy the gateway (list and submit phases)
    .venv/bin/python bench/bench_gateway.py --no-rate-limits    # A/B: the gateway without its Redis rate limits

Everything is real and on this machine: PostgreSQL, RabbitMQ and Redis (a fresh database, vhost and key prefix),
the S3 stand-in, the six services and the gateway as processes (services.kit.stack.Stack on free ports, the
bring-up in bench/gateway_setup.py). The gateway's rate limits stay on with limits far above the offered
load, so they never refuse and most requests are admitted from the gateway's allowance, counted into Redis in
one hit a moment later (services/gateway/ratelimit.py); --no-rate-limits turns them off. Through the gateway
the client sends an API token (`avt_...`) of the user `kim`, made as an outside script makes one (local login,
POST /api/tokens); directly it sends a kit JWT of the same user (HS256, the stack's local secret), as another
system calling the trainer does.

Phases, the two paths taking turns in blocks (--block seconds) so that the machine's noise (a shared 2-core
box) falls on both alike:
- list: GET /api/trainer/training-requests?page_size=20 vs GET /training-requests?page_size=20 on the trainer,
  open loop at --rate requests/s (each request sent at its due time, whatever the others are doing) for
  --seconds per path, after --seed requests were submitted and run to completion (a full page to list);
  a third path takes its turns too: bench/bare_proxy.py, a proxy that only forwards, on the same uvicorn and
  aiohttp: the floor any Python proxy adds on this machine, against which the gateway's own work shows;
- throughput: the same GET, closed loop: --clients clients each as fast as answered, --closed-seconds per path
  (ABBA blocks); requests/s through the gateway ÷ directly;
- download: a second gateway process whose `models` upstream is a stand-in in this process (an aiohttp server
  streaming --download-mib MiB, chunked); GET /api/models/blob through it, its RSS sampled every 50 ms (psutil);
- submit: POST /api/trainer/training-requests vs POST /training-requests (auto-approved, the App of
  bench_saga.py: one Task with the `bench-trivial` component), open loop at --submit-rate for --submit-seconds
  per path. Last, since the saga then runs every submitted workload in the background.

Latency is the client's: from sending the request to the last byte of the answer. "Added" is gateway − direct
of the same percentile. CPU per request of the gateway, the trainer and this client comes from /proc, per block.
The report is printed (a table per phase, then one JSON line with every figure); nothing is written to
bench/RESULTS.md.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import psutil  # noqa: E402

from bench_saga import (PROBE_RESOURCES, build_bench_app, cpu_of, log, machine_busy, pct, pids_named,  # noqa: E402
                        python_speed, summarise_profile, tear_down)
from services.trainer.domain import FINAL  # noqa: E402
from gateway_setup import (BytesUpstream, SecondGateway, bring_up, direct_token,  # noqa: E402
                           gateway_token)
from services.kit.stack import port_open, wait_for  # noqa: E402
from tests.support.infra import free_port  # noqa: E402

GATEWAY, DIRECT, BARE = "gateway", "direct", "bare proxy"
UNLIMITED = "1000000/minute"  # far above any load this bench offers: the limiter runs, never refuses
GOALS = {"added_p50_ms": 1.0, "added_p99_ms": 5.0, "throughput_ratio": 0.8, "download_peak_rss_mb": 150.0}


# ---------------------------------------------------------------- the two paths

@dataclass
class Side:
    """One way to the trainer: a client session with its credentials and base URL."""
    label: str
    base: str          # http://127.0.0.1:<gateway>/api/trainer or http://127.0.0.1:<trainer>
    token: str
    session: aiohttp.ClientSession | None = None

    async def open(self, connections: int = 100) -> None:
        # aiohttp for the client (its parser is C: half httpx's CPU per request on a machine the servers share)
        self.session = aiohttp.ClientSession(headers={"Authorization": f"Bearer {self.token}"},
                                             connector=aiohttp.TCPConnector(limit=connections, keepalive_timeout=60),
                                             timeout=aiohttp.ClientTimeout(total=60))

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()


@dataclass
class Sample:
    latency: float
    status: int
    late: float  # how late the client sent it against its due time (open loop): the client's own lag


@dataclass
class Tally:
    samples: dict[str, list[Sample]] = field(default_factory=lambda: defaultdict(list))
    block_p50: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    cpu: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    seconds: Counter = field(default_factory=Counter)

    def ok(self, label: str, status: int) -> list[float]:
        return [s.latency for s in self.samples[label] if s.status == status]

    def statuses(self, label: str) -> dict[int, int]:
        return dict(Counter(s.status for s in self.samples[label]))


class CpuMeter:
    """CPU seconds so far of the processes a request through either path touches."""

    def __init__(self, env: Any, bare_pid: int) -> None:
        stack = env.stack
        self.pids = {name: int((stack.run_dir / f"{name}.pid").read_text()) for name in ("gateway", "trainer")}
        self.pids[BARE] = bare_pid
        self.database = stack.database

    def sample(self) -> dict[str, float]:
        values = {name: cpu_of(pid) for name, pid in self.pids.items()}
        values["postgresql"] = sum(cpu_of(p) for p in pids_named("postgres", f" {self.database} "))
        values["redis"] = sum(cpu_of(p) for p in pids_named("redis-server"))
        times = os.times()
        values["client"] = times.user + times.system
        values["machine"] = machine_busy()[0]  # every process on the machine: the others' share is visible
        return values

    async def idle_rate(self, seconds: float = 3.0) -> dict[str, float]:
        """CPU seconds per second each process spends with no request at all (its background loops)."""
        before = self.sample()
        await asyncio.sleep(seconds)
        after = self.sample()
        return {k: (after[k] - before[k]) / seconds for k in after}


async def one(path: Side, method: str, url: str, body: dict | None) -> tuple[int, float]:
    started = time.perf_counter()
    try:
        async with path.session.request(method, url, json=body) as response:  # type: ignore[union-attr]
            await response.read()
            status = response.status
    except (aiohttp.ClientError, asyncio.TimeoutError):
        status = 0
    return status, time.perf_counter() - started


def blocks(seconds_each: float, block: float, order: tuple[str, ...]) -> list[tuple[str, float]]:
    """The schedule: (label, duration) blocks taking turns, `seconds_each` per label in all."""
    n = max(1, round(seconds_each / block))
    return [(label, seconds_each / n) for _ in range(n) for label in order]


async def open_loop(paths: dict[str, Side], method: str, route: dict[str, str], body: Callable[[int], dict | None],
                    rate: float, seconds_each: float, block: float, meter: CpuMeter,
                    order: tuple[str, ...] = (GATEWAY, DIRECT)) -> Tally:
    """Requests sent at `rate`/s on a fixed clock, the path switching every `block` seconds; every request
    is a task of its own (a slow answer delays no other send)."""
    tally = Tally()
    counter = itertools.count()
    pending: set[asyncio.Task] = set()

    async def send(label: str, due: float, k: int) -> None:
        late = time.perf_counter() - due
        status, latency = await one(paths[label], method, paths[label].base + route[label], body(k))
        tally.samples[label].append(Sample(latency, status, late))

    for label, duration in blocks(seconds_each, block, order):
        before, started = meter.sample(), time.perf_counter()
        first = len(tally.samples[label])
        n = int(duration * rate)
        for i in range(n):
            due = started + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(send(label, due, next(counter)))
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.sleep(max(0.0, started + duration - time.perf_counter()))
        after = meter.sample()
        tally.cpu[label].update({k: after[k] - before[k] for k in after})
        tally.seconds[label] += time.perf_counter() - started
        # this block's median, for the paired view (blocks next to each other see the same machine)
        done_in_block = [s.latency for s in tally.samples[label][first:] if s.status < 400]
        if done_in_block:
            tally.block_p50[label].append(statistics.median(done_in_block))
    if pending:
        await asyncio.wait(pending, timeout=60)
    return tally


async def closed_loop(paths: dict[str, Side], route: dict[str, str], clients: int, seconds_each: float,
                      meter: CpuMeter) -> Tally:
    """`clients` clients each sending the next request once the last is answered; ABBA blocks."""
    tally = Tally()
    half = seconds_each / 2
    for label in (GATEWAY, DIRECT, DIRECT, GATEWAY):
        path, url = paths[label], paths[label].base + route[label]
        stop_at = time.perf_counter() + half

        async def client() -> None:
            while time.perf_counter() < stop_at:
                status, latency = await one(path, "GET", url, None)
                tally.samples[label].append(Sample(latency, status, 0.0))

        before, started = meter.sample(), time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        after = meter.sample()
        tally.cpu[label].update({k: after[k] - before[k] for k in after})
        tally.seconds[label] += time.perf_counter() - started
    return tally


# ---------------------------------------------------------------- the download check

class RssSampler(threading.Thread):
    """The peak resident set of a process, read every `every` seconds (a thread: the event loop is busy)."""

    def __init__(self, pid: int, every: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.process, self.every = psutil.Process(pid), every
        self.peak = self.first = self.process.memory_info().rss
        self.samples = 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            with contextlib.suppress(psutil.Error):
                self.peak = max(self.peak, self.process.memory_info().rss)
                self.samples += 1
            self._done.wait(self.every)

    def stop(self) -> None:
        self._done.set()
        self.join(5)


async def download_check(env: Any, token: str, mib: int, extra_env: dict[str, str]) -> dict[str, Any]:
    size = mib << 20
    async with BytesUpstream(size) as upstream:
        second = SecondGateway(env.stack, upstream.url, extra_env)
        await second.start()
        try:
            pid = second.process.pid  # type: ignore[union-attr]
            async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"},
                                             timeout=aiohttp.ClientTimeout(total=600)) as http:
                for _ in range(3):  # the caller's token looked up, the upstream pool and OpenAPI routes fetched
                    async with http.get(f"{second.url}/api/models/small") as response:
                        await response.read()
                    await asyncio.sleep(0.2)
                idle = psutil.Process(pid).memory_info().rss
                results = {}
                for target, label in ((f"{second.url}/api/models/blob", "through the gateway"),
                                      (f"{upstream.url}/blob", "stand-in directly")):
                    sampler = RssSampler(pid)
                    sampler.start()
                    cpu_before = cpu_of(pid)
                    started, received = time.perf_counter(), 0
                    async with http.get(target) as response:
                        status = response.status
                        async for chunk in response.content.iter_chunked(1 << 20):
                            received += len(chunk)
                    elapsed = time.perf_counter() - started
                    sampler.stop()
                    results[label] = {"status": status, "bytes": received, "seconds": elapsed,
                                      "mb_per_s": received / elapsed / 1e6, "peak_rss_mb": sampler.peak / 1e6,
                                      "rss_samples": sampler.samples, "gateway_cpu_s": cpu_of(pid) - cpu_before}
                gateway_side = results["through the gateway"]
                return {"size_mib": mib, "idle_rss_mb": idle / 1e6, "complete": gateway_side["bytes"] == size,
                        **{f"{k}": v for k, v in gateway_side.items()},
                        "direct_mb_per_s": results["stand-in directly"]["mb_per_s"]}
        finally:
            second.stop()


# ---------------------------------------------------------------- seeding and profiling

async def seed(direct: Side, app_id: str, n: int, timeout: float = 120) -> tuple[int, float]:
    """`n` training requests submitted directly (20 at a time) and run to completion: a full page to list."""
    gate = asyncio.Semaphore(20)

    async def submit(k: int) -> int:
        async with gate:
            status, _ = await one(direct, "POST", direct.base + "/training-requests", submit_body(app_id, "seed", k))
            return status

    statuses = await asyncio.gather(*(submit(k) for k in range(n)))
    accepted = sum(1 for s in statuses if s == 202)
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        done = 0
        for status in FINAL:  # the trainer's final statuses: nothing more happens to these
            async with direct.session.get(direct.base + "/training-requests",  # type: ignore[union-attr]
                                          params={"status": status, "page_size": 1}) as response:
                done += (await response.json())["total"]
        if done >= accepted:
            break
        await asyncio.sleep(0.5)
    return accepted, time.perf_counter() - started


async def start_bare_proxy(trainer: str, run_dir: Path) -> tuple[subprocess.Popen, str]:
    """bench/bare_proxy.py in front of the trainer, as the gateway is: (its process, its base URL)."""
    port = free_port()
    process = subprocess.Popen([sys.executable, str(ROOT / "bench" / "bare_proxy.py"), "--port", str(port),
                                "--upstream", trainer, "--prefix", "/api/trainer"],
                               stdout=subprocess.DEVNULL, stderr=open(run_dir / "bare-proxy.log", "wb"))
    await asyncio.to_thread(wait_for, lambda: port_open(port), 10,
                            f"bench/bare_proxy.py (see {run_dir}/bare-proxy.log)")
    return process, f"http://127.0.0.1:{port}"


def submit_body(app_id: str, label: str, k: int) -> dict[str, Any]:
    return {"app_id": app_id, "name": f"{label}-{k}", "priority": "normal", "resources": PROBE_RESOURCES,
            "training_config": {"episodes": 1}}


def start_profile(pid: int, out: Path, seconds: float) -> subprocess.Popen | None:
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        log("py-spy is not installed (.venv/bin/pip install py-spy); no profile")
        return None
    return subprocess.Popen([spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "200",
                             "--format", "raw", "--output", str(out), "--nonblocking", "--gil"],
                            stdout=subprocess.DEVNULL, stderr=open(out.with_suffix(".err"), "wb"))


# ---------------------------------------------------------------- figures

def ms(value: float) -> str:
    return f"{value * 1000:,.2f}"


PROCESSES = ("gateway", BARE, "trainer", "postgresql", "redis", "client")


def cpu_figures(tally: Tally, idle: dict[str, float], label: str) -> dict[str, Any]:
    """Per request: each process's CPU ms with its idle background taken off (what the requests cost);
    per second: the cores each was busy, the machine's, and everything else's (the stack's other
    processes, RabbitMQ, other work on this shared machine)."""
    used, seconds, n = tally.cpu[label], tally.seconds[label] or 1e-9, max(1, len(tally.samples[label]))
    per_request = {k: round(1000 * max(0.0, used[k] - idle.get(k, 0.0) * seconds) / n, 3) for k in PROCESSES}
    cores = {k: round(used[k] / seconds, 2) for k in (*PROCESSES, "machine")}
    cores["everything else"] = round(max(0.0, cores["machine"] - sum(cores[k] for k in PROCESSES)), 2)
    return {f"cpu_ms_per_request_{label}": per_request, f"cpu_cores_{label}": cores}


def latency_figures(tally: Tally, status: int, idle: dict[str, float]) -> dict[str, Any]:
    g, d = tally.ok(GATEWAY, status), tally.ok(DIRECT, status)
    figures: dict[str, Any] = {"n_gateway": len(g), "n_direct": len(d),
                               "statuses_gateway": tally.statuses(GATEWAY), "statuses_direct": tally.statuses(DIRECT)}
    for q in (50, 90, 99):
        figures[f"gateway_p{q}_ms"] = 1000 * pct(g, q)
        figures[f"direct_p{q}_ms"] = 1000 * pct(d, q)
        figures[f"added_p{q}_ms"] = 1000 * (pct(g, q) - pct(d, q))
    pairs = list(zip(tally.block_p50[GATEWAY], tally.block_p50[DIRECT]))
    figures["added_p50_paired_ms"] = 1000 * statistics.median(a - b for a, b in pairs) if pairs else float("nan")
    late = [s.late for label in (GATEWAY, DIRECT) for s in tally.samples[label]]
    figures["client_send_late_p99_ms"] = 1000 * pct(late, 99)
    for label in (GATEWAY, DIRECT):
        figures.update(cpu_figures(tally, idle, label))
    if tally.samples.get(BARE):  # the floor: what a proxy that only forwards adds, in the same run
        b = tally.ok(BARE, status)
        figures["n_bare"] = len(b)
        for q in (50, 90, 99):
            figures[f"bare_p{q}_ms"] = 1000 * pct(b, q)
            figures[f"floor_added_p{q}_ms"] = 1000 * (pct(b, q) - pct(d, q))
            figures[f"over_floor_p{q}_ms"] = 1000 * (pct(g, q) - pct(b, q))
        figures.update(cpu_figures(tally, idle, BARE))
    figures["saturated"] = saturated(figures)
    return figures


def saturated(figures: dict[str, Any]) -> bool:
    """Whether the machine could not serve the offered rate: the client sent late, or the direct path
    already queued (its p50 far above the trainer's own CPU per request)."""
    trainer_ms = figures["cpu_ms_per_request_direct"]["trainer"]
    return figures["client_send_late_p99_ms"] > 5 or figures["direct_p50_ms"] > max(20.0, 10 * trainer_ms)


def throughput_figures(tally: Tally, idle: dict[str, float]) -> dict[str, Any]:
    rates = {label: sum(1 for s in tally.samples[label] if s.status == 200) / tally.seconds[label]
             for label in (GATEWAY, DIRECT)}
    figures = {"gateway_rps": rates[GATEWAY], "direct_rps": rates[DIRECT], "ratio": rates[GATEWAY] / rates[DIRECT],
               "statuses_gateway": tally.statuses(GATEWAY), "statuses_direct": tally.statuses(DIRECT)}
    for label in (GATEWAY, DIRECT):
        values = tally.ok(label, 200)
        figures[f"{label}_p50_ms"], figures[f"{label}_p99_ms"] = 1000 * pct(values, 50), 1000 * pct(values, 99)
        figures.update(cpu_figures(tally, idle, label))
    return figures


def verdict(value: float, goal: float, *, above: bool = False) -> str:
    met = value >= goal if above else value <= goal
    return "met" if met else "NOT met"


def cpu_rows(f: dict[str, Any]) -> list[str]:
    g, d = f["cpu_ms_per_request_gateway"], f["cpu_ms_per_request_direct"]
    cg, cd = f["cpu_cores_gateway"], f["cpu_cores_direct"]
    rows = [f"| CPU ms per request (idle background taken off): {k} | {g[k]:.2f} | {d[k]:.2f} | {g[k] - d[k]:+.2f} |"
            for k in PROCESSES if k != BARE]
    rows.append(f"| cores busy: machine (of {os.cpu_count()}) / everything else | {cg['machine']:.2f} / "
                f"{cg['everything else']:.2f} | {cd['machine']:.2f} / {cd['everything else']:.2f} | |")
    return rows


def latency_table(title: str, f: dict[str, Any]) -> list[str]:
    lines = [f"### {title}", "",
             "| figure | through the gateway | direct | added |", "|---|---|---|---|",
             f"| requests answered (statuses) | {f['n_gateway']} {f['statuses_gateway']} | {f['n_direct']} "
             f"{f['statuses_direct']} | |",
             *(f"| p{q} latency ms | {f[f'gateway_p{q}_ms']:.2f} | {f[f'direct_p{q}_ms']:.2f} | "
               f"**{f[f'added_p{q}_ms']:+.2f}** |" for q in (50, 90, 99)),
             f"| p50 added, median over adjacent block pairs ms | | | {f['added_p50_paired_ms']:+.2f} |",
             *cpu_rows(f),
             *(f"| the floor: p{q} ms through a bare proxy (bench/bare_proxy.py: forwards, checks nothing) | "
               f"{f[f'bare_p{q}_ms']:.2f} | | {f[f'floor_added_p{q}_ms']:+.2f}; the gateway "
               f"{f[f'over_floor_p{q}_ms']:+.2f} above it |" for q in (50, 90, 99) if f"bare_p{q}_ms" in f),
             *([f"| the floor: CPU ms per request of the bare proxy | "
                f"{f[f'cpu_ms_per_request_{BARE}'][BARE]:.2f} | | |"]
               if f"cpu_ms_per_request_{BARE}" in f else []),
             "", f"goal added p50 ≤ {GOALS['added_p50_ms']:g} ms: {verdict(f['added_p50_ms'], GOALS['added_p50_ms'])}; "
             f"added p99 ≤ {GOALS['added_p99_ms']:g} ms: {verdict(f['added_p99_ms'], GOALS['added_p99_ms'])} "
             f"(the client sent p99 {f['client_send_late_p99_ms']:.2f} ms after the due time)"]
    if f["saturated"]:
        lines.append("**the machine could not serve the offered rate (the client sent late or the direct path "
                     "queued): these latencies are mostly queueing; the CPU per request above is the figure to trust**")
    return lines + [""]


# ---------------------------------------------------------------- the run

async def run(args: argparse.Namespace) -> dict[str, Any]:
    phases = set(args.only.split(",")) if args.only else {"list", "throughput", "download", "submit"}
    limits = {"AVATAR_RATE_LIMITS_ENABLED": "false"} if args.no_rate_limits else \
        {"AVATAR_RATE_LIMIT_USER": UNLIMITED, "AVATAR_RATE_LIMIT_ADDRESS": UNLIMITED}
    speed = python_speed()
    load_before = os.getloadavg()
    log("bringing up the six services and the gateway ...")
    env = await bring_up({}, limits)
    report: dict[str, Any] = {"bench": "bench_gateway", "at": f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
                              "nproc": os.cpu_count(), "python": platform.python_version(),
                              "machine_speed_ms": round(1000 * speed), "load_before": round(load_before[0], 2),
                              "rate_limits": "off" if args.no_rate_limits else f"on, {UNLIMITED} per user and address",
                              "command": " ".join(shlex.quote(a) for a in [".venv/bin/python", "bench/bench_gateway.py",
                                                                            *sys.argv[1:]])}
    paths: dict[str, Side] = {}
    bare = None
    try:
        token, how = await asyncio.to_thread(gateway_token, env.stack)
        report["gateway_credential"] = how
        bare, bare_url = await start_bare_proxy(env.base["trainer"], env.run_dir)
        paths = {GATEWAY: Side(GATEWAY, f"{env.stack.gateway_url}/api/trainer", token),
                 DIRECT: Side(DIRECT, env.base["trainer"], direct_token()),
                 BARE: Side(BARE, f"{bare_url}/api/trainer", direct_token())}
        for path in paths.values():
            await path.open()
        meter = CpuMeter(env, bare.pid)
        app_id = None
        if {"list", "throughput", "submit"} & phases:
            log("building the bench-trivial App through the builder ...")
            app_id = await asyncio.to_thread(build_bench_app, env.base, "trivial")
        list_route = {label: f"/training-requests?page_size={args.page_size}" for label in paths}

        if {"list", "throughput"} & phases:
            log(f"seeding {args.seed} training requests and waiting for them to complete ...")
            accepted, waited = await seed(paths[DIRECT], app_id, args.seed)
            report["seeded"] = accepted
            log(f"{accepted} seeded, completed after {waited:.1f}s")
        # once the seeded saga is done: what each process burns with no request (its background loops)
        log("the processes' idle CPU (3 s without requests) ...")
        idle = await meter.idle_rate()
        report["idle_cores"] = {k: round(v, 3) for k, v in idle.items()}

        if {"list", "throughput"} & phases:
            log("warming both paths up ...")
            await open_loop(paths, "GET", list_route, lambda k: None, args.rate, 2, 0.5, meter,
                            order=(GATEWAY, BARE, DIRECT))

        if "list" in phases:
            profile = None
            if args.profile:
                profile_out = env.run_dir / "profile-gateway-list.txt"
                profile = start_profile(meter.pids["gateway"], profile_out, args.seconds * 2)
            log(f"list: open loop at {args.rate:g}/s, {args.seconds:g}s per path in {args.block:g}s blocks ...")
            tally = await open_loop(paths, "GET", list_route, lambda k: None, args.rate, args.seconds, args.block,
                                    meter, order=(GATEWAY, BARE, DIRECT))
            report["list"] = latency_figures(tally, 200, idle)
            if profile is not None:
                with contextlib.suppress(Exception):
                    profile.wait(args.seconds * 2 + 30)
                report["list_profile"] = [(name, round(share, 3)) for name, share in
                                          summarise_profile(profile_out, top=15)]
                report["list_profile_file"] = str(profile_out)

        if "throughput" in phases:
            log(f"throughput: closed loop, {args.clients} clients, {args.closed_seconds:g}s per path (ABBA) ...")
            tally = await closed_loop(paths, list_route, args.clients, args.closed_seconds, meter)
            report["throughput"] = throughput_figures(tally, idle)

        if "download" in phases:
            log(f"download: {args.download_mib} MiB through a second gateway from a stand-in upstream ...")
            report["download"] = await download_check(env, token, args.download_mib, limits)

        if "submit" in phases:
            log("submit: warming up ...")
            route = {GATEWAY: "/training-requests", DIRECT: "/training-requests"}
            warm = itertools.count()
            await open_loop(paths, "POST", route, lambda k: submit_body(app_id, "warm", next(warm)), args.submit_rate,
                            1, 0.5, meter)
            profile = None
            if args.profile:
                submit_out = env.run_dir / "profile-gateway-submit.txt"
                profile = start_profile(meter.pids["gateway"], submit_out, args.submit_seconds * 2)
            log(f"submit: open loop at {args.submit_rate:g}/s, {args.submit_seconds:g}s per path in "
                f"{args.block:g}s blocks ...")
            tally = await open_loop(paths, "POST", route, lambda k: submit_body(app_id, "bench", k), args.submit_rate,
                                    args.submit_seconds, args.block, meter)
            report["submit"] = latency_figures(tally, 202, idle)
            if profile is not None:
                with contextlib.suppress(Exception):
                    profile.wait(args.submit_seconds * 2 + 30)
                report["submit_profile"] = [(name, round(share, 3)) for name, share in
                                            summarise_profile(submit_out, top=15)]
                report["submit_profile_file"] = str(submit_out)
        report["load_after"] = round(os.getloadavg()[0], 2)
        return report
    finally:
        for path in paths.values():
            await path.close()
        if bare is not None:
            bare.terminate()
            bare.wait(10)
        await tear_down(env, args.keep)


def render(report: dict[str, Any], args: argparse.Namespace) -> str:
    lines = [f"## bench_gateway ({report['at']})", "",
             f"nproc={report['nproc']}, Python {report['python']}, load average before/after "
             f"{report['load_before']}/{report.get('load_after')}; machine speed {report['machine_speed_ms']} ms "
             f"(bench_saga's 1M-iteration loop, lower is faster)", "", f"`{report['command']}`", "",
             f"setup: six services + gateway as processes (one each), PostgreSQL, RabbitMQ, Redis, S3 stand-in on "
             f"this machine; through the gateway: {report.get('gateway_credential')}; directly: a kit JWT of the "
             f"same user; gateway rate limits {report['rate_limits']}; {report.get('seeded', 0)} requests seeded "
             f"(completed) before listing a page of {args.page_size}", "",
             "with no request at all (3 s, after the seeding): " + ", ".join(
                 f"{k} {v:.2f}" for k, v in report.get("idle_cores", {}).items()) + " cores busy (machine: every "
             "process on it, other sessions' work included)", ""]
    if "list" in report:
        lines += latency_table(f"GET training-requests?page_size={args.page_size}, open loop {args.rate:g}/s, "
                               f"{args.seconds:g}s per path", report["list"])
    if "throughput" in report:
        t = report["throughput"]
        lines += [f"### throughput: GET training-requests, closed loop, {args.clients} clients, "
                  f"{args.closed_seconds:g}s per path", "",
                  "| figure | through the gateway | direct |", "|---|---|---|",
                  f"| requests/s | {t['gateway_rps']:,.0f} | {t['direct_rps']:,.0f} |",
                  f"| p50 / p99 ms | {t['gateway_p50_ms']:.1f} / {t['gateway_p99_ms']:.1f} | "
                  f"{t['direct_p50_ms']:.1f} / {t['direct_p99_ms']:.1f} |",
                  f"| statuses | {t['statuses_gateway']} | {t['statuses_direct']} |",
                  *(f"| CPU ms per request (idle taken off): {k} | {t['cpu_ms_per_request_gateway'][k]:.2f} | "
                    f"{t['cpu_ms_per_request_direct'][k]:.2f} |" for k in PROCESSES if k != BARE),
                  *(f"| cores busy: {k} | {t['cpu_cores_gateway'][k]:.2f} | {t['cpu_cores_direct'][k]:.2f} |"
                    for k in (*PROCESSES, "machine", "everything else") if k != BARE),
                  "", f"ratio gateway ÷ direct: **{t['ratio']:.2f}** (goal ≥ {GOALS['throughput_ratio']:g}: "
                  f"{verdict(t['ratio'], GOALS['throughput_ratio'], above=True)})", ""]
    if "download" in report:
        d = report["download"]
        lines += [f"### download: {d['size_mib']} MiB through a second gateway (stand-in upstream in the bench "
                  "process, chunked 1 MiB writes)", "",
                  "| figure | value |", "|---|---|",
                  f"| status / bytes received / complete | {d['status']} / {d['bytes']:,} / {d['complete']} |",
                  f"| gateway RSS idle → peak ({d['rss_samples']} samples, every 50 ms) | {d['idle_rss_mb']:.0f} → "
                  f"**{d['peak_rss_mb']:.0f} MB** (goal < {GOALS['download_peak_rss_mb']:g}: "
                  f"{verdict(d['peak_rss_mb'], GOALS['download_peak_rss_mb'])}) |",
                  f"| throughput through the gateway | {d['mb_per_s']:,.0f} MB/s ({d['seconds']:.1f} s) |",
                  f"| the stand-in read directly | {d['direct_mb_per_s']:,.0f} MB/s |",
                  f"| gateway CPU | {d['gateway_cpu_s']:.2f} s ({d['gateway_cpu_s'] / (d['bytes'] / 2**30 or 1):.2f} s/GiB) |",
                  ""]
    if "submit" in report:
        lines += latency_table(f"POST training-requests (auto-approved), open loop {args.submit_rate:g}/s, "
                               f"{args.submit_seconds:g}s per path", report["submit"])
    if report.get("list_profile"):
        lines += [f"py-spy of the gateway during the list phase ({report['list_profile_file']}), samples holding "
                  "the GIL charged to the innermost frame of this repository (else the leaf):", ""]
        lines += [f"- {share:.0%} {name}" for name, share in report["list_profile"]]
        lines.append("")
    if report.get("submit_profile"):
        lines += [f"py-spy of the gateway during the submit phase ({report['submit_profile_file']}; the saga's events "
                  "reach its consumers meanwhile), same charging:", ""]
        lines += [f"- {share:.0%} {name}" for name, share in report["submit_profile"]]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=200, help="list phase: requests/s offered (open loop)")
    parser.add_argument("--seconds", type=float, default=20, help="list phase: seconds per path")
    parser.add_argument("--block", type=float, default=1.0, help="seconds of one path before the other takes a turn")
    parser.add_argument("--seed", type=int, default=100, help="training requests run before the list phase")
    parser.add_argument("--page-size", type=int, default=20, help="list phase: the page listed (the API's default)")
    parser.add_argument("--clients", type=int, default=32, help="throughput phase: concurrent clients")
    parser.add_argument("--closed-seconds", type=float, default=10, help="throughput phase: seconds per path")
    parser.add_argument("--download-mib", type=int, default=1024, help="download phase: MiB streamed")
    parser.add_argument("--submit-rate", type=float, default=20,
                        help="submit phase: submits/s offered (open loop); the saga costs ~45 ms of CPU per workload "
                             "here, so 50/s saturates two cores and the latencies become the saga's queueing")
    parser.add_argument("--submit-seconds", type=float, default=10, help="submit phase: seconds per path")
    parser.add_argument("--only", default="", help="comma-separated phases: list, throughput, download, submit")
    parser.add_argument("--no-rate-limits", action="store_true", help="the gateway without rate limits (A/B)")
    parser.add_argument("--profile", action="store_true", help="py-spy the gateway during the list and submit phases")
    parser.add_argument("--keep", action="store_true", help="keep the run directory (service logs, profile)")
    args = parser.parse_args(argv)
    report = asyncio.run(run(args))
    print()
    print(render(report, args))
    print(json.dumps(report, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
