"""What the outage tests share (tests/chaos, tests/integration/scheduler_service): a sampler of GPUs held
twice at any moment, how many times each run was started, a bounded wait for the platform to heal, and
the figures a scenario reports (printed, and appended as a JSON line to $AVATAR_CHAOS_REPORT when set)."""
from __future__ import annotations

import asyncio
import collections
import json
import os
import threading
import time
from typing import Any, Awaitable, Callable, Iterable

import asyncpg
import redis.asyncio as aioredis
import redis.exceptions

from services.scheduler.core.allocator import RedisAllocator

LIVE_RUNS = ("SELECT run_id, allocation_id, node, gpu_indices FROM scheduler.runs"
             " WHERE status IN ('starting', 'running') AND node IS NOT NULL")


def held_twice(holders: Iterable[tuple[str, str, Iterable[int]]]) -> list[str]:
    """The GPUs (node, index) that more than one holder (a run, an allocation) has at once."""
    held = collections.defaultdict(list)
    for holder, node, indices in holders:
        for index in indices or []:
            held[(node, index)].append(holder)
    return [f"{gpu}: {sorted(owners)}" for gpu, owners in held.items() if len(owners) > 1]


class Sampler:
    """Samples, every `interval` seconds, the GPUs held by two live runs at once in PostgreSQL and, given the
    scheduler's Redis (`redis_url`, its `sched_prefix`), the GPUs two allocations hold there: double-booked.
    With Redis it also tells, per sample, an allocation that no live run owns (leaked: nothing would give it
    back) and a live run whose allocation Redis lacks (unaccounted: its GPUs would be handed out again), each
    once it has lasted `grace` seconds (a run is allocated before PostgreSQL records it and recorded as ended
    before its release, so either is normal for a moment). It samples in a thread of its own, so a test's
    blocking calls never pause it; a server away is skipped (its sample is missing, not wrong)."""

    def __init__(self, url: str, *, redis_url: str | None = None, sched_prefix: str | None = None,
                 interval: float = 0.2, grace: float = 15.0) -> None:
        self.url = url
        self.redis_url, self.sched_prefix = redis_url, sched_prefix
        self.interval, self.grace = interval, grace
        self.double_booked: list[str] = []  # "in postgresql (node, index): [run, run]" per sample it was seen in
        self.leaked: list[str] = []  # per sample: an allocation no live run owned for longer than the grace
        self.unaccounted: list[str] = []  # per sample: a live run without its allocation for longer than the grace
        self.samples = 0
        self._since: dict[str, float] = {}  # "leaked <id>" / "unaccounted <run>" -> first seen
        self._failed: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    async def _loop(self) -> None:
        conn = None
        client = aioredis.Redis.from_url(self.redis_url, socket_timeout=1) if self.redis_url else None
        allocator = RedisAllocator(client, self.sched_prefix or "") if client is not None else None
        try:
            while not self._stop.is_set():
                rows = None
                try:
                    conn = conn if conn is not None and not conn.is_closed() else await asyncpg.connect(
                        self.url, timeout=2)
                    rows = await conn.fetch(LIVE_RUNS)
                    self.double_booked += [f"in postgresql {gpu}" for gpu in held_twice(
                        (row["run_id"], row["node"], row["gpu_indices"]) for row in rows)]
                    self.samples += 1
                except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError,
                        asyncpg.InternalClientError):  # the last: its connection terminated mid-call
                    if conn is not None:
                        conn.terminate()
                    conn = None
                if allocator is not None:
                    try:  # after PostgreSQL: a run read live there still held its allocation when Redis is read
                        held = await allocator.allocations()
                    except (OSError, redis.exceptions.RedisError):
                        held = None
                    if held is not None:
                        self.double_booked += [f"in redis {gpu}" for gpu in held_twice(
                            (a.allocation_id, a.node, a.gpu_indices) for a in held)]
                    if held is not None and rows is not None:
                        self._account(rows, held)
                await asyncio.sleep(self.interval)
        finally:
            if conn is not None:
                conn.terminate()
            if client is not None:
                await client.aclose()

    def _account(self, rows, held) -> None:
        owned = {row["allocation_id"] for row in rows}
        allocated = {a.allocation_id for a in held}
        now = time.monotonic()
        suspects = {*(f"leaked {a}" for a in allocated - owned),
                    *(f"unaccounted {row['run_id']} ({row['allocation_id']})" for row in rows
                      if row["allocation_id"] not in allocated)}
        self._since = {key: self._since.get(key, now) for key in suspects}
        for key, since in self._since.items():
            if now - since > self.grace:
                (self.leaked if key.startswith("leaked") else self.unaccounted).append(key)

    def _run(self) -> None:
        try:
            asyncio.run(self._loop())
        except BaseException as exc:  # told at __exit__: a sampler that stopped would hide what it looks for
            self._failed = exc

    def __enter__(self) -> "Sampler":
        self._thread = threading.Thread(target=self._run, name="gpu-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_) -> None:
        assert self._thread is not None
        self._stop.set()
        self._thread.join(timeout=10)
        if self._failed is not None:
            raise AssertionError(f"the GPU sampler stopped after {self.samples} samples") from self._failed


async def attempts(url: str, job_ids: Iterable[str] | None = None) -> dict[str, int]:
    """How many times each job's run was started (its highest attempt): more than 1 is a rerun."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT job_id, max(attempt) AS attempt FROM scheduler.runs"
                                " WHERE $1::text[] IS NULL OR job_id = ANY($1::text[]) GROUP BY job_id",
                                None if job_ids is None else list(job_ids))
        return {row["job_id"]: row["attempt"] for row in rows}
    finally:
        await conn.close()


async def settle(done: Callable[[], Awaitable[bool]], timeout: float = 60, interval: float = 0.25) -> float | None:
    """Seconds until `done()` says yes (None: not within `timeout`); while a dependency is still away it
    may raise, which counts as not yet."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        try:
            if await done():
                return round(time.monotonic() - began, 1)
        except Exception:
            pass
        await asyncio.sleep(interval)
    return None


def figures(final: dict[str, str | None], runs: dict[str, int], sampler: Sampler, *, done: str, leaked: int,
            recovered: float | None, **more: Any) -> dict[str, Any]:
    """A scenario's figures: workloads not `done` (stuck), reruns, double-booked samples, leaked allocations,
    seconds to recover (None: not within the bound), and whatever else it measured."""
    return {"stuck": sum(status != done for status in final.values()),
            "reruns": sum(runs.get(workload_id, 0) > 1 for workload_id in final),
            "double-booked samples": len(sampler.double_booked), "leaked allocations": leaked,
            "leaked samples": len(sampler.leaked), "unaccounted samples": len(sampler.unaccounted),
            "seconds to recover": recovered, **more}


def report(scenario: str, found: dict[str, Any]) -> None:
    print(f"\n{scenario}: {found}")
    path = os.environ.get("AVATAR_CHAOS_REPORT")
    if path:
        with open(path, "a") as out:
            out.write(json.dumps({"scenario": scenario, **found}, default=str) + "\n")
