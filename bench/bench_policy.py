"""Trace-driven comparison: strict priority (no backfill) vs plain EASY backfill vs ours.

The simulation (services/scheduler/core/simulation.py) calls the very policy.decide() the
scheduler runs, at every arrival and completion. Synthetic, seeded trace on 12 nodes x 8
GPUs (4x A100-80GB, 4x A100-40GB, 4x V100-32GB):
  - GPUs per job 1/2/4/8 (weights 40/30/20/10); type A100 50 %, V100 25 %, any(>=30 GB) 25 %
  - declared max runtime 30 min .. 8 h; actual runtime = max x U(a, 1.0), a = --accuracy
    (default 0.3: users overestimate, as in HPC traces; 1.0 = runtimes exactly as declared)
  - priority high 15 %, normal 55 %, low 30 %; Poisson arrivals at 90 % offered GPU load
Metrics: GPU utilisation (GPU-seconds used / GPU-seconds available from first submission to
last completion), mean and p95 wait per class, longest high-priority wait.

    .venv/bin/python bench/bench_policy.py [--seeds 12] [--seed-offset 0] [--jobs 1500] [--load 0.9]
                                           [--accuracy 0.3] [--no-write]

--seed-offset runs seeds OFFSET .. OFFSET+seeds-1 (the robustness check in RESULTS.md uses
blocks 0-11, 12-23 and 24-35); only the default block 0-11 updates bench/RESULTS.md.

--load is the offered load: GPU-seconds actually run / GPU-seconds available.
"""
from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.scheduler.core.demand import ComponentDemand  # noqa: E402
from services.scheduler.core.inventory import GpuPool, Node  # noqa: E402
from services.scheduler.core.simulation import SimJob, SimResult, simulate  # noqa: E402

GB = 10**9
CLASSES = ("high", "normal", "low")
VARIANTS = {
    "strict": dict(backfill=False),
    "easy": dict(backfill=True, protected_classes=(), drain_guard=False, reserve_horizon_s=None),
    "ours": dict(backfill=True),  # EASY + rules 5 and 6 (policy defaults)
}


def cluster() -> list[Node]:
    nodes = []
    for i in range(4):
        nodes.append(Node(f"a100-80-{i}", gpus={"A100": GpuPool(8, 80 * GB)}, memory_bytes=1024 * GB, cpu=64))
        nodes.append(Node(f"a100-40-{i}", gpus={"A100": GpuPool(8, 40 * GB)}, memory_bytes=1024 * GB, cpu=64))
        nodes.append(Node(f"v100-{i}", gpus={"V100": GpuPool(8, 32 * GB)}, memory_bytes=512 * GB, cpu=32))
    return nodes


def trace(seed: int, jobs: int, load: float, total_gpus: int, accuracy: float = 0.3) -> list[SimJob]:
    rng = random.Random(seed)
    sizes, weights = [1, 2, 4, 8], [40, 30, 20, 10]
    runtimes = [1800, 3600, 7200, 14400, 28800]
    mean_gpus = sum(s * w for s, w in zip(sizes, weights)) / sum(weights)
    mean_runtime = statistics.mean(runtimes) * (1 + accuracy) / 2
    gap = mean_gpus * mean_runtime / (load * total_gpus)
    out, t = [], 0.0
    for i in range(jobs):
        t += rng.expovariate(1 / gap)
        gpus = rng.choices(sizes, weights)[0]
        gpu_type = rng.choice(["A100", "A100", "V100", "any"])
        max_runtime = float(rng.choice(runtimes))
        demand = ComponentDemand(gpu_type, gpus, 30 * GB if gpu_type == "any" else 0, gpus * 16 * GB, gpus * 4)
        out.append(SimJob(f"j{i:05d}", t, rng.choices(CLASSES, [15, 55, 30])[0], demand, max_runtime,
                          max_runtime * rng.uniform(accuracy, 1.0)))
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def waits(result: SimResult, jobs: list[SimJob], cls: str) -> list[float]:
    return [result.wait(j) for j in jobs if j.priority == cls and j.job_id in result.started]


def machine() -> str:
    return f"nproc={os.cpu_count()}, {platform.machine()}, Python {platform.python_version()}"


