"""Response shapes of the HTTP API, built from records and Redis figures (pure)."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable, Hashable, Iterable, Mapping, Sequence

from contracts.resources import format_memory
from services.scheduler.core.allocator import ClusterSnapshot, NodeUsage
from services.scheduler.core.queue import QueueEntry
from services.scheduler.records import JobRecord, RunRecord


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def queue_item(entry: QueueEntry, position: int) -> dict[str, Any]:
    attributes = dict(entry.attributes)
    return {
        "position": position,
        "workload_id": attributes.get("workload_id") or entry.workload_id,
        "job_id": entry.workload_id,
        "kind": attributes.get("kind", "workload"),
        "test_run_id": attributes.get("test_run_id"),
        "name": entry.name,
        "priority": entry.priority.value,
        "resources": dict(entry.resources),
        "requester": entry.requester,
        "submitted_at": datetime.fromtimestamp(entry.submitted_at, timezone.utc).isoformat(),
        "status": entry.status.value,
    }


def run_view(run: RunRecord, usage: Mapping[str, Any] | None = None) -> dict[str, Any]:
    allocated = run.node is not None
    return {
        "task_id": run.task_id,
        "component_id": run.component_id,
        "name": run.name,
        "round": run.round,
        "status": run.status,
        "attempt": run.attempt,
        "rerun_reason": run.rerun_reason,
        "allocation": {
            "node": run.node, "gpu_type": run.gpu_type, "gpu_count": len(run.gpu_indices or []),
            "gpu_indices": list(run.gpu_indices or []), "memory_bytes": int(run.memory_bytes or 0),
            "memory": format_memory(int(run.memory_bytes or 0)), "cpu": (run.cpu_millis or 0) / 1000,
        } if allocated else None,
        "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
        "duration_s": _duration(run.started_at, run.finished_at),
        "exit_code": run.exit_code,
        "reason": run.reason,
        "output_prefix": run.output_prefix,
        "log": run.log_url,
        "metrics": run.metrics,
        **({"usage": dict(usage)} if usage is not None else {}),
    }


def _duration(start: datetime | None, end: datetime | None) -> float | None:
    return round((end - start).total_seconds(), 3) if start and end else None


def job_summary(job: JobRecord) -> dict[str, Any]:
    return {
        "workload_id": job.workload_id,
        "job_id": job.job_id,
        "kind": job.kind,
        "test_run_id": job.test_run_id,
        "name": job.name,
        "status": job.status,
        "priority": job.priority,
        "requester": job.requester,
        "submitted_at": iso(job.submitted_at),
        "queued_at": iso(job.queued_at),
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
        "deadline": iso(job.deadline),
        "max_runtime_s": job.max_runtime_s,
        "failure": {"stage": job.failure_stage, "reason": job.failure_reason,
                    "component_id": job.failure_component} if job.failure_reason else None,
        "cancelled_by": job.cancelled_by,
    }


def job_detail(job: JobRecord, runs: Sequence[RunRecord], position: int | None,
               usage: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    detail = job_summary(job)
    detail["position"] = position
    if job.kind == "looptest":
        detail.update(mode=job.mode, rounds=job.rounds, episodes=job.episodes)
    detail["components"] = [run_view(r, usage.get(r.run_id)) for r in runs]
    return detail


# ---------------------------------------------------------------- resources (RS-01..05)

def _section(total: float, allocated: float, used: float | None, *, memory: bool = False) -> dict[str, Any]:
    idle = max(0, total - allocated)
    if memory:
        return {"total_bytes": int(total), "allocated_bytes": int(allocated),
                "used_bytes": None if used is None else int(used), "idle_bytes": int(idle),
                "total": format_memory(int(total)), "allocated": format_memory(int(allocated)),
                "used": None if used is None else format_memory(int(used)), "idle": format_memory(int(idle))}
    return {"total": total, "allocated": allocated, "used": used, "idle": idle}


def measured_total(figures: Iterable[Any]) -> Any:
    """A sum of measured figures, None when one of them is unknown: a part is not the whole."""
    total = 0
    for figure in figures:
        if figure is None:
            return None
        total += figure
    return total


def gpus_in_use(runs: Iterable[RunRecord], usage: Mapping[str, Mapping[str, Any]],
                key: Callable[[RunRecord], Hashable]) -> dict[Any, int | None]:
    """GPUs in use per key (GPU type; node and type) by the runs holding GPUs; None for a key
    where one of them has no GPU figure (not sampled yet, or nvidia-smi failed)."""
    holding: dict[Hashable, list[int | None]] = {}
    for run in runs:
        if run.gpu_indices:
            holding.setdefault(key(run), []).append((usage.get(run.run_id) or {}).get("gpus_busy"))
    return {k: measured_total(busy) for k, busy in holding.items()}


def workload_used(runs: Sequence[RunRecord], usage: Mapping[str, Mapping[str, Any]],
                  measures: frozenset[str]) -> dict[str, Any]:
    """What a workload's runs measurably use (RS-05); null where the runner cannot measure it."""
    figures = [usage.get(r.run_id) or {} for r in runs]
    on_gpus = [f for r, f in zip(runs, figures) if r.gpu_indices]
    gpu = "gpu" in measures
    return {"memory_bytes": sum(f.get("memory_bytes") or 0 for f in figures) if "memory" in measures else None,
            "cpu_cores": round(sum(f.get("cpu_cores") or 0 for f in figures), 3) if "cpu" in measures else None,
            "gpus": measured_total(f.get("gpus_busy") for f in on_gpus) if gpu else None,
            "gpu_memory_bytes": measured_total(f.get("gpu_memory_bytes") for f in on_gpus) if gpu else None}


