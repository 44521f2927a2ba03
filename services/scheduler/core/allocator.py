"""GPU/memory/CPU allocation in Redis: one atomic Lua script per decision.

Every state change (allocate, release, renew, inventory load, node status) is a single
Lua script, so any number of scheduler replicas can share one Redis without ever
over-allocating. The selection rule is the one in demand.py (best fit on ONE Active node),
made fast by per-(GPU type, GPU memory) sorted-set indexes: a decision reads only the
first few index entries instead of every node.

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

DEFAULT_PREFIX = "avatar:{sched}:"

_PRELUDE = r"""
local P = ARGV[1]
local function nkey(n) return P .. 'node:' .. n end
local function split(s)
  local out = {}
  if not s or s == '' then return out end
  for x in string.gmatch(s, '[^,]+') do out[#out + 1] = x end
  return out
end
local function lt(a, b)  -- bytewise, like Redis member order and Python str order
  local la, lb = #a, #b
  local m = la < lb and la or lb
  for i = 1, m do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return la < lb
end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function gfree(n, t)
  local h = redis.call('HMGET', nkey(n), 'g:' .. t .. ':total', 'g:' .. t .. ':alloc')
  if not h[1] then return 0 end
  local f = tonumber(h[1]) - tonumber(h[2] or 0)
  local z = redis.call('ZCARD', nkey(n) .. ':free:' .. t)
  if z < f then f = z end
  if f < 0 then f = 0 end
  return f
end
local function effective(status, override)
  if status == 'Down' or override == 'Down' then return 'Down' end
  if status == 'Drain' or override == 'Drain' then return 'Drain' end
  return 'Active'
end
local function reindex(n)
  local nk = nkey(n)
  local h = redis.call('HMGET', nk, 'eff', 'types')
  local active = (h[1] == 'Active')
  local total = 0
  for _, t in ipairs(split(h[2])) do
    local f = gfree(n, t)
    total = total + f
    local ik = P .. 'idx:' .. t .. '|' .. (redis.call('HGET', nk, 'g:' .. t .. ':mem') or '0')
    if active then redis.call('ZADD', ik, f, n) else redis.call('ZREM', ik, n) end
  end
  if active then redis.call('ZADD', P .. 'idx:all', total, n) else redis.call('ZREM', P .. 'idx:all', n) end
end
local function drop_node(n)
  local nk = nkey(n)
  for _, t in ipairs(split(redis.call('HGET', nk, 'types'))) do
    redis.call('ZREM', P .. 'idx:' .. t .. '|' .. (redis.call('HGET', nk, 'g:' .. t .. ':mem') or '0'), n)
    redis.call('DEL', nk .. ':free:' .. t)
  end
  redis.call('ZREM', P .. 'idx:all', n)
  redis.call('DEL', nk, nk .. ':allocs')
  redis.call('SREM', P .. 'nodes', n)
end
-- record an allocation taken on node n (ALLOCATE and RESTORE share ARGV 3,4,8,9,10,11)
local function record(akey, id, n, t, indices)
  local now = now_ms()
  local exp = now + tonumber(ARGV[10])
  redis.call('HSET', akey, 'id', id, 'workload_id', ARGV[3], 'component_id', ARGV[4], 'node', n,
    'gpu_type', t, 'gpu_count', tostring(#indices), 'gpu_indices', table.concat(indices, ','),
    'memory_bytes', ARGV[8], 'cpu_millis', ARGV[9], 'created_ms', string.format('%.0f', now),
    'lease_expires_ms', string.format('%.0f', exp), 'expected_end', ARGV[11])
  redis.call('ZADD', P .. 'leases', exp, id)
  redis.call('SADD', nkey(n) .. ':allocs', id)
  redis.call('SADD', P .. 'workload:' .. ARGV[3] .. ':allocs', id)
  return {'ok', redis.call('HGETALL', akey)}
end
"""

# ARGV: P, id, workload, component, gpu_type, gpu_count, min_gpu_mem, mem(str), cpu_millis(str),
#       lease_ms, expected_end, order ('best_fit'|'listed'), listed nodes (comma list or '')
_ALLOCATE = _PRELUDE + r"""
local id = ARGV[2]
local akey = P .. 'alloc:' .. id
if redis.call('EXISTS', akey) == 1 then
  return {'existing', redis.call('HGETALL', akey)}
end
local gtype, gcount, minmem = ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])
local mem, cpu = tonumber(ARGV[8]), tonumber(ARGV[9])
local any = (gtype == 'any')

