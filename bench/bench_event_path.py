"""Benchmark: the CPU one delivered event costs a service, against a plain aio-pika consumer in the same run.

    .venv/bin/python bench/bench_event_path.py              # 3,000 events per variant; appends to RESULTS.md
    .venv/bin/python bench/bench_event_path.py --n 1000 --no-record

The saga is bound by CPU spread over its per-event path (bench_saga: 9 deliveries and 6 publishes per
workload). This isolates that path in one process, on the local RabbitMQ and PostgreSQL (a fresh database
and vhost), with N `workload.approved` events (the saga's largest, ~1.6 kB) queued before consuming starts:

- baseline: a plain aio-pika consumer, prefetch 32, manual ack (what any consumer pays);
- the kit's EventBus with a handler that does nothing: FastStream's consume path, parsing and validating the
  event, the CONSUMER span (not recorded: no collector), and one PostgreSQL transaction claiming the event in
  the inbox (remembering its trace context), then the ack;
- the same in batches (services.kit.messaging._Batches, the services' default): one transaction and one
  claim statement for the events delivered together;
- the same with a handler that runs one statement and records one event in a unit of work joined to the
  consumer's transaction (its outbox row committed with the inbox claim), the relay publishing it
  (persistent, confirmed) and marking it sent: a typical saga step; and that in batches.

Figures are this process's CPU (time.process_time) per event, so PostgreSQL's and RabbitMQ's own CPU
are not in them; the ratio to the baseline is what to compare across machines.
"""
from __future__ import annotations

import argparse
import asyncio
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aio_pika  # noqa: E402

from reports import add_record_option, publish  # noqa: E402  (a sibling module: bench/ is on the path)
from contracts.events import WorkloadApproved, WorkloadQueued, make_event  # noqa: E402
from services.kit.db import KIT_MIGRATIONS, apply_migrations, create_pool  # noqa: E402
from services.kit.messaging import EventBus, new_broker, service_queue  # noqa: E402
from services.kit.outbox import Outbox, OutboxRelay  # noqa: E402
from services.kit.settings import Settings  # noqa: E402
from services.kit.telemetry import setup_tracing  # noqa: E402
from services.kit.unit_of_work import UnitOfWork  # noqa: E402
from services.kit.stack import ensure_local_servers  # noqa: E402
from services.kit.wakeups import Wakeups  # noqa: E402
from tests.integration.models.helpers import workload  # noqa: E402
from tests.support.infra import make_infra  # noqa: E402

SERVICE = "scheduler"  # subscribes to workload.approved
PREFETCH = 32


async def queue_events(url: str, n: int) -> int:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange("avatar.events")
        template = workload("APP-BENCH1", "WL-BENCH0").to_wire()
        size = 0
        for i in range(n):
            workload_id = f"WL-{i:08d}"
            data = WorkloadApproved.model_validate({"workload_id": workload_id, "auto": True,
                                                    "workload": {**template, "workloadId": workload_id}})
            body = make_event("workload.approved", data, producer="approval", correlation_id=workload_id).to_json()
            size = len(body)
            await exchange.publish(aio_pika.Message(
                body.encode(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT, content_type="application/json",
                headers={"traceparent": f"00-{i + 1:032x}-{i + 1:016x}-00"}), routing_key="workload.approved")
        return size


async def baseline(url: str, n: int) -> float:
    """CPU ms per message of a plain aio-pika consumer (manual ack) draining the queue."""
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=PREFETCH)
        queue = await channel.get_queue(service_queue(SERVICE).name)
        done, seen = asyncio.Event(), 0

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal seen
            await message.ack()
            seen += 1
            if seen >= n:
                done.set()

        started = time.process_time()
        await queue.consume(on_message)
        await asyncio.wait_for(done.wait(), 600)
        return 1e3 * (time.process_time() - started) / n


