"""GPU/memory/CPU allocation in Redis: one atomic Lua script per decision.

Every state change (allocate, release, renew, inventory load, node status) is a single
Lua script (lua/allocator/*.lua, read when the allocator is built), so any number of
scheduler replicas can share one Redis without ever over-allocating. The selection rule
is the one in demand.py (best fit on ONE Active node), made fast by per-(GPU type, GPU
memory) sorted-set indexes: a decision reads only the first few index entries instead of
every node.

Key layout (P = prefix, default "avatar:{sched}:"; the {…} hash tag keeps every key in one
Redis Cluster slot, since the scripts build key names from the prefix):

  P nodes                         SET   node names
  P node:<n>                      HASH  eff (effective status), status (observed), override
                                        (admin, '' = none), gone, mem_total, mem_alloc,
                                        cpu_total, cpu_alloc (millicores), labels (JSON),
                                        types ("A100,T4"), and per type t:
                                        g:<t>:total, g:<t>:alloc, g:<t>:mem (bytes/GPU),
                                        g:<t>:idx (device indices "0,1,…")
  P node:<n>:free:<t>             ZSET  free device indices of type t (score = index)
  P node:<n>:allocs               SET   allocation ids on the node
  P classes                       SET   GPU classes "<type>|<bytes per GPU>"
  P idx:<type>|<bytes>            ZSET  Active node -> free GPUs of that class
  P idx:all                       ZSET  Active node -> free GPUs in total (CPU-only placement)
  P alloc:<id>                    HASH  id, workload_id, component_id, node, gpu_type,
                                        gpu_count, gpu_indices, memory_bytes, cpu_millis,
                                        created_ms, lease_expires_ms, expected_end
  P leases                        ZSET  allocation id -> lease expiry (ms, Redis clock)
  P workload:<w>:allocs           SET   allocation ids of a workload

Free GPUs of (node, type) = min(total - alloc, |free indices|), never below 0. Times come
from the Redis server clock (TIME), so replicas with skewed clocks agree on leases.
Big integers (bytes) are passed as decimal strings and changed with HINCRBY, never turned
into Lua numbers and back, so no precision is lost.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Iterable, Sequence

from .demand import ComponentDemand, GpuFree, NodeFree
from .inventory import Node, NodeStatus
from .scripts import register_scripts

DEFAULT_PREFIX = "avatar:{sched}:"


class Order(str, Enum):
    BEST_FIT = "best_fit"  # least leftover GPUs of the chosen type, then node name
    LISTED = "listed"      # first listed node that fits (the caller's preference order)


@dataclass(frozen=True)
class Allocation:
    allocation_id: str
    workload_id: str
    component_id: str
    node: str
    gpu_type: str | None
    gpu_indices: tuple[int, ...]
    memory_bytes: int
    cpu_millis: int
    created_at: float
    lease_expires_at: float
    expected_end: float | None = None
    reused: bool = False  # True when allocate() found this id already recorded

    @property
    def gpu_count(self) -> int:
        return len(self.gpu_indices)

    @property
    def cpu(self) -> float:
        return self.cpu_millis / 1000


@dataclass(frozen=True)
class Totals:
    total: float
    allocated: float

    @property
    def free(self) -> float:
        return self.total - self.allocated


@dataclass(frozen=True)
class PoolUsage:
    total: int
    allocated: int
    free: int
    memory_per_gpu_bytes: int


@dataclass(frozen=True)
class NodeUsage:
    name: str
    status: NodeStatus          # effective: what placement obeys
    observed_status: NodeStatus  # from the inventory (file / Kubernetes)
    override: NodeStatus | None  # set by an admin through set_node_status
    gpus: dict[str, PoolUsage]
    memory: Totals
    cpu: Totals  # cores
    allocation_count: int = 0


@dataclass(frozen=True)
class ClusterSnapshot:
    nodes: list[NodeUsage]
    gpu_types: dict[str, Totals] = field(default_factory=dict)
    gpu_free_schedulable: dict[str, int] = field(default_factory=dict)  # on Active nodes
    memory: Totals = Totals(0, 0)
    cpu: Totals = Totals(0, 0)

    def free_nodes(self) -> list[NodeFree]:
        """Per-node free capacity in the shape policy.decide() takes."""
        return [NodeFree(n.name, n.status,
                         {t: GpuFree(p.free, p.memory_per_gpu_bytes) for t, p in n.gpus.items()},
                         int(n.memory.free), int(round(n.cpu.free * 1000)))
                for n in self.nodes]


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _pairs(flat: Sequence[Any]) -> dict[str, str]:
    return {_s(flat[i]): _s(flat[i + 1]) for i in range(0, len(flat), 2)}


def _allocation(h: dict[str, str], reused: bool = False) -> Allocation:
    indices = h.get("gpu_indices", "")
    expected = h.get("expected_end", "")
    return Allocation(
        allocation_id=h["id"], workload_id=h["workload_id"], component_id=h["component_id"],
        node=h["node"], gpu_type=h.get("gpu_type") or None,
        gpu_indices=tuple(int(x) for x in indices.split(",") if x),
        memory_bytes=int(h["memory_bytes"]), cpu_millis=int(h["cpu_millis"]),
        created_at=float(h["created_ms"]) / 1000, lease_expires_at=float(h["lease_expires_ms"]) / 1000,
        expected_end=float(expected) if expected else None, reused=reused,
    )


def _node_payload(node: Node) -> dict[str, Any]:
    indices = node.gpu_indices()
    return {
        "name": node.name, "status": node.status.value, "mem": str(int(node.memory_bytes)),
        "cpu_m": str(int(round(node.cpu * 1000))), "labels": json.dumps(dict(node.labels)),
        "pools": [{"type": t, "count": str(p.count), "mem": str(int(p.memory_per_gpu_bytes)),
                   "idx": ",".join(str(i) for i in indices[t])} for t, p in node.gpus.items()],
    }


class AllocationConflict(Exception):
    """An allocation cannot be restored as it was: another one holds some of its GPUs now."""


class RedisAllocator:
    """Atomic allocation of node capacity, shared by all scheduler replicas through Redis."""

    def __init__(self, redis: Any, prefix: str = DEFAULT_PREFIX) -> None:
        self._redis = redis
        self.prefix = prefix
        scripts = register_scripts(redis, "allocator", (
            "allocate", "release", "restore", "renew_lease", "expired_allocations", "load_inventory",
            "set_node_status", "snapshot"))
        self._allocate = scripts["allocate"]
        self._release = scripts["release"]
        self._restore = scripts["restore"]
        self._renew = scripts["renew_lease"]
        self._expired = scripts["expired_allocations"]
        self._load = scripts["load_inventory"]
        self._set_status = scripts["set_node_status"]
        self._snapshot = scripts["snapshot"]

    async def load_inventory(self, nodes: Iterable[Node]) -> int:
        """Replace the node set. Allocations are kept and re-counted; nodes that vanished but
        still hold allocations stay as Down until those are released."""
        payload = json.dumps([_node_payload(n) for n in nodes])
        return int(await self._load(keys=[], args=[self.prefix, payload]))

    async def set_node_status(self, node: str, status: NodeStatus | str | None) -> bool:
        """Admin override: Drain/Down stop NEW placements; None or Active clears it.
        Running allocations are never touched."""
        value = NodeStatus(status).value if status else ""
        value = "" if value == NodeStatus.ACTIVE.value else value
        return bool(await self._set_status(keys=[], args=[self.prefix, node, value]))

    async def allocate(self, allocation_id: str, workload_id: str, component_id: str,
                       demand: ComponentDemand, *, lease_seconds: float = 60.0,
                       expected_end: float | None = None, nodes: Sequence[str] | None = None,
                       order: Order = Order.BEST_FIT) -> Allocation | None:
        """Reserve the demand on one node, or None when nothing fits. Idempotent per
        allocation_id: a repeated call returns the recorded allocation with reused=True.
        `nodes` restricts the candidates (e.g. the node policy.decide() chose)."""
        for name in nodes or ():
            if "," in name:
                raise ValueError(f"node name {name!r} contains a comma")
        result = await self._allocate(keys=[], args=[
            self.prefix, allocation_id, workload_id, component_id, "any" if demand.is_any_type else demand.gpu_type,
            str(demand.gpu_count), str(int(demand.min_gpu_memory_bytes)), str(int(demand.memory_bytes)),
            str(demand.cpu_millis), str(int(lease_seconds * 1000)),
            "" if expected_end is None else repr(float(expected_end)),
            Order(order).value, ",".join(nodes or ()),
        ])
        status = _s(result[0])
        if status == "none":
            return None
        return _allocation(_pairs(result[1]), reused=(status == "existing"))

    async def restore(self, allocation_id: str, workload_id: str, component_id: str, *, node: str,
                      gpu_type: str | None, gpu_indices: Sequence[int], memory_bytes: int, cpu_millis: int,
                      lease_seconds: float = 60.0, expected_end: float | None = None) -> Allocation | None:
        """Re-record an allocation exactly as it was (same node and GPU indices), e.g. after Redis
        lost its data while runs kept going. Works on Drain/Down nodes too (running work stays);
        None when the node or its GPU type is not in the inventory. Idempotent per id. Raises
        AllocationConflict, changing nothing, when another allocation holds one of the GPUs: restored
        anyway, the GPU would be booked twice."""
        result = await self._restore(keys=[], args=[
            self.prefix, allocation_id, workload_id, component_id, node, gpu_type or "",
            ",".join(str(int(i)) for i in gpu_indices), str(int(memory_bytes)), str(int(cpu_millis)),
            str(int(lease_seconds * 1000)), "" if expected_end is None else repr(float(expected_end)),
        ])
        status = _s(result[0])
        if status == "none":
            return None
        if status == "conflict":
            raise AllocationConflict(f"GPU {_s(result[1])} of {gpu_type} on {node} is held by another allocation")
        return _allocation(_pairs(result[1]), reused=(status == "existing"))

    async def release(self, allocation_id: str, *, only_if_expired: bool = False) -> bool:
        """Give the allocation back. True exactly once per allocation; False if it was already
        released (or, with only_if_expired, if its lease was renewed meanwhile)."""
        result = await self._release(keys=[], args=[self.prefix, allocation_id, "1" if only_if_expired else "0"])
        return int(result) == 1

    async def renew_lease(self, allocation_id: str, lease_seconds: float) -> float | None:
        """Extend the lease from now; returns the new expiry (epoch s) or None if released."""
        result = await self._renew(keys=[], args=[self.prefix, allocation_id, str(int(lease_seconds * 1000))])
        return float(_s(result)) / 1000 if result else None

    async def expired_allocations(self) -> list[Allocation]:
        ids = [_s(x) for x in await self._expired(keys=[], args=[self.prefix])]
        return [a for a in await self._get_many(ids) if a is not None]

    async def get(self, allocation_id: str) -> Allocation | None:
        return (await self._get_many([allocation_id]))[0]

    async def allocations(self, *, workload_id: str | None = None) -> list[Allocation]:
        if workload_id is not None:
            ids = await self._redis.smembers(f"{self.prefix}workload:{workload_id}:allocs")
        else:
            ids = await self._redis.zrange(f"{self.prefix}leases", 0, -1)
        found = await self._get_many(sorted(_s(i) for i in ids))
        return [a for a in found if a is not None]

    async def _get_many(self, ids: Sequence[str]) -> list[Allocation | None]:
        if not ids:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for allocation_id in ids:
            pipe.hgetall(f"{self.prefix}alloc:{allocation_id}")
        rows = await pipe.execute()
        return [_allocation({_s(k): _s(v) for k, v in row.items()}) if row else None for row in rows]

    async def snapshot(self) -> ClusterSnapshot:
        """Consistent per-node and per-GPU-type totals / allocated / free (one script)."""
        rows = await self._snapshot(keys=[], args=[self.prefix])
        nodes: list[NodeUsage] = []
        for row in rows:
            name, h, z = _s(row[0]), _pairs(row[1]), row[2]
            zcard = {_s(z[i]): int(z[i + 1]) for i in range(0, len(z), 2)}
            pools = {}
            for t in [x for x in h.get("types", "").split(",") if x]:
                total, alloc = int(h[f"g:{t}:total"]), int(h.get(f"g:{t}:alloc", 0))
                free = max(0, min(total - alloc, zcard.get(t, 0)))
                pools[t] = PoolUsage(total, alloc, free, int(h.get(f"g:{t}:mem", 0)))
            override = h.get("override") or None
            nodes.append(NodeUsage(
                name=name, status=NodeStatus(h["eff"]), observed_status=NodeStatus(h["status"]),
                override=NodeStatus(override) if override else None, gpus=pools,
                memory=Totals(int(h["mem_total"]), int(h["mem_alloc"])),
                cpu=Totals(int(h["cpu_total"]) / 1000, int(h["cpu_alloc"]) / 1000),
                allocation_count=int(row[3]),
            ))
        nodes.sort(key=lambda n: n.name)
        gpu_types: dict[str, Totals] = {}
        schedulable: dict[str, int] = {}
        for n in nodes:
            for t, p in n.gpus.items():
                prev = gpu_types.get(t, Totals(0, 0))
                gpu_types[t] = Totals(prev.total + p.total, prev.allocated + p.allocated)
                schedulable[t] = schedulable.get(t, 0) + (p.free if n.status == NodeStatus.ACTIVE else 0)
        return ClusterSnapshot(
            nodes=nodes, gpu_types=gpu_types, gpu_free_schedulable=schedulable,
            memory=Totals(sum(n.memory.total for n in nodes), sum(n.memory.allocated for n in nodes)),
            cpu=Totals(sum(n.cpu.total for n in nodes), sum(n.cpu.allocated for n in nodes)),
        )