local function better(a, b)
  if b == nil then return true end
  if a[1] ~= b[1] then return a[1] < b[1] end
  if a[2] ~= b[2] then return lt(a[2], b[2]) end
  return lt(a[3], b[3])
end
local function base_fits(n)
  local h = redis.call('HMGET', nkey(n), 'eff', 'mem_total', 'mem_alloc', 'cpu_total', 'cpu_alloc')
  if h[1] ~= 'Active' then return false end
  if tonumber(h[2]) - tonumber(h[3]) < mem then return false end
  if tonumber(h[4]) - tonumber(h[5]) < cpu then return false end
  return true
end
local function accepts(t, tmem)
  if (not any) and t ~= gtype then return false end
  return tonumber(tmem or '0') >= minmem
end
local function node_candidate(n)
  if not base_fits(n) then return nil end
  local nk = nkey(n)
  local types = split(redis.call('HGET', nk, 'types'))
  if gcount == 0 then
    local tot = 0
    for _, t in ipairs(types) do tot = tot + gfree(n, t) end
    return {tot, n, ''}
  end
  local c = nil
  for _, t in ipairs(types) do
    if accepts(t, redis.call('HGET', nk, 'g:' .. t .. ':mem')) then
      local f = gfree(n, t)
      if f >= gcount then
        local cand = {f - gcount, n, t}
        if better(cand, c) then c = cand end
      end
    end
  end
  return c
end

local best = nil
if ARGV[13] ~= '' then
  for _, n in ipairs(split(ARGV[13])) do
    local c = node_candidate(n)
    if c then
      if ARGV[12] == 'listed' then best = c; break end
      if better(c, best) then best = c end
    end
  end
elseif gcount == 0 then
  local off = 0
  while best == nil do
    local batch = redis.call('ZRANGE', P .. 'idx:all', off, off + 63, 'WITHSCORES')
    if #batch == 0 then break end
    for i = 1, #batch, 2 do
      if base_fits(batch[i]) then best = {tonumber(batch[i + 1]), batch[i], ''}; break end
    end
    off = off + 64
  end
else
  for _, cls in ipairs(redis.call('SMEMBERS', P .. 'classes')) do
    local bar = string.find(cls, '|', 1, true)
    local t, tmem = string.sub(cls, 1, bar - 1), string.sub(cls, bar + 1)
    if accepts(t, tmem) then
      local off, done = 0, false
      while not done do
        local batch = redis.call('ZRANGEBYSCORE', P .. 'idx:' .. cls, gcount, '+inf', 'WITHSCORES', 'LIMIT', off, 32)
        if #batch == 0 then break end
        for i = 1, #batch, 2 do
          local cand = {tonumber(batch[i + 1]) - gcount, batch[i], t}
          if best ~= nil and not better(cand, best) then done = true; break end
          if base_fits(batch[i]) then best = cand; done = true; break end
        end
        off = off + 32
      end
    end
  end
end
if best == nil then return {'none'} end

local n, t = best[2], best[3]
local nk = nkey(n)
local indices = {}
if gcount > 0 then
  local popped = redis.call('ZPOPMIN', nk .. ':free:' .. t, gcount)
  for i = 1, #popped, 2 do indices[#indices + 1] = popped[i] end
  redis.call('HINCRBY', nk, 'g:' .. t .. ':alloc', gcount)
end
if mem > 0 then redis.call('HINCRBY', nk, 'mem_alloc', ARGV[8]) end
if cpu > 0 then redis.call('HINCRBY', nk, 'cpu_alloc', ARGV[9]) end
reindex(n)
return record(akey, id, n, t, indices)
"""

# ARGV: P, id, workload, component, node, gpu_type ('' = none), indices, mem(str), cpu_millis(str),
#       lease_ms, expected_end -> re-record a known allocation exactly (after Redis lost its data)
_RESTORE = _PRELUDE + r"""
local id = ARGV[2]
local akey = P .. 'alloc:' .. id
if redis.call('EXISTS', akey) == 1 then
  return {'existing', redis.call('HGETALL', akey)}