async def event_bus(infra, n: int, step: bool, batch_size: int = 1) -> float:
    """CPU ms per event of the kit's EventBus draining the queue (and, with step, relaying one event each)."""
    pool = await create_pool(infra.postgres_url, SERVICE)
    outbox = Outbox(SERVICE, Wakeups(pool, SERVICE))
    settings = Settings()
    bus = EventBus(new_broker(infra.rabbitmq_url, SERVICE), SERVICE, pool, prefetch=PREFETCH,
                   batch_size=batch_size, batch_workers=settings.consumer_batch_workers)
    relay = OutboxRelay(pool, outbox, bus.publish) if step else None
    done, handled = asyncio.Event(), 0

    async def handler(event, ctx) -> None:
        nonlocal handled
        if step:  # as a service's event handler does: its unit joins the consumer's transaction
            async with UnitOfWork(pool, outbox, conn=ctx.conn, cause=ctx.event) as uow:
                await uow.conn.execute("SELECT 1")
                uow.record("workload.queued", WorkloadQueued(workload_id=event.data.workload_id,
                                                             priority=event.data.workload.priority))
                await uow.commit()
        handled += 1
        if handled >= n:
            done.set()

    bus.on("workload.approved", handler)
    try:
        started = time.process_time()
        await bus.start()
        if relay is not None:
            await relay.start()
        await asyncio.wait_for(done.wait(), 600)
        if relay is not None:  # until every emitted event is out
            while await pool.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL"):
                await asyncio.sleep(0.02)
        return 1e3 * (time.process_time() - started) / n
    finally:
        if relay is not None:
            await relay.stop()
        await bus.stop()
        await pool.close()


async def run(args: argparse.Namespace) -> str:
    ensure_local_servers()
    setup_tracing(SERVICE)
    infra = make_infra("http://127.0.0.1:1")  # no S3 here
    await infra.fresh_database()
    infra.fresh_vhost()
    try:
        pool = await create_pool(infra.postgres_url, SERVICE)
        await apply_migrations(pool, SERVICE, {"kit": KIT_MIGRATIONS})
        await pool.close()
        # the queues and bindings, as a service declares them at start (no pool: nothing is consumed)
        declare = EventBus(new_broker(infra.rabbitmq_url, SERVICE), SERVICE, None)  # type: ignore[arg-type]
        await declare.broker.connect()
        await declare.declare_topology()
        await declare.broker.stop()

        results: dict[str, list[float]] = {"baseline": [], "bus": [], "bus batched": [], "step": [],
                                           "step batched": []}
        batch = Settings().consumer_batch_size
        size = 0
        for _ in range(args.rounds):
            for variant in results:
                size = await queue_events(infra.rabbitmq_url, args.n)
                if variant == "baseline":
                    results[variant].append(await baseline(infra.rabbitmq_url, args.n))
                else:
                    results[variant].append(await event_bus(infra, args.n, step=variant.startswith("step"),
                                                            batch_size=batch if variant.endswith("batched") else 1))
                print(f"{variant}: {results[variant][-1]:.3f} ms CPU per event", flush=True)
    finally:
        await infra.cleanup()

    best = {variant: min(values) for variant, values in results.items()}  # least disturbed round
    base = best["baseline"]
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"## bench_event_path: CPU per delivered event, {args.n} events × {args.rounds} rounds ({stamp})",
        "",
        f"{stamp}, nproc={_nproc()}, {platform.machine()}, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}",
        "",
        f"`.venv/bin/python bench/bench_event_path.py{' ' + ' '.join(sys.argv[1:]) if sys.argv[1:] else ''}`",
        "",
        f"`workload.approved` events of {size} bytes, prefetch {PREFETCH}; this process's CPU only (the best of "
        f"{args.rounds} rounds); no collector, so spans are not recorded.",
        "",
        "| consumer | CPU ms per event | × baseline |",
        "|---|---|---|",
        f"| plain aio-pika consumer, manual ack (baseline) | {base:.3f} | 1.0 |",
        f"| EventBus, handler does nothing (parse, span, inbox claim transaction, ack) | {best['bus']:.3f} | "
        f"{best['bus'] / base:.1f} |",
        f"| the same, in batches of up to {batch} (one transaction and one claim per batch) | "
        f"{best['bus batched']:.3f} | {best['bus batched'] / base:.1f} |",
        f"| EventBus, handler runs one statement and emits `workload.queued` (relayed, confirmed, marked sent) | "
        f"{best['step']:.3f} | {best['step'] / base:.1f} |",
        f"| the same, in batches of up to {batch} | {best['step batched']:.3f} | {best['step batched'] / base:.1f} |",
    ]
    return "\n".join(lines) + "\n"


def _nproc() -> int:
    import os

    return os.cpu_count() or 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=2)
    add_record_option(parser)
    args = parser.parse_args()
    publish(asyncio.run(run(args)), args)


if __name__ == "__main__":
    main()
