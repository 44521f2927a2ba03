"""Benchmark: what waking a listener costs the commits that do it, NOTIFY inside the commit against the
kit's wake-up after the commit (services/kit/wakeups.py), against commits that wake nobody, in one run.

    .venv/bin/python bench/bench_wakeups.py                  # 16 writers x 300 commits x 3 rounds; appends to RESULTS.md
    .venv/bin/python bench/bench_wakeups.py --writers 4 --no-record

Each writer commits one row at a time (one statement outside a transaction, a pooled connection each,
as the trainer's submit does) into a fresh database on the local PostgreSQL, while one connection LISTENs
on the channel (as a relay does). Three variants, taking turns within each round:

- in-commit NOTIFY: the row and `pg_notify` in one statement, as the services did before. PostgreSQL takes
  one database-wide lock when a notifying transaction commits and keeps it until the commit record is on
  disk, so these commits queue behind each other's disk writes;
- after-commit wake-up: the row, then `Wakeups.after_commit`: a NOTIFY of its own once the row has
  committed, one statement for every wake-up asked for meanwhile, in a transaction that writes nothing
  else (PostgreSQL commits it without waiting for the disk);
- no wake-up: the row only (the floor).

Figures: commits per second and each commit's latency (acquire → statement → release), p50 / p99, the best
round of each variant; and how many notifications the listener heard.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402

from reports import add_record_option, publish  # noqa: E402  (a sibling module: bench/ is on the path)
from services.kit.db import create_pool  # noqa: E402
from services.kit.stack import ensure_local_servers  # noqa: E402
from services.kit.wakeups import Wakeups  # noqa: E402
from tests.support.infra import make_infra  # noqa: E402

CHANNEL = "bench_wakeups"
VARIANTS = ("in-commit NOTIFY", "after-commit wake-up", "no wake-up")
ROW = "x" * 200  # about an outbox row's payload, kept small: the lock, not the row, is measured


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q / 100))]


async def commits(pool: asyncpg.Pool, wakeups: Wakeups, variant: str, writers: int, per_writer: int
                  ) -> tuple[float, float, float]:
    """(commits per second, p50 ms, p99 ms) of `writers` writers committing `per_writer` rows each."""
    latencies: list[float] = []

    async def writer() -> None:
        for _ in range(per_writer):
            started = time.perf_counter()
            async with pool.acquire() as conn:
                if variant == "in-commit NOTIFY":
                    await conn.fetchval("WITH added AS (INSERT INTO rows (payload) VALUES ($1) RETURNING id)"
                                        " SELECT count(pg_notify($2, '')) FROM added", ROW, CHANNEL)
                else:
                    await conn.fetchval("INSERT INTO rows (payload) VALUES ($1) RETURNING id", ROW)
                    if variant == "after-commit wake-up":
                        wakeups.after_commit(conn, CHANNEL)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(writer() for _ in range(writers)))
    elapsed = time.perf_counter() - started
    return len(latencies) / elapsed, 1e3 * pct(latencies, 50), 1e3 * pct(latencies, 99)


async def run(args: argparse.Namespace) -> str:
    ensure_local_servers()
    infra = make_infra("http://127.0.0.1:1")  # no S3 here
    url = await infra.fresh_database()
    results: dict[str, list[tuple[float, float, float, int]]] = {variant: [] for variant in VARIANTS}
    try:
        pool = await create_pool(url, "public", max_size=args.writers + 2)
        listener = await asyncpg.connect(url)
        heard = 0

        def hear(*_: object) -> None:
            nonlocal heard
            heard += 1

        wakeups = Wakeups(pool, "bench")
        try:
            await pool.execute("CREATE TABLE rows (id bigserial PRIMARY KEY, payload text)")
            await listener.add_listener(CHANNEL, hear)
            for round_ in range(args.rounds):
                order = VARIANTS if round_ % 2 == 0 else tuple(reversed(VARIANTS))  # neither always first
                for variant in order:
                    heard = 0
                    rate, p50, p99 = await commits(pool, wakeups, variant, args.writers, args.commits)
                    await wakeups.flush()  # the last wake-ups are heard in their round
                    await asyncio.sleep(0.2)
                    results[variant].append((rate, p50, p99, heard))
                    print(f"round {round_ + 1} {variant}: {rate:,.0f} commits/s, p50 {p50:.2f} ms, p99 {p99:.2f} ms,"
                          f" {heard} notifications heard", flush=True)
                    await pool.execute("TRUNCATE rows")
        finally:
            await wakeups.close()
            await listener.close()
            await pool.close()
    finally:
        await infra.cleanup()

    best = {variant: max(rounds) for variant, rounds in results.items()}  # the least disturbed round
    floor = best["no wake-up"][0]
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    total = args.writers * args.commits
    lines = [
        f"## bench_wakeups: waking a listener inside the commit or after it ({stamp})",
        "",
        f"{stamp}, nproc={os.cpu_count()}, {platform.machine()}, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}, load average {os.getloadavg()[0]:.2f}",
        "",
        f"`.venv/bin/python bench/bench_wakeups.py{' ' + ' '.join(sys.argv[1:]) if sys.argv[1:] else ''}`",
        "",
        f"{args.writers} writers × {args.commits} commits of one row each, one LISTENing connection; the best of "
        f"{args.rounds} rounds per variant (the variants take turns).",
        "",
        "| variant | commits/s | × no wake-up | p50 ms | p99 ms | notifications heard |",
        "|---|---|---|---|---|---|",
    ]
    for variant in VARIANTS:
        rate, p50, p99, heard = best[variant]
        lines.append(f"| {variant} | {rate:,.0f} | {rate / floor:.2f} | {p50:.2f} | {p99:.2f} | {heard:,} of {total:,} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--writers", type=int, default=16)
    parser.add_argument("--commits", type=int, default=300, help="per writer and round")
    parser.add_argument("--rounds", type=int, default=3)
    add_record_option(parser)
    args = parser.parse_args()
    publish(asyncio.run(run(args)), args)


if __name__ == "__main__":
    main()