def write_results(section: str, body: str) -> None:
    """Replace this benchmark's section of bench/RESULTS.md, keeping the others."""
    path = Path(__file__).with_name("RESULTS.md")
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    heading = f"## {section}"
    parts = text.split("\n## ")
    kept = [parts[0]] + [p for p in parts[1:] if p.split("\n")[0].strip() != section]
    path.write_text("\n## ".join(kept).rstrip() + f"\n\n{heading}\n\n{body.strip()}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=12)
    parser.add_argument("--seed-offset", type=int, default=0, help="first seed (robustness: 12, 24)")
    parser.add_argument("--jobs", type=int, default=1500)
    parser.add_argument("--load", type=float, default=0.9)
    parser.add_argument("--accuracy", type=float, default=0.3, help="actual runtime >= accuracy x max_runtime")
    parser.add_argument("--no-write", action="store_true", help="do not update bench/RESULTS.md")
    args = parser.parse_args()

    nodes = cluster()
    total = sum(n.gpu_total for n in nodes)
    pooled: dict[str, dict[str, list[float]]] = {v: {c: [] for c in CLASSES} for v in VARIANTS}
    util: dict[str, list[float]] = {v: [] for v in VARIANTS}
    backfilled: dict[str, int] = {v: 0 for v in VARIANTS}
    per_seed_rows = []
    started = time.perf_counter()
    seeds = range(args.seed_offset, args.seed_offset + args.seeds)
    for seed in seeds:
        jobs = trace(seed, args.jobs, args.load, total, args.accuracy)
        row = [f"| {seed} |"]
        for name, options in VARIANTS.items():
            result = simulate(jobs, nodes, **options)
            assert not result.unschedulable, result.unschedulable
            util[name].append(result.utilisation)
            backfilled[name] += len(result.backfilled)
            for cls in CLASSES:
                pooled[name][cls].extend(waits(result, jobs, cls))
            high = waits(result, jobs, "high")
            row.append(f" {result.utilisation:.3f} / {statistics.mean(high):.0f} / {pct(high, .95):.0f} /"
                       f" {max(high):.0f} |")
        per_seed_rows.append("".join(row))
    elapsed = time.perf_counter() - started

    lines = [f"trace: {args.seeds} seeds ({seeds.start}-{seeds.stop - 1}) x {args.jobs} jobs, offered load {args.load:.0%}, actual runtime = "
             f"max_runtime x U({args.accuracy}, 1), {len(nodes)} nodes / {total} GPUs; waits in seconds; "
             f"simulated in {elapsed:.1f} s", "",
             "| policy | GPU util (mean of seeds) | " + " | ".join(
                 f"{c} mean / p95" for c in CLASSES) + " | high p99 | longest high wait | backfilled starts |",
             "|---|---|" + "---|" * len(CLASSES) + "---|---|---|"]
    for name in VARIANTS:
        cells = [f"{statistics.mean(pooled[name][c]):.0f} / {pct(pooled[name][c], .95):.0f}" for c in CLASSES]
        lines.append(f"| {name} | {statistics.mean(util[name]):.3f} | " + " | ".join(cells)
                     + f" | {pct(pooled[name]['high'], .99):.0f} | {max(pooled[name]['high']):.0f} | {backfilled[name]} |")
    lines += ["", "per seed: utilisation / high mean / high p95 / high longest",
              "", "| seed | " + " | ".join(VARIANTS) + " |", "|---|" + "---|" * len(VARIANTS), *per_seed_rows]

    s, o = pooled["strict"]["high"], pooled["ours"]["high"]
    util_up = all(u_o > u_s for u_o, u_s in zip(util["ours"], util["strict"]))
    checks = {  # pooled over all seeds, except utilisation (every seed)
        "utilisation higher in every seed": util_up,
        "high mean wait not higher": statistics.mean(o) <= statistics.mean(s),
        "high p95 wait not higher": pct(o, .95) <= pct(s, .95),
        "high p99 wait not higher": pct(o, .99) <= pct(s, .99),
        "longest high wait not higher": max(o) <= max(s),
    }
    seeds_longest = sum(1 for r_o, r_s in zip(_per_seed_max(per_seed_rows, 3), _per_seed_max(per_seed_rows, 1))
                        if r_o <= r_s)
    seeds_util = sum(1 for u_o, u_s in zip(util["ours"], util["strict"]) if u_o > u_s)
    lines += ["", "strict = no backfill; easy = plain EASY backfill; ours = EASY + class barrier + drain-time guards "
              "+ spare nodes per GPU class, whole-node work first (policy.decide defaults)", "verdict (ours vs strict): " + ", ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in checks.items()),
              f"seeds where ours' utilisation > strict's: {seeds_util}/{args.seeds}; "
              f"seeds where ours' longest high wait <= strict's: {seeds_longest}/{args.seeds}",
              "VERDICT: " + ("PASS" if all(checks.values()) else "FAIL")]
    report = "\n".join(lines)
    print(report)
    if not args.no_write and args.seed_offset == 0:
        command = "`.venv/bin/python bench/bench_policy.py " + " ".join(sys.argv[1:]) + "`"
        write_results(f"bench_policy (accuracy {args.accuracy})", f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {machine()}, "
                                      f"{_load()}\n\n{command.replace(' `', '`')}\n\n{report}")


def _per_seed_max(rows: list[str], column: int) -> list[float]:
    """Longest high wait per seed for the given variant column (1 = strict, 3 = ours)."""
    return [float(r.split("|")[column + 1].split("/")[3]) for r in rows]


def _load() -> str:
    try:
        return "load average " + subprocess.run(["cat", "/proc/loadavg"], capture_output=True, text=True,
                                                check=False).stdout.split()[0]
    except OSError:
        return ""


if __name__ == "__main__":
    main()
