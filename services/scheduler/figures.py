"""The cluster's figures as the resource views show them, read from Redis (allocations, the runs' measured
usage) and PostgreSQL (the live runs): shared by the HTTP routes and the usage-history recorder."""
from __future__ import annotations

from typing import Any, Sequence

import asyncpg

from services.scheduler import schemas, store
from services.scheduler.core.allocator import RedisAllocator
from services.scheduler.records import RunRecord


async def run_usage(redis: Any, prefix: str, runs: Sequence[RunRecord]) -> dict[str, dict[str, Any]]:
    """The last usage sample of each run (engine/usage.py), by run id; a run not sampled is left out."""
    if not runs:
        return {}
    pipe = redis.pipeline(transaction=False)
    for run in runs:
        pipe.hgetall(f"{prefix}usage:{run.run_id}")
    found = await pipe.execute()
    out = {}
    for run, fields in zip(runs, found):
        if fields:
            values = {(k.decode() if isinstance(k, bytes) else k): float(v) for k, v in fields.items()}
            out[run.run_id] = {"memory_bytes": int(values["memory_bytes"]) if "memory_bytes" in values else None,
                               "cpu_cores": values.get("cpu_cores"),
                               "gpus_busy": int(values["gpus_busy"]) if "gpus_busy" in values else None,
                               "gpu_memory_bytes": int(values["gpu_memory_bytes"])
                               if "gpu_memory_bytes" in values else None,
                               "gpu_utilization": values.get("gpu_utilization")}
    return out


async def cluster_resources(pool: asyncpg.Pool, redis: Any, allocator: RedisAllocator, prefix: str,
                            measures: frozenset[str]) -> dict[str, Any]:
    """What GET /resources answers (RS-01..03): per GPU type, memory and CPU, total / allocated / used / idle."""
    snapshot = await allocator.snapshot()
    async with pool.acquire() as conn:
        live = await store.live_runs(conn)
    usage = await run_usage(redis, prefix, live)
    measured = [{k: v for k, v in u.items() if v is not None} for u in usage.values()]
    gpus_used = schemas.gpus_in_use(live, usage, key=lambda run: run.gpu_type)
    return schemas.resources(snapshot, measured, measures, gpus_used)
