"""Benchmark: the gateway's live events (GET /api/events) fanned out to many SSE clients.

    .venv/bin/python bench/bench_sse.py                          # 200 clients, 100 events/s for 20 s
    .venv/bin/python bench/bench_sse.py --clients 500 --rate 200 --seconds 30
    .venv/bin/python bench/bench_sse.py --env AVATAR_CONSUMER_MIN_BATCH_SECONDS=0   # A/B a gateway setting

Everything is real: the local PostgreSQL, RabbitMQ and Redis (a fresh database, vhost and Redis key prefix
of its own) and the gateway as a process of its own under uvicorn on a free port (`python -m
services.gateway`, as `make up` starts it). C clients connect to /api/events with a viewer's token, from
W client processes (so that the clients' own parsing does not share one event loop and skew the figures);
then `workload.queued` events are published straight onto avatar.events at R per second (open loop,
persistent, publisher confirms, as the scheduler's relay does), each stamped `occurred_at` just before its
publish.

Measured, on one clock (one machine):
- occurred_at → client receive, over every delivery (client × event); split into occurred_at → the
  Redis Stream entry (its id is the XADD's millisecond: broker, the gateway's consumer, the append) and
  the entry → client (the gateway's reader, fan-out, socket, the client's read);
- the broker's own floor in the same run: occurred_at → a plain aio-pika consumer bound to the exchange,
  and per delivery what the gateway adds over it (that consumer's receive → the SSE client's, same event);
- clients dropped (a stream that ended, answered other than 200 or sent `event: reset`), events missed
  (published but not received by a client), duplicates;
- the gateway process's CPU and RSS, and its own counters (/metrics).

Figures are printed only; bench/RESULTS.md is kept by hand.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
GOAL_P95_MS = 300.0
APPENDED = 'avatar_gateway_sse_appended_total{outcome="appended"}'


# ------------------------------------------------------------------ client processes

def client_worker(url: str, token: str, count: int, ready, stop, results) -> None:
    """One client process: `count` SSE clients until `stop`; puts its figures on `results`."""
    asyncio.run(_clients(url, token, count, ready, stop, results))


async def _clients(url: str, token: str, count: int, ready, stop, results) -> None:
    import aiohttp

    connected = 0
    # per client: (stream id, event id, receive time) of each event; the figures are computed afterwards,
    # so that a client reads as little as it can (its parsing shares this machine's cores with the gateway)
    clients = [{"status": None, "ended": False, "reset": False, "got": []} for _ in range(count)]

    async def one(state: dict) -> None:
        nonlocal connected
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with session.get(url + "/api/events", headers={"Authorization": f"Bearer {token}"},
                               timeout=timeout) as response:
            state["status"] = response.status
            connected += 1
            if response.status != 200:
                return
            buffer, got = b"", state["got"]
            async for chunk in response.content.iter_any():
                now = time.time()
                buffer += chunk
                *messages, buffer = buffer.split(b"\n\n")
                for message in messages:
                    if not message.startswith(b"id: "):
                        if b"event: reset" in message:
                            state["reset"] = True
                        continue  # the retry hint, a heartbeat
                    if b"\nevent: reset" in message:
                        state["reset"] = True
                        continue
                    at = message.find(b'"event_id":"') + 12
                    got.append((message[4:message.index(b"\n")], message[at:at + 36], now))
            state["ended"] = True

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        tasks = [asyncio.create_task(one(state)) for state in clients]
        while connected < count and not all(t.done() for t in tasks):
            await asyncio.sleep(0.05)
        ready.put(sum(state["status"] == 200 for state in clients))
        cpu_at_ready = time.process_time()
        while not stop.is_set():
            await asyncio.sleep(0.1)
        for task in tasks:
            task.cancel()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    for state, outcome in zip(clients, outcomes):
        if isinstance(outcome, BaseException) and not isinstance(outcome, asyncio.CancelledError):
            state["ended"], state["error"] = True, repr(outcome)
    results.put((time.process_time() - cpu_at_ready, clients))


# ------------------------------------------------------------------ the gateway process

def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def _rss_mb(pid: int) -> float:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 2**20


def _get(url: str, timeout: float = 2) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except (urllib.error.URLError, OSError):
        return 0, ""


def _metric(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


# ------------------------------------------------------------------ publishing

async def publish_events(rabbitmq_url: str, rate: float, seconds: float) -> dict[bytes, float]:
    """Publish at `rate` for `seconds`; returns each event's id and occurred_at (epoch seconds)."""
    import aio_pika

    from contracts.events import WorkloadQueued, make_event

    connection = await aio_pika.connect(rabbitmq_url)
    sent: dict[bytes, float] = {}
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange("avatar.events")
        n = int(rate * seconds)
        start = time.monotonic()
        pending = []

        async def one(i: int) -> None:
            workload_id = f"WL-SSE-{i:06d}"
            event = make_event("workload.queued", WorkloadQueued(workload_id=workload_id, priority="normal"),
                               producer="scheduler", correlation_id=workload_id)
            await exchange.publish(aio_pika.Message(event.to_json().encode(), content_type="application/json",
                                                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                                                    user_id="guest"), routing_key=event.type)
            sent[str(event.event_id).encode()] = event.occurred_at.timestamp()

        for i in range(n):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            pending.append(asyncio.create_task(one(i)))
        await asyncio.gather(*pending)
    return sent


