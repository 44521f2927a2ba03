"""Why each waiting workload waits, and when it may start (QU, the queue screen's wait reasons; pure).

`explain()` takes the waiting workloads in queue order (each with its request's resources, the largest
component's, and its max runtime), every node's free and total capacity, and the running allocations
with their expected ends (started_at + max_runtime, the scheduler's deadline); it answers, per waiting
workload, a machine `code`, a Korean `text` and the figures behind it, and an estimated start.

Reasons (the first that holds):
- `unschedulable`: no Active node could hold the request even with nothing running (GPUs of the type,
  memory and CPU all on one node); `nodes_unavailable` when one that could is Drained or Down.
- `gpus` / `memory` / `cpu`: it does not fit on any Active node now; the text says what it needs on one
  node and the most one node has free (e.g. "한 노드에 A100 4개 필요 · 여유 2개").
- `behind`: it would fit now, but work ahead of it in the queue takes that capacity first.
- `starting`: it fits now and nothing ahead of it is in the way; the scheduler starts it next round.

The estimate replays the queue in strict priority order against the declared runtimes: each workload
starts at the first moment it fits once the work ahead of it (running or estimated to start) ends by
its expected end, and holds its capacity for its max runtime. Backfill may start later work sooner, and
work ending early moves everything sooner, so it is an upper bound under the declared runtimes; unknown
(None) when the request can never fit, or it would need work to end that has no expected end. Only the
first `horizon` waiting workloads are replayed (a 10,000-entry queue costs a bounded time); later ones
get their reason without an estimate.
"""
from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from contracts.resources import format_memory, parse_duration
from services.scheduler.core.demand import ComponentDemand, GpuFree, NodeFree, placement_on
from services.scheduler.core.inventory import NodeStatus
from services.scheduler.core.policy import RunningLike

DEFAULT_HORIZON = 500

CODES = ("starting", "behind", "gpus", "memory", "cpu", "unschedulable", "nodes_unavailable")


@dataclass(frozen=True)
class Waiting:
    """One waiting workload as the queue holds it."""

    workload_id: str
    demand: ComponentDemand
    max_runtime_s: float


@dataclass(frozen=True)
class WaitReason:
    code: str
    text: str
    figures: Mapping[str, Any] = field(default_factory=dict)
    estimated_start: float | None = None  # Unix seconds

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "text": self.text, **dict(self.figures)}


def demand_text(demand: ComponentDemand) -> str:
    """What a request needs, the way the queue table writes it: "A100 4개", "GPU 2개 (종류 무관)"."""
    if demand.gpu_count == 0:
        return "GPU 없음"
    if demand.is_any_type:
        return f"GPU {demand.gpu_count}개 (종류 무관)"
    return f"{demand.gpu_type} {demand.gpu_count}개"


def _gpus_free_on_one_node(nodes: Iterable[NodeFree], demand: ComponentDemand) -> int:
    """The most GPUs one Active node has free of a type the demand accepts."""
    best = 0
    for node in nodes:
        if node.status != NodeStatus.ACTIVE:
            continue
        for gpu_type, pool in node.gpus.items():
            if demand.accepts(gpu_type, pool.memory_per_gpu_bytes):
                best = max(best, pool.free)
    return best


def _blocker(demand: ComponentDemand, free: Sequence[NodeFree]) -> WaitReason:
    """Why the demand fits on no Active node now: GPUs first (the scarce part), then memory, then CPU."""
    active = [n for n in free if n.status == NodeStatus.ACTIVE]
    free_gpus = _gpus_free_on_one_node(active, demand)
    needs = demand_text(demand)
    if demand.gpu_count and free_gpus < demand.gpu_count:
        return WaitReason("gpus", f"한 노드에 {needs} 필요 · 여유 {free_gpus}개",
                          {"gpu_type": demand.gpu_type, "gpu_count": demand.gpu_count, "gpus_free": free_gpus})
    gpu_ok = [n for n in active if not demand.gpu_count
              or any(demand.accepts(t, p.memory_per_gpu_bytes) and p.free >= demand.gpu_count
                     for t, p in n.gpus.items())]
    memory_free = max((n.memory_bytes for n in gpu_ok), default=0)
    if memory_free < demand.memory_bytes:
        return WaitReason("memory", f"한 노드에 {needs}와 메모리 {format_memory(demand.memory_bytes)} 필요 · "
                                    f"여유 {format_memory(max(0, memory_free))}",
                          {"memory_bytes": demand.memory_bytes, "memory_free_bytes": max(0, memory_free)})
    cpu_free = max((n.cpu_millis for n in gpu_ok if n.memory_bytes >= demand.memory_bytes), default=0)
    return WaitReason("cpu", f"한 노드에 {needs}와 CPU {demand.cpu:g}코어 필요 · 여유 {cpu_free / 1000:g}코어",
                      {"cpu": demand.cpu, "cpu_free": cpu_free / 1000})