def resources(snapshot: ClusterSnapshot, usage: Iterable[Mapping[str, Any]], measures: frozenset[str],
              gpu_used_by_type: Mapping[str, int | None]) -> dict[str, Any]:
    """Totals / allocated (requested) / used (measured, or null when the runner cannot
    measure it; never a copy of the allocation) / idle."""
    usage = list(usage)
    mem_used = sum(float(u.get("memory_bytes", 0)) for u in usage) if "memory" in measures else None
    cpu_used = round(sum(float(u.get("cpu_cores", 0)) for u in usage), 3) if "cpu" in measures else None
    gpus = []
    for gpu_type, totals in sorted(snapshot.gpu_types.items()):
        used = gpu_used_by_type.get(gpu_type, 0) if "gpu" in measures else None
        gpus.append({"gpu_type": gpu_type, **_section(int(totals.total), int(totals.allocated), used),
                     "schedulable_idle": snapshot.gpu_free_schedulable.get(gpu_type, 0)})
    gpu_total = sum(int(t.total) for t in snapshot.gpu_types.values())
    gpu_alloc = sum(int(t.allocated) for t in snapshot.gpu_types.values())
    gpu_used = measured_total(gpu_used_by_type.values()) if "gpu" in measures else None
    return {
        "gpu": _section(gpu_total, gpu_alloc, gpu_used),
        "gpus": gpus,
        "memory": _section(snapshot.memory.total, snapshot.memory.allocated, mem_used, memory=True),
        "cpu": _section(round(snapshot.cpu.total, 3), round(snapshot.cpu.allocated, 3), cpu_used),
        "measured": sorted(measures),
    }


def used_on_nodes(runs: Iterable[RunRecord], usage: Mapping[str, Mapping[str, Any]]
                  ) -> dict[str, dict[str, float]]:
    """Measured memory (bytes) and CPU (cores) of the runs placed on each node (a run not sampled yet
    counts 0, as in the cluster totals)."""
    used: dict[str, dict[str, float]] = {}
    for run in runs:
        if not run.node:
            continue
        figures = usage.get(run.run_id) or {}
        entry = used.setdefault(run.node, {"memory_bytes": 0, "cpu_cores": 0.0})
        entry["memory_bytes"] += figures.get("memory_bytes") or 0
        entry["cpu_cores"] += figures.get("cpu_cores") or 0
    return used


def node_view(node: NodeUsage, gpus_used: Mapping[Hashable, int | None] | None = None,
              used: Mapping[str, Mapping[str, float]] | None = None,
              measures: frozenset[str] = frozenset()) -> dict[str, Any]:
    """gpus_used: GPUs in use by (node, GPU type), None when GPUs are not measured; used: measured
    memory/CPU per node (used_on_nodes), shown where `measures` says the runner measures them."""
    mine = (used or {}).get(node.name, {})
    memory_used = mine.get("memory_bytes", 0) if "memory" in measures else None
    cpu_used = round(mine.get("cpu_cores", 0.0), 3) if "cpu" in measures else None
    return {
        "name": node.name,
        "status": node.status.value,
        "observed_status": node.observed_status.value,
        "override": node.override.value if node.override else None,
        "gpus": {t: {"total": p.total, "allocated": p.allocated, "idle": p.free,
                     "used": None if gpus_used is None else gpus_used.get((node.name, t), 0),
                     "memory_per_gpu_bytes": p.memory_per_gpu_bytes,
                     "memory_per_gpu": format_memory(p.memory_per_gpu_bytes)} for t, p in node.gpus.items()},
        "memory": _section(node.memory.total, node.memory.allocated, memory_used, memory=True),
        "cpu": _section(node.cpu.total, node.cpu.allocated, cpu_used),
        "allocations": node.allocation_count,
    }


def wait_fields(reason: Any) -> dict[str, Any]:
    """A waiting entry's `wait_reason` (code, Korean text, the figures behind it) and `estimated_start`
    (ISO time, null when unknown): services/scheduler/wait.py."""
    start = reason.estimated_start
    return {"wait_reason": reason.to_dict(),
            "estimated_start": None if start is None else datetime.fromtimestamp(start, timezone.utc).isoformat()}
