"""Crash safety (issue 7): a batch of small auto-approved workloads in flight while each service in turn
is killed with SIGKILL and restarted, and once while RabbitMQ restarts (stop_app/start_app).

Afterwards, every workload has exactly one terminal state and trainer, scheduler and models agree on
it; no GPU stays allocated; no model is stored twice; every event a service wrote to its outbox was
published and reached the inbox of every service subscribed to its routing key (PostgreSQL, read
directly); and no outbox row is left unsent.
"""
from __future__ import annotations

import asyncio
import collections
import signal
import subprocess
import time

import asyncpg
import pytest

from contracts.topology import SUBSCRIPTIONS
from services.kit.demo import Demo

pytestmark = pytest.mark.slow

WORKLOADS = 30
SLEEPS = (0.5, 1.0, 1.5, 2.0)  # the probe component's sleep_s, cycled over the workloads
RESOURCES = {"gpu_type": "V100", "gpu_count": 1, "memory": "8GB", "max_runtime": "10m"}
# Who crashes, in order ("rabbitmq": the broker application restarts), and when: each step follows a batch
# of submissions and then waits (briefly, bounded) until some workload is at the stage the victim works on,
# per the trainer, so the scheduler dies with runs live, models with completed runs whose model is not
# stored yet, and so on. An empty aim crashes at once: approval with the batch's requests still to decide,
# builder and library right after an App's spec is created (its app.spec_created in flight).
CHAOS = (
    ("approval", set()),
    ("scheduler", {"running"}),
    ("rabbitmq", {"queued", "running"}),
    ("models", {"completed", "completed (model not stored yet)"}),
    ("trainer", {"waiting", "approved", "queued", "running", "completed"}),
    ("builder", set()),
    ("library", set()),
)
AIM_SECONDS = 8                # how long a step waits for its moment before crashing anyway
SETTLE_SECONDS = 240           # every workload terminal within this (bounded wait)
RESTART_SECONDS = 90           # a restarted service (or the broker) answers /readyz within this
TERMINAL_TYPES = ("workload.completed", "workload.failed", "workload.cancelled", "workload.rejected")
FINAL = {"model stored", "failed", "cancelled", "rejected"}


def wait_ready(stack, names, timeout: float = RESTART_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    for name in names:
        while not stack.ready(name):
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} not ready {timeout:.0f}s after the crash:\n{stack.tail(name, 40)}")
            time.sleep(0.2)


def crash(stack, name: str) -> None:
    """SIGKILL the service's process group (its local runs die with it) and start it again."""
    stack.stop(name, signal.SIGKILL)
    stack.start_service(name)
    wait_ready(stack, [name])


def restart_broker(stack) -> None:
    """Restart the RabbitMQ application (the node and its users/vhosts stay); the services reconnect."""
    subprocess.run(["rabbitmqctl", "-q", "stop_app"], check=True, capture_output=True, timeout=120)
    try:
        time.sleep(2)
    finally:  # never leave the shared broker stopped
        subprocess.run(["rabbitmqctl", "-q", "start_app"], check=True, capture_output=True, timeout=180)
    wait_ready(stack, list(SUBSCRIPTIONS))


def batches(items: list, parts: int) -> list[list]:
    size, extra = divmod(len(items), parts)
    out, start = [], 0
    for index in range(parts):
        end = start + size + (1 if index < extra else 0)
        out.append(items[start:end])
        start = end
    return out


def allocated_gpus(demo: Demo) -> int:
    resources = demo.call("GET", "scheduler", "/resources", headers=demo.admin)
    return sum(item["allocated"] for item in resources["gpus"])


async def event_ledger(url: str) -> tuple[list[asyncpg.Record], dict[str, set]]:
    """Every outbox row of every service schema, and every service's inbox."""
    conn = await asyncpg.connect(url)
    try:
        outbox, inbox = [], {}
        for service in SUBSCRIPTIONS:
            outbox += await conn.fetch(
                f'SELECT $1::text AS producer, event_id, routing_key, sent_at, payload->>\'correlation_id\' AS about'
                f' FROM "{service}".outbox ORDER BY id', service)
            inbox[service] = {row["event_id"] for row in await conn.fetch(f'SELECT event_id FROM "{service}".inbox')}
        return outbox, inbox
    finally:
        await conn.close()


def undelivered(outbox, inbox) -> list[str]:
    problems = []
    for row in outbox:
        if row["sent_at"] is None:
            problems.append(f"unsent: {row['producer']} {row['routing_key']} {row['event_id']} ({row['about']})")
        for service, keys in SUBSCRIPTIONS.items():
            if row["routing_key"] in keys and row["event_id"] not in inbox[service]:
                problems.append(f"lost: {row['producer']} {row['routing_key']} {row['event_id']} ({row['about']})"
                                f" never reached {service}'s inbox")
    return problems