end
local n, t = ARGV[5], ARGV[6]
local nk = nkey(n)
if redis.call('EXISTS', nk) == 0 then return {'none'} end
local indices = split(ARGV[7])
if t ~= '' and #indices > 0 then
  if redis.call('HEXISTS', nk, 'g:' .. t .. ':total') == 0 then return {'none'} end
  for _, x in ipairs(indices) do redis.call('ZREM', nk .. ':free:' .. t, x) end
  redis.call('HINCRBY', nk, 'g:' .. t .. ':alloc', #indices)
else
  t = ''
  indices = {}
end
if ARGV[8] ~= '0' then redis.call('HINCRBY', nk, 'mem_alloc', ARGV[8]) end
if ARGV[9] ~= '0' then redis.call('HINCRBY', nk, 'cpu_alloc', ARGV[9]) end
reindex(n)
return record(akey, id, n, t, indices)
"""

# ARGV: P, id, only_if_expired ('1'|'0')  -> 1 released, 0 unknown/already released, -1 lease live
_RELEASE = _PRELUDE + r"""
local id = ARGV[2]
local akey = P .. 'alloc:' .. id
if redis.call('EXISTS', akey) == 0 then return 0 end
if ARGV[3] == '1' then
  local exp = redis.call('ZSCORE', P .. 'leases', id)
  if exp and tonumber(exp) > now_ms() then return -1 end
end
local a = redis.call('HMGET', akey, 'node', 'gpu_type', 'gpu_count', 'gpu_indices', 'memory_bytes',
  'cpu_millis', 'workload_id')
local n = a[1]
local nk = nkey(n)
if redis.call('EXISTS', nk) == 1 then
  local t, cnt = a[2], tonumber(a[3])
  if t ~= '' and cnt > 0 and redis.call('HEXISTS', nk, 'g:' .. t .. ':total') == 1 then
    redis.call('HINCRBY', nk, 'g:' .. t .. ':alloc', -cnt)
    local valid = {}
    for _, x in ipairs(split(redis.call('HGET', nk, 'g:' .. t .. ':idx'))) do valid[x] = true end
    for _, x in ipairs(split(a[4])) do
      if valid[x] then redis.call('ZADD', nk .. ':free:' .. t, tonumber(x), x) end
    end
  end
  if a[5] ~= '0' then redis.call('HINCRBY', nk, 'mem_alloc', '-' .. a[5]) end
  if a[6] ~= '0' then redis.call('HINCRBY', nk, 'cpu_alloc', '-' .. a[6]) end
  redis.call('SREM', nk .. ':allocs', id)
  if redis.call('HGET', nk, 'gone') == '1' and redis.call('SCARD', nk .. ':allocs') == 0 then
    drop_node(n)
  else
    reindex(n)
  end
end
redis.call('DEL', akey)
redis.call('ZREM', P .. 'leases', id)
redis.call('SREM', P .. 'workload:' .. a[7] .. ':allocs', id)
return 1
"""

# ARGV: P, id, lease_ms -> new expiry ms as string, or false when the allocation is gone
_RENEW = _PRELUDE + r"""
local akey = P .. 'alloc:' .. ARGV[2]
if redis.call('EXISTS', akey) == 0 then return false end
local exp = string.format('%.0f', now_ms() + tonumber(ARGV[3]))
redis.call('ZADD', P .. 'leases', exp, ARGV[2])
redis.call('HSET', akey, 'lease_expires_ms', exp)
return exp
"""

_EXPIRED = _PRELUDE + r"""
return redis.call('ZRANGEBYSCORE', P .. 'leases', '-inf', now_ms())
"""

# ARGV: P, JSON [{name, status, mem, cpu_m, labels, pools: [{type, count, mem, idx}]}]
_LOAD = _PRELUDE + r"""
local data = cjson.decode(ARGV[2])
for _, cls in ipairs(redis.call('SMEMBERS', P .. 'classes')) do redis.call('DEL', P .. 'idx:' .. cls) end
redis.call('DEL', P .. 'classes', P .. 'idx:all')
local seen = {}
for _, nd in ipairs(data) do
  local n = nd.name
  local nk = nkey(n)
  seen[n] = true
  local used, used_idx, memu, cpuu = {}, {}, 0, 0
  for _, id in ipairs(redis.call('SMEMBERS', nk .. ':allocs')) do
    local a = redis.call('HMGET', P .. 'alloc:' .. id, 'gpu_type', 'gpu_count', 'gpu_indices', 'memory_bytes', 'cpu_millis')
    if a[1] then
      if a[1] ~= '' then
        used[a[1]] = (used[a[1]] or 0) + tonumber(a[2])
        used_idx[a[1]] = used_idx[a[1]] or {}
        for _, x in ipairs(split(a[3])) do used_idx[a[1]][x] = true end
      end
      memu = memu + tonumber(a[4])
      cpuu = cpuu + tonumber(a[5])
    else
      redis.call('SREM', nk .. ':allocs', id)
    end
  end
  local newtypes = {}
  for _, p in ipairs(nd.pools) do newtypes[p.type] = true end
  for _, t in ipairs(split(redis.call('HGET', nk, 'types'))) do
    if not newtypes[t] then
      redis.call('HDEL', nk, 'g:' .. t .. ':total', 'g:' .. t .. ':alloc', 'g:' .. t .. ':mem', 'g:' .. t .. ':idx')
      redis.call('DEL', nk .. ':free:' .. t)
    end
  end
  local override = redis.call('HGET', nk, 'override') or ''
  local types = {}
  for _, p in ipairs(nd.pools) do
    local t = p.type
    types[#types + 1] = t
    redis.call('HSET', nk, 'g:' .. t .. ':total', p.count, 'g:' .. t .. ':mem', p.mem,
      'g:' .. t .. ':idx', p.idx, 'g:' .. t .. ':alloc', used[t] or 0)
    local fk = nk .. ':free:' .. t
    redis.call('DEL', fk)
    local ui = used_idx[t] or {}
    for _, x in ipairs(split(p.idx)) do
      if not ui[x] then redis.call('ZADD', fk, tonumber(x), x) end
    end
    redis.call('SADD', P .. 'classes', t .. '|' .. p.mem)
  end
  redis.call('HSET', nk, 'status', nd.status, 'override', override, 'eff', effective(nd.status, override),
    'gone', '0', 'mem_total', nd.mem, 'cpu_total', nd.cpu_m, 'labels', nd.labels,
    'types', table.concat(types, ','), 'mem_alloc', string.format('%.0f', memu),
    'cpu_alloc', string.format('%.0f', cpuu))
  redis.call('SADD', P .. 'nodes', n)
  reindex(n)
end
for _, n in ipairs(redis.call('SMEMBERS', P .. 'nodes')) do
  if not seen[n] then
    if redis.call('SCARD', nkey(n) .. ':allocs') > 0 then
      redis.call('HSET', nkey(n), 'status', 'Down', 'eff', 'Down', 'gone', '1')
      reindex(n)
    else
      drop_node(n)
    end
  end
end
return #data
"""

# ARGV: P, node, override ('' clears)
_SET_STATUS = _PRELUDE + r"""
local nk = nkey(ARGV[2])
if redis.call('EXISTS', nk) == 0 then return 0 end
redis.call('HSET', nk, 'override', ARGV[3], 'eff', effective(redis.call('HGET', nk, 'status'), ARGV[3]))
reindex(ARGV[2])
return 1
"""

_SNAPSHOT = _PRELUDE + r"""
local out = {}
for _, n in ipairs(redis.call('SMEMBERS', P .. 'nodes')) do
  local nk = nkey(n)
  local z = {}
  for _, t in ipairs(split(redis.call('HGET', nk, 'types'))) do
    z[#z + 1] = t
    z[#z + 1] = redis.call('ZCARD', nk .. ':free:' .. t)
  end
  out[#out + 1] = {n, redis.call('HGETALL', nk), z, redis.call('SCARD', nk .. ':allocs')}
end
return out
"""


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


class RedisAllocator:
    """Atomic allocation of node capacity, shared by all scheduler replicas through Redis."""

    def __init__(self, redis: Any, prefix: str = DEFAULT_PREFIX) -> None:
        self._redis = redis
        self.prefix = prefix
        self._allocate = redis.register_script(_ALLOCATE)
        self._release = redis.register_script(_RELEASE)
        self._restore = redis.register_script(_RESTORE)
        self._renew = redis.register_script(_RENEW)
        self._expired = redis.register_script(_EXPIRED)
        self._load = redis.register_script(_LOAD)
        self._set_status = redis.register_script(_SET_STATUS)
        self._snapshot = redis.register_script(_SNAPSHOT)

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
        None when the node or its GPU type is not in the inventory. Idempotent per id."""
        result = await self._restore(keys=[], args=[
            self.prefix, allocation_id, workload_id, component_id, node, gpu_type or "",
            ",".join(str(int(i)) for i in gpu_indices), str(int(memory_bytes)), str(int(cpu_millis)),
            str(int(lease_seconds * 1000)), "" if expected_end is None else repr(float(expected_end)),
        ])
        status = _s(result[0])
        if status == "none":
            return None
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