def _never_fits(demand: ComponentDemand, capacity: Sequence[NodeFree]) -> WaitReason | None:
    """unschedulable / nodes_unavailable when no Active node could ever hold the demand."""
    if any(n.status == NodeStatus.ACTIVE and placement_on(n, demand) for n in capacity):
        return None
    needs = demand_text(demand)
    held = sorted(n.name for n in capacity if n.status != NodeStatus.ACTIVE and placement_on(n, demand))
    if held:
        return WaitReason("nodes_unavailable", f"{needs}를 둘 수 있는 노드({', '.join(held)})가 Drain/Down 상태입니다",
                          {"nodes": held})
    return WaitReason("unschedulable", f"{needs}를 한 번에 가진 활성 노드가 없습니다", {})


class _Replay:
    """The cluster's free capacity over time: now, then as running (and estimated) work ends."""

    def __init__(self, free: Sequence[NodeFree], running: Iterable[RunningLike], now: float) -> None:
        self.now = now
        self.free = {n.name: n for n in free if n.status == NodeStatus.ACTIVE}
        self.ends: list[tuple[float, int, str, str | None, int, int, int]] = []
        self._seq = 0
        for r in running:
            if r.expected_end is not None and r.node in self.free:
                self._push(max(float(r.expected_end), now), r.node, r.gpu_type, r.gpu_count, r.memory_bytes,
                           r.cpu_millis)

    def _push(self, end: float, node: str, gpu_type: str | None, gpus: int, memory: int, cpu: int) -> None:
        self._seq += 1
        heapq.heappush(self.ends, (end, self._seq, node, gpu_type, gpus, memory, cpu))

    def start(self, demand: ComponentDemand, max_runtime_s: float, not_before: float) -> float | None:
        """The earliest moment at or after `not_before` the demand fits on one node (taking it then), or None
        when it would need work without an expected end to end. Releases before that moment are applied."""
        at = max(self.now, not_before)
        while True:
            found = [p for p in (placement_on(n, demand) for n in self.free.values()) if p is not None]
            if found:
                best = min(found)
                self.free[best.node] = self.free[best.node].take(demand, best.gpu_type)
                if math.isfinite(max_runtime_s):
                    self._push(at + max_runtime_s, best.node, best.gpu_type, demand.gpu_count,
                               demand.memory_bytes, demand.cpu_millis)
                return at
            if not self.ends:
                return None
            end = self.ends[0][0]
            while self.ends and self.ends[0][0] == end:
                _, _, node, gpu_type, gpus, memory, cpu = heapq.heappop(self.ends)
                self.free[node] = self.free[node].adjusted(gpu_type, gpus, memory, cpu, +1)
            at = max(at, end)


def explain(queue: Sequence[Waiting], free: Sequence[NodeFree], capacity: Sequence[NodeFree],
            running: Iterable[RunningLike], now: float, *, horizon: int = DEFAULT_HORIZON) -> list[WaitReason]:
    """One reason per waiting workload, in queue order (see the module docstring). `free`: each node's
    free capacity now; `capacity`: each node's total (what it could hold with nothing running)."""
    replay = _Replay(free, running, now)
    head_start = now  # strict order: nobody is estimated to start before the workload ahead of it
    blocked = False   # an estimate could not be made: the ones behind cannot be either
    out: list[WaitReason] = []
    active_now = [n for n in free if n.status == NodeStatus.ACTIVE]  # the real free state, for the reason
    ahead = 0
    for position, waiting in enumerate(queue):
        demand = waiting.demand
        never = _never_fits(demand, capacity)
        if never is not None:  # holds nothing up, as in policy rule 2
            out.append(never)
            continue
        estimate: float | None = None
        if not blocked and position < horizon:
            estimate = replay.start(demand, waiting.max_runtime_s, head_start)
            if estimate is None:
                blocked = True
            else:
                head_start = estimate
        if not any(placement_on(n, demand) for n in active_now):
            reason = _blocker(demand, free)
        elif estimate is not None and estimate <= now:
            reason = WaitReason("starting", "자원이 있어 곧 시작합니다", {})
        else:
            reason = WaitReason("behind", f"앞선 대기 작업 {ahead}건이 먼저 자원을 씁니다", {"ahead": ahead})
        out.append(WaitReason(reason.code, reason.text, reason.figures, estimate))
        ahead += 1
    return out


def node_capacity(nodes: Iterable[Any]) -> list[NodeFree]:
    """Each node's totals as a NodeFree (allocator.NodeUsage in): what it could hold with nothing running."""
    return [NodeFree(n.name, n.status, {t: GpuFree(p.total, p.memory_per_gpu_bytes) for t, p in n.gpus.items()},
                     int(n.memory.total), int(round(n.cpu.total * 1000))) for n in nodes]


def waiting_of(workload_id: str, resources: Mapping[str, Any], default_runtime_s: float = 7200) -> Waiting:
    """A queue entry's request (recovery._queue_resources: gpu_type, gpu_count, memory, cpu, max_runtime)."""
    try:
        runtime = float(parse_duration(str(resources.get("max_runtime") or "")))
    except ValueError:
        runtime = default_runtime_s
    try:
        demand = ComponentDemand.from_resources({k: v for k, v in resources.items() if v is not None})
    except (TypeError, ValueError):  # a malformed entry explains as needing nothing rather than failing the list
        demand = ComponentDemand()
    return Waiting(workload_id, demand, runtime)