async def test_workloads_survive_every_service_and_the_broker_crashing(stack, base, settings):
    demo = Demo(base, settings, timeout=60, episodes=5)
    started = time.monotonic()

    # One small App per workload (so each App has exactly one model): a probe that sleeps briefly on 1 V100.
    components = demo.library_components()
    apps = [demo.build_app(f"Chaos-{index:02d}", [("probe-task", [("probe", {
                "params": {"sleep_s": SLEEPS[index % len(SLEEPS)]},
                "resources": {"gpu_type": "V100", "gpu_count": 1, "memory": "8GB"}})])], components)
            for index in range(WORKLOADS)]
    for app_id in apps:
        demo.ready_in_trainer(app_id)

    # Submit in batches; after each batch one service (or the broker) crashes and comes back.
    workloads: dict[str, str] = {}  # workload -> app
    steps = []
    for (victim, aim), batch in zip(CHAOS, batches(apps, len(CHAOS))):
        for app_id in batch:
            workload = demo.submit(app_id, RESOURCES, priority="normal", episodes=5, name=f"chaos {app_id}")
            workloads[workload] = app_id
        if victim in ("builder", "library"):
            demo.build_app(f"Chaos-{victim}", [("probe-task", ["probe"])], components)
        deadline = time.monotonic() + AIM_SECONDS
        while aim:
            in_flight = collections.Counter(demo.request(workload)["status"] for workload in workloads)
            if aim & set(in_flight) or time.monotonic() > deadline:
                break
        began = time.monotonic()
        restart_broker(stack) if victim == "rabbitmq" else crash(stack, victim)
        steps.append(f"{victim} crashed {f'during {dict(in_flight)}' if aim else 'at once'},"
                     f" back in {time.monotonic() - began:.1f}s")
        await asyncio.sleep(2)
    assert len(workloads) == WORKLOADS

    await check_aftermath(stack, demo, workloads, steps, started)


async def check_aftermath(stack, demo: Demo, workloads: dict[str, str], steps: list[str], started: float) -> None:
    """Wait (bounded) for every workload to end, then check every crash-safety property."""
    database = stack.environment()["AVATAR_POSTGRES_URL"]
    # Bounded wait: every workload reaches a final status in the trainer (the saga's log).
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        statuses = {workload: demo.request(workload)["status"] for workload in workloads}
        if all(status in FINAL for status in statuses.values()):
            break
        if time.monotonic() > deadline:
            stuck = {w: s for w, s in statuses.items() if s not in FINAL}
            tails = "\n".join(f"--- {name}\n{stack.tail(name, 15)}" for name in SUBSCRIPTIONS)
            pytest.fail(f"{len(stuck)} workloads not final after {SETTLE_SECONDS}s ({steps}): {stuck}\n{tails}")
        await asyncio.sleep(1)
    settled = time.monotonic()

    # The three owners agree: trainer "model stored", scheduler "completed", exactly one model per App/workload.
    problems = []
    for workload, app_id in workloads.items():
        detail = demo.request(workload)
        ends = [item["type"] for item in detail["timeline"] if item["type"] in TERMINAL_TYPES
                and not (item.get("details") or {}).get("loop_test")]
        stored = [item for item in detail["timeline"] if item["type"] == "model.stored"]
        if detail["status"] != "model stored" or ends != ["workload.completed"] or len(stored) != 1:
            problems.append(f"trainer: {workload} is {detail['status']!r}, terminal events {ends}, "
                            f"{len(stored)} model.stored")
        scheduled = demo.call("GET", "scheduler", f"/workloads/{workload}", headers=demo.admin)
        if scheduled["status"] != "completed":
            problems.append(f"scheduler: {workload} is {scheduled['status']!r} ({scheduled.get('failure')})")
        models = demo.call("GET", "models", "/models", params={"app_id": app_id})
        if models["total"] != 1 or [m["workload_id"] for m in models["items"]] != [workload] \
                or models["items"][0]["status"] != "stored":
            problems.append(f"models: {app_id} has {[(m['workload_id'], m['status']) for m in models['items']]}")
        elif (detail.get("model") or {}).get("model_id") != models["items"][0]["model_id"]:
            problems.append(f"trainer and models disagree on {workload}'s model: {detail.get('model')} vs "
                            f"{models['items'][0]['model_id']}")
    assert not problems, "\n".join(problems)

    # Compensation ran exactly once: nothing is left allocated.
    assert allocated_gpus(demo) == 0, demo.call("GET", "scheduler", "/resources", headers=demo.admin)

    conn = await asyncpg.connect(database)
    try:
        # No model stored twice.
        per_workload = {row["workload_id"]: row["n"] for row in await conn.fetch(
            "SELECT workload_id, count(*) AS n FROM models.models GROUP BY workload_id")}
        assert {w: per_workload.get(w, 0) for w in workloads} == {w: 1 for w in workloads}
        # The scheduler finished each workload once (one terminal event in its outbox), models stored it once.
        emitted = collections.Counter((row["routing_key"], row["about"]) for row in await conn.fetch(
            "SELECT routing_key, payload->>'correlation_id' AS about FROM scheduler.outbox"
            " UNION ALL SELECT routing_key, payload->>'correlation_id' FROM models.outbox"))
        for workload in workloads:
            ends = {key: emitted[(key, workload)] for key in (*TERMINAL_TYPES, "model.stored")
                    if emitted[(key, workload)]}
            assert ends == {"workload.completed": 1, "model.stored": 1}, f"{workload}: {ends}"
    finally:
        await conn.close()

    # No event lost, nothing left unsent: every outbox row, in every schema, reached every subscriber's inbox.
    # (The last events of the saga may still be between relay and consumer a moment after the trainer saw
    # the model stored: give them a bounded moment, then compare exactly.)
    deadline = time.monotonic() + 30
    while True:
        outbox, inbox = await event_ledger(database)
        problems = undelivered(outbox, inbox)
        if not problems or time.monotonic() > deadline:
            break
        await asyncio.sleep(1)
    assert not problems, f"{len(problems)} of {len(outbox)} events not delivered:\n" + "\n".join(problems[:50])
    assert len(outbox) > WORKLOADS * 6  # the ledger really covers the saga (requested … stored per workload)

    print(f"\ncrash safety: {WORKLOADS} workloads, {len(outbox)} events; all final {settled - started:.0f}s after "
          f"start, checks done at {time.monotonic() - started:.0f}s", *steps, sep="\n  ")