async def tap(rabbitmq_url: str, received: dict[bytes, float], stop: asyncio.Event) -> None:
    """The broker's floor: occurred_at → a plain consumer of the same events (an exclusive queue)."""
    import aio_pika

    connection = await aio_pika.connect(rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=256)
        exchange = await channel.get_exchange("avatar.events")
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(exchange, routing_key="workload.queued")

        async def on_message(message) -> None:
            received[json.loads(message.body)["event_id"].encode()] = time.time()
            await message.ack()

        await queue.consume(on_message)
        await stop.wait()


# ------------------------------------------------------------------ the run

def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


async def run(args: argparse.Namespace) -> str:
    from services.kit.auth import mint_token
    from services.kit.stack import ensure_local_servers
    from tests.support.infra import free_port, make_infra

    ensure_local_servers()
    infra = make_infra("http://127.0.0.1:1")  # no S3 here
    await infra.fresh_database()
    infra.fresh_vhost()
    port = free_port()
    env = {**os.environ, **infra.environ(), "AVATAR_PORT": str(port), "AVATAR_RATE_LIMITS_ENABLED": "false",
           "AVATAR_LOG_LEVEL": "WARNING", "AVATAR_EVENTS_MAX_CLIENTS": str(max(2000, args.clients + 10))}
    for pair in args.env:
        key, _, value = pair.partition("=")
        env[key] = value
    log = tempfile.NamedTemporaryFile(prefix="bench-sse-gateway-", suffix=".log", delete=False)
    gateway = subprocess.Popen([sys.executable, "-m", "services.gateway"], cwd=ROOT, env=env, stdout=log,
                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    context = multiprocessing.get_context("spawn")
    workers, finished = [], False
    try:
        deadline = time.monotonic() + 120
        while _get(url + "/readyz")[0] != 200:
            if gateway.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the gateway did not start; see {log.name}:\n" + Path(log.name).read_text()[-3000:])
            time.sleep(0.3)
        token = mint_token(infra.settings(), "bench-viewer", "viewer", ttl_seconds=3600)

        ready, results, stop = context.Queue(), context.Queue(), context.Event()
        shares = [args.clients // args.workers + (i < args.clients % args.workers) for i in range(args.workers)]
        for share in shares:
            worker = context.Process(target=client_worker, args=(url, token, share, ready, stop, results), daemon=True)
            worker.start()
            workers.append(worker)
        connected = sum(ready.get(timeout=120) for _ in workers)
        print(f"{connected}/{args.clients} clients connected to {url}/api/events", flush=True)
        await asyncio.sleep(1)

        tapped: dict[bytes, float] = {}
        tap_stop = asyncio.Event()
        tapping = asyncio.create_task(tap(infra.rabbitmq_url, tapped, tap_stop))
        await asyncio.sleep(0.5)
        profiler = None
        if args.profile:  # the gateway's stacks while it serves the run (collapsed, for flamegraph.pl/speedscope)
            profile_path = Path(tempfile.gettempdir()) / f"bench-sse-gateway-{gateway.pid}.txt"
            profiler = subprocess.Popen(
                [str(Path(sys.executable).with_name("py-spy")), "record", "--nonblocking", "-p", str(gateway.pid),
                 "-d", str(int(args.seconds)), "-r", "200", "-f", "raw", "-o", str(profile_path)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        load_before = os.getloadavg()[0]
        cpu_before, wall_before = _cpu_seconds(gateway.pid), time.monotonic()
        sent = await publish_events(infra.rabbitmq_url, args.rate, args.seconds)
        published_in = time.monotonic() - wall_before
        await asyncio.sleep(args.drain)
        cpu = _cpu_seconds(gateway.pid) - cpu_before
        wall = time.monotonic() - wall_before
        rss = _rss_mb(gateway.pid)
        load_after = os.getloadavg()[0]
        metrics = _get(url + "/metrics")[1]
        stop.set()
        tap_stop.set()
        if profiler is not None:
            profiler.wait(timeout=60)
            print(f"gateway profile: {profile_path}", flush=True)
        await tapping
        outcomes = [results.get(timeout=120) for _ in workers]
        finished = True
    finally:
        stop_all = [w for w in workers if w.is_alive()]
        for worker in stop_all:
            worker.join(timeout=10)
        gateway.terminate()
        try:
            gateway.wait(timeout=20)
        except subprocess.TimeoutExpired:
            gateway.kill()
        await infra.cleanup()
        if finished:  # its log is kept only when something went wrong
            Path(log.name).unlink(missing_ok=True)

    expected = set(sent)
    client_cpu = sum(cpu for cpu, _ in outcomes)
    states = [state for _, chunk in outcomes for state in chunk]
    latencies = [at - sent[event_id] for s in states for _, event_id, at in s["got"] if event_id in sent]
    entry_lag = [at - int(stream_id.split(b"-")[0]) / 1e3 for s in states for stream_id, _, at in s["got"]]
    ingest = [int(stream_id.split(b"-")[0]) / 1e3 - sent[event_id] for s in states[:1]
              for stream_id, event_id, _ in s["got"] if event_id in sent]  # per event: one client says it
    floor = [at - sent[event_id] for event_id, at in tapped.items() if event_id in sent]
    added = [at - tapped[event_id] for s in states for _, event_id, at in s["got"] if event_id in tapped]
    dropped = sum(1 for s in states if s["status"] != 200 or s["ended"] or s["reset"])
    missed = sum(len(expected - {event_id for _, event_id, _ in s["got"]}) for s in states if s["status"] == 200)
    duplicates = sum(len(s["got"]) - len({event_id for _, event_id, _ in s["got"]}) for s in states)
    ms = lambda values, p: 1e3 * percentile(values, p)  # noqa: E731
    p95 = ms(latencies, 95)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    rows = [
        ("occurred_at → SSE client (every delivery)", latencies),
        ("  occurred_at → Redis Stream entry (broker, consumer, append; per event)", ingest),
        ("  stream entry → SSE client (reader, fan-out, socket)", entry_lag),
        ("broker floor: occurred_at → plain aio-pika consumer (per event)", floor),
        ("added by the gateway: plain consumer's receive → SSE client's, same event", added),
    ]
    lines = [
        f"## bench_sse: {args.clients} SSE clients, {args.rate:g} events/s for {args.seconds:g} s ({stamp})",
        "",
        f"{stamp}, nproc={os.cpu_count()}, {platform.machine()}, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}; load average (1 min) {load_before:.1f} before the run, "
        f"{load_after:.1f} after (other work on the machine skews every figure)",
        "",
        f"`.venv/bin/python bench/bench_sse.py{' ' + ' '.join(sys.argv[1:]) if sys.argv[1:] else ''}`",
        "",
        f"{len(sent)} `workload.queued` events published in {published_in:.1f} s; {connected} clients in "
        f"{args.workers} client processes; {len(latencies)} deliveries.",
        "",
        "| latency | n | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---|---|---|---|---|",
    ]
    for label, values in rows:
        lines.append(f"| {label} | {len(values)} | {ms(values, 50):.1f} | {ms(values, 95):.1f} | "
                     f"{ms(values, 99):.1f} | {1e3 * max(values, default=float('nan')):.1f} |")
    lines += [
        "",
        "| outcome | value |",
        "|---|---|",
        f"| clients dropped (not 200, ended or reset) | {dropped} of {len(states)} |",
        f"| events missed (client × event) | {missed} of {len(expected) * connected} |",
        f"| duplicates | {duplicates} |",
        f"| gateway CPU during the run | {cpu:.1f} s in {wall:.1f} s ({100 * cpu / wall:.0f}% of a core), "
        f"{1e3 * cpu / max(1, len(latencies)):.3f} ms per delivery |",
        f"| gateway RSS at the end | {rss:.0f} MB |",
        f"| the client processes' CPU (reading {len(latencies)} messages) | {client_cpu:.1f} s |",
        f"| gateway counters: delivered / resets / appended | "
        f"{_metric(metrics, 'avatar_gateway_sse_events_delivered_total'):.0f} / "
        f"{_metric(metrics, 'avatar_gateway_sse_resets_total'):.0f} / "
        f"{_metric(metrics, APPENDED):.0f} |",
        "",
        f"Goal: p95 < {GOAL_P95_MS:.0f} ms and no client dropped: "
        f"{'met' if p95 < GOAL_P95_MS and dropped == 0 and missed == 0 else 'NOT met'} (p95 {p95:.1f} ms; "
        f"the gateway's part of it, over a plain consumer of the same events: p95 {ms(added, 95):.1f} ms; the "
        f"broker floor's p95 {ms(floor, 95):.1f} ms says how busy the machine was).",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--rate", type=float, default=100.0, help="events per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                        help="client processes (default: one per core, at most 4)")
    parser.add_argument("--drain", type=float, default=3.0, help="seconds to wait after the last publish")
    parser.add_argument("--profile", action="store_true", help="py-spy the gateway during the run")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting for the gateway process (repeatable)")
    args = parser.parse_args()
    if any(not re.fullmatch(r"AVATAR_[A-Z0-9_]+=.*", pair) for pair in args.env):
        parser.error("--env takes AVATAR_NAME=value")
    print(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
