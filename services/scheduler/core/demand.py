"""What one component needs, what a node has free, and whether it fits (pure).

Rules (the Redis allocator's Lua script implements the same ones, see allocator.py):
- A component's GPUs, memory and CPU all come from ONE node.
- gpu_type "any" matches every GPU type whose memory per GPU is >= min_gpu_memory_bytes;
  a named type matches only itself (and min_gpu_memory_bytes still applies when set).
- Only Active nodes take new work (`best_fit`); `fits` is about capacity alone.
- Best fit: the (node, GPU type) that leaves the fewest free GPUs of that type, then the
  node name, then the type name. A component without GPUs prefers the node with the
  fewest free GPUs in total (keeps big GPU nodes whole), then the name.
CPU is handled in millicores (int) so Python and Lua agree exactly.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping

from contracts.resources import Resources, parse_memory

from .inventory import Node, NodeStatus

ANY_GPU_TYPE = "any"


def to_millis(cores: float) -> int:
    return int(round(float(cores) * 1000))


@dataclass(frozen=True)
class ComponentDemand:
    gpu_type: str = ANY_GPU_TYPE
    gpu_count: int = 0
    min_gpu_memory_bytes: int = 0
    memory_bytes: int = 0
    cpu: float = 0.0

    def __post_init__(self) -> None:
        if self.gpu_count < 0 or self.memory_bytes < 0 or self.cpu < 0 or self.min_gpu_memory_bytes < 0:
            raise ValueError(f"negative figure in demand {self}")
        if not self.gpu_type or "|" in self.gpu_type:
            raise ValueError(f"invalid gpu_type {self.gpu_type!r}")

    @property
    def cpu_millis(self) -> int:
        return to_millis(self.cpu)

    @property
    def is_any_type(self) -> bool:
        return self.gpu_type.lower() == ANY_GPU_TYPE

    def accepts(self, gpu_type: str, memory_per_gpu_bytes: int) -> bool:
        """Would a GPU of this type and size satisfy this demand?"""
        if not self.is_any_type and gpu_type != self.gpu_type:
            return False
        return memory_per_gpu_bytes >= self.min_gpu_memory_bytes

    @classmethod
    def from_resources(cls, resources: Resources | Mapping[str, Any], *, cpu: float | None = None,
                       min_gpu_memory: str | int | None = None) -> "ComponentDemand":
        """From the spec's {gpu_type, gpu_count, memory} (+ optional cpu, min_gpu_memory)."""
        data = resources.model_dump() if isinstance(resources, Resources) else dict(resources)
        memory = data.get("memory", 0)
        min_mem = min_gpu_memory if min_gpu_memory is not None else data.get("min_gpu_memory", 0)
        return cls(
            gpu_type=str(data.get("gpu_type") or ANY_GPU_TYPE),
            gpu_count=int(data.get("gpu_count") or 0),
            min_gpu_memory_bytes=parse_memory(min_mem) if isinstance(min_mem, str) else int(min_mem or 0),
            memory_bytes=parse_memory(memory) if isinstance(memory, str) else int(memory or 0),
            cpu=float(cpu if cpu is not None else data.get("cpu", 0) or 0),
        )


@dataclass(frozen=True)
class GpuFree:
    free: int
    memory_per_gpu_bytes: int


@dataclass(frozen=True)
class NodeFree:
    """Free capacity of one node at one moment."""

    name: str
    status: NodeStatus = NodeStatus.ACTIVE
    gpus: Mapping[str, GpuFree] = field(default_factory=dict)
    memory_bytes: int = 0
    cpu_millis: int = 0

    @classmethod
    def from_node(cls, node: Node) -> "NodeFree":
        return cls(node.name, node.status,
                   {t: GpuFree(p.count, p.memory_per_gpu_bytes) for t, p in node.gpus.items()},
                   node.memory_bytes, to_millis(node.cpu))

    @property
    def gpu_free_total(self) -> int:
        return sum(g.free for g in self.gpus.values())

    def adjusted(self, gpu_type: str | None, gpu_count: int, memory_bytes: int, cpu_millis: int,
                 sign: int) -> "NodeFree":
        """A copy with the amounts taken (sign=-1) or given back (sign=+1)."""
        gpus = dict(self.gpus)
        if gpu_type is not None and gpu_count:
            pool = gpus.get(gpu_type, GpuFree(0, 0))
            gpus[gpu_type] = GpuFree(pool.free + sign * gpu_count, pool.memory_per_gpu_bytes)
        return replace(self, gpus=gpus, memory_bytes=self.memory_bytes + sign * memory_bytes,
                       cpu_millis=self.cpu_millis + sign * cpu_millis)

    def take(self, demand: ComponentDemand, gpu_type: str | None) -> "NodeFree":
        return self.adjusted(gpu_type, demand.gpu_count, demand.memory_bytes, demand.cpu_millis, -1)

    def give(self, demand: ComponentDemand, gpu_type: str | None) -> "NodeFree":
        return self.adjusted(gpu_type, demand.gpu_count, demand.memory_bytes, demand.cpu_millis, +1)


@dataclass(frozen=True, order=True)
class Placement:
    """Where a demand goes; `key` orders candidates (smaller = better fit)."""

    key: tuple
    node: str
    gpu_type: str | None


def fitting_gpu_types(node: NodeFree, demand: ComponentDemand) -> list[str]:
    """GPU types on this node that can host the demand's GPUs, best fit first."""
    types = [t for t, g in node.gpus.items()
             if demand.accepts(t, g.memory_per_gpu_bytes) and g.free >= demand.gpu_count]
    return sorted(types, key=lambda t: (node.gpus[t].free - demand.gpu_count, t))


def placement_on(node: NodeFree, demand: ComponentDemand) -> Placement | None:
    """The best way to put the demand on this node (capacity only), or None."""
    if node.memory_bytes < demand.memory_bytes or node.cpu_millis < demand.cpu_millis:
        return None
    if demand.gpu_count == 0:
        return Placement((node.gpu_free_total, node.name, ""), node.name, None)
    types = fitting_gpu_types(node, demand)
    if not types:
        return None
    best = types[0]
    return Placement((node.gpus[best].free - demand.gpu_count, node.name, best), node.name, best)


def fits(node: NodeFree, demand: ComponentDemand) -> bool:
    """Capacity check on one node; GPUs can never be split across nodes."""
    return placement_on(node, demand) is not None


def candidates(nodes: Iterable[NodeFree], demand: ComponentDemand) -> list[Placement]:
    """Every Active node where the demand fits, best fit first."""
    found = (placement_on(n, demand) for n in nodes if n.status == NodeStatus.ACTIVE)
    return sorted(p for p in found if p is not None)


def best_fit(nodes: Iterable[NodeFree], demand: ComponentDemand) -> Placement | None:
    found = [p for p in (placement_on(n, demand) for n in nodes if n.status == NodeStatus.ACTIVE) if p]
    return min(found) if found else None
