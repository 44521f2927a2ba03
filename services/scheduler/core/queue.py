"""The pending-work priority queue in Redis (QU-01..05).

Order: priority class (high > normal > low), then position inside the class.

Score encoding: one sorted set per class, `P queue:<class>`, member = workload id,
score = the entry's *rank*, a float. A new entry's rank is its submission time (Unix
seconds, float), so by default a class is in submission order. An admin move gives the
workload a rank between its new neighbours (midpoint; before the first = first - 1.0,
after the last = last + 1.0), so the admin-set position overrides submission order and
later submissions still land at the end. When two neighbours' ranks are closer than 1e-6
(float precision would run out), the whole class is renumbered evenly between its first
and last rank (spacing at least 1e-3 s), preserving order. Equal ranks fall back to the
workload id (Redis orders equal scores by member). Changing a workload's class keeps its
rank, so it slots into the new class by submission time / position. Moving a workload
before/after one of another class moves it into that class.

Entries: `P queue:entry:<workload>` HASH with workload_id, priority, rank, submitted_at,
requester, name, status, resources (JSON), attributes (JSON). Only status `waiting`
entries are in the sorted sets; other statuses (running, done, failed, cancelled) keep
the hash for display until `remove`. Every mutation is one Lua script.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, AsyncIterator, Mapping, Sequence

PRIORITIES = ("high", "normal", "low")


class Priority(str, Enum):
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


class QueueStatus(str, Enum):
    WAITING = "waiting"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class QueueEntry:
    workload_id: str
    priority: Priority
    submitted_at: float
    rank: float
    status: QueueStatus = QueueStatus.WAITING
    requester: str = ""
    name: str = ""
    resources: Mapping[str, Any] = field(default_factory=dict)
    attributes: Mapping[str, Any] = field(default_factory=dict)


_PRELUDE = r"""
local P = ARGV[1]
local function qkey(c) return P .. 'queue:' .. c end
local function ekey(w) return P .. 'queue:entry:' .. w end
"""

# ARGV: P, workload, priority, rank, submitted_at, requester, name, resources, attributes
_ENQUEUE = _PRELUDE + r"""
local ek = ekey(ARGV[2])
if redis.call('EXISTS', ek) == 1 then return 0 end
redis.call('HSET', ek, 'workload_id', ARGV[2], 'priority', ARGV[3], 'rank', ARGV[4],
  'submitted_at', ARGV[5], 'requester', ARGV[6], 'name', ARGV[7], 'resources', ARGV[8],
  'attributes', ARGV[9], 'status', 'waiting')
redis.call('ZADD', qkey(ARGV[3]), ARGV[4], ARGV[2])
return 1
"""

_REMOVE = _PRELUDE + r"""
local ek = ekey(ARGV[2])
local c = redis.call('HGET', ek, 'priority')
if not c then return 0 end
redis.call('ZREM', qkey(c), ARGV[2])
redis.call('DEL', ek)
return 1
"""

# ARGV: P, workload, status
_SET_STATUS = _PRELUDE + r"""
local ek = ekey(ARGV[2])
local h = redis.call('HMGET', ek, 'priority', 'rank')
if not h[1] then return 0 end
redis.call('HSET', ek, 'status', ARGV[3])
if ARGV[3] == 'waiting' then
  redis.call('ZADD', qkey(h[1]), h[2], ARGV[2])
else
  redis.call('ZREM', qkey(h[1]), ARGV[2])
end
return 1
"""

# ARGV: P, workload, new priority
_REPRIORITISE = _PRELUDE + r"""
local ek = ekey(ARGV[2])
local h = redis.call('HMGET', ek, 'priority', 'rank', 'status')
if not h[1] then return 0 end
if h[1] == ARGV[3] then return 1 end
redis.call('HSET', ek, 'priority', ARGV[3])
if h[3] == 'waiting' then
  redis.call('ZREM', qkey(h[1]), ARGV[2])
  redis.call('ZADD', qkey(ARGV[3]), h[2], ARGV[2])
end
return 1
"""

# ARGV: P, workload, target, 'before'|'after'
# -> 1 moved, 0 workload missing/not waiting, -1 target missing/not waiting, -2 same workload
_MOVE = _PRELUDE + r"""
local w, target = ARGV[2], ARGV[3]
if w == target then return -2 end
local wh = redis.call('HMGET', ekey(w), 'priority', 'status')
if not wh[1] or wh[2] ~= 'waiting' then return 0 end
local th = redis.call('HMGET', ekey(target), 'priority', 'status')
if not th[1] or th[2] ~= 'waiting' then return -1 end
local c = th[1]
local qk = qkey(c)
redis.call('ZREM', qkey(wh[1]), w)
local function neighbours()
  local r = redis.call('ZRANK', qk, target)
  local tr = tonumber(redis.call('ZSCORE', qk, target))
  local other = nil
  if ARGV[4] == 'before' then
    if r > 0 then other = tonumber(redis.call('ZRANGE', qk, r - 1, r - 1, 'WITHSCORES')[2]) end
  else
    local nx = redis.call('ZRANGE', qk, r + 1, r + 1, 'WITHSCORES')
    if #nx > 0 then other = tonumber(nx[2]) end
  end
  return tr, other
end
local tr, other = neighbours()
if other ~= nil and math.abs(tr - other) < 1e-6 then
  local all = redis.call('ZRANGE', qk, 0, -1, 'WITHSCORES')
  local count = #all / 2
  local first, last = tonumber(all[2]), tonumber(all[#all])
  local step = 1e-3
  if count > 1 and (last - first) / (count - 1) > step then step = (last - first) / (count - 1) end
  for i = 1, #all, 2 do
    local rank = first + ((i - 1) / 2) * step
    redis.call('ZADD', qk, rank, all[i])
    redis.call('HSET', ekey(all[i]), 'rank', string.format('%.17g', rank))
  end
  tr, other = neighbours()
end
local rank
if other == nil then
  if ARGV[4] == 'before' then rank = tr - 1.0 else rank = tr + 1.0 end
else
  rank = (tr + other) / 2
end
redis.call('ZADD', qk, rank, w)
redis.call('HSET', ekey(w), 'priority', c, 'rank', string.format('%.17g', rank))
return 1
"""


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _entry(h: Mapping[Any, Any]) -> QueueEntry:
    d = {_s(k): _s(v) for k, v in h.items()}
    return QueueEntry(
        workload_id=d["workload_id"], priority=Priority(d["priority"]),
        submitted_at=float(d["submitted_at"]), rank=float(d["rank"]),
        status=QueueStatus(d["status"]), requester=d.get("requester", ""), name=d.get("name", ""),
        resources=json.loads(d.get("resources") or "{}"), attributes=json.loads(d.get("attributes") or "{}"),
    )


class RedisPriorityQueue:
    def __init__(self, redis: Any, prefix: str = "avatar:{sched}:") -> None:
        self._redis = redis
        self.prefix = prefix
        self._enqueue = redis.register_script(_ENQUEUE)
        self._remove = redis.register_script(_REMOVE)
        self._set_status = redis.register_script(_SET_STATUS)
        self._reprioritise = redis.register_script(_REPRIORITISE)
        self._move = redis.register_script(_MOVE)

    def _qkey(self, priority: str) -> str:
        return f"{self.prefix}queue:{priority}"

    def _ekey(self, workload_id: str) -> str:
        return f"{self.prefix}queue:entry:{workload_id}"

    async def enqueue(self, workload_id: str, priority: Priority | str = Priority.NORMAL, *,
                      submitted_at: float | None = None, requester: str = "", name: str = "",
                      resources: Mapping[str, Any] | None = None,
                      attributes: Mapping[str, Any] | None = None, rank: float | None = None) -> bool:
        """Add a waiting entry. Idempotent per workload id: False if it was already known.
        `rank` (default: the submission time) restores an admin-set position, e.g. when the
        queue is rebuilt from the durable record."""
        added = await self._enqueue(keys=[], args=self._enqueue_args(
            workload_id, priority, submitted_at=submitted_at, requester=requester, name=name, resources=resources,
            attributes=attributes, rank=rank))
        return bool(added)

    def _enqueue_args(self, workload_id: str, priority: Priority | str = Priority.NORMAL, *,
                      submitted_at: float | None = None, requester: str = "", name: str = "",
                      resources: Mapping[str, Any] | None = None, attributes: Mapping[str, Any] | None = None,
                      rank: float | None = None) -> list[str]:
        submitted = time.time() if submitted_at is None else float(submitted_at)
        rank = submitted if rank is None else float(rank)
        return [self.prefix, workload_id, Priority(priority).value, repr(rank), repr(submitted),
                requester, name, json.dumps(dict(resources or {})), json.dumps(dict(attributes or {}))]

    async def mirror(self, *, waiting: Sequence[Mapping[str, Any]] = (), running: Sequence[str] = (),
                     gone: Sequence[str] = ()) -> list[str]:
        """Many entries' states in one round trip: each of `waiting` (enqueue's arguments) is enqueued,
        `running` entries leave the order, `gone` ones are removed. Returns the waiting ids that were
        already known (left as they were: the caller looks at their class and status)."""
        if not (waiting or running or gone):
            return []
        pipe = self._redis.pipeline(transaction=False)
        for entry in waiting:
            await self._enqueue(keys=[], args=self._enqueue_args(**entry), client=pipe)
        for workload_id in running:
            await self._set_status(keys=[], args=[self.prefix, workload_id, QueueStatus.RUNNING.value], client=pipe)
        for workload_id in gone:
            await self._remove(keys=[], args=[self.prefix, workload_id], client=pipe)
        results = await pipe.execute()
        return [entry["workload_id"] for entry, added in zip(waiting, results) if not added]

    async def remove(self, workload_id: str) -> bool:
        return bool(await self._remove(keys=[], args=[self.prefix, workload_id]))

    async def set_status(self, workload_id: str, status: QueueStatus | str) -> bool:
        """waiting puts the entry (back) in the order at its rank; anything else takes it out."""
        return bool(await self._set_status(keys=[], args=[self.prefix, workload_id, QueueStatus(status).value]))

    async def reprioritise(self, workload_id: str, priority: Priority | str) -> bool:
        return bool(await self._reprioritise(keys=[], args=[self.prefix, workload_id, Priority(priority).value]))

    async def move(self, workload_id: str, *, before: str | None = None, after: str | None = None) -> bool:
        """Place a waiting workload right before/after another waiting one (taking its class)."""
        if (before is None) == (after is None):
            raise ValueError("give exactly one of before= or after=")
        target, where = (before, "before") if before is not None else (after, "after")
        result = int(await self._move(keys=[], args=[self.prefix, workload_id, target, where]))
        if result == -2:
            raise ValueError("cannot move a workload relative to itself")
        return result == 1

    async def get(self, workload_id: str) -> QueueEntry | None:
        h = await self._redis.hgetall(self._ekey(workload_id))
        return _entry(h) if h else None

    async def count(self) -> int:
        pipe = self._redis.pipeline(transaction=False)
        for p in PRIORITIES:
            pipe.zcard(self._qkey(p))
        return sum(int(x) for x in await pipe.execute())

    async def ordered_ids(self) -> list[str]:
        pipe = self._redis.pipeline(transaction=True)  # MULTI: one consistent view
        for p in PRIORITIES:
            pipe.zrange(self._qkey(p), 0, -1)
        return [_s(w) for ids in await pipe.execute() for w in ids]

    async def list(self, limit: int | None = None) -> list[QueueEntry]:
        """Waiting entries in scheduling order (QU-01/02/05)."""
        ids = await self.ordered_ids()
        return await self._entries(ids[:limit] if limit is not None else ids)

    async def _entries(self, ids: list[str]) -> list[QueueEntry]:
        if not ids:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for w in ids:
            pipe.hgetall(self._ekey(w))
        return [_entry(h) for h in await pipe.execute() if h]

    async def head(self) -> QueueEntry | None:
        for p in PRIORITIES:
            first = await self._redis.zrange(self._qkey(p), 0, 0)
            if first:
                entry = await self.get(_s(first[0]))
                if entry is not None:
                    return entry
        return None

    async def iterate(self, batch: int = 500) -> AsyncIterator[QueueEntry]:
        """Walk the waiting entries in order, `batch` at a time (for large queues)."""
        for p in PRIORITIES:
            start = 0
            while True:
                ids = [_s(w) for w in await self._redis.zrange(self._qkey(p), start, start + batch - 1)]
                if not ids:
                    break
                for entry in await self._entries(ids):
                    yield entry
                start += batch

    async def position(self, workload_id: str) -> int | None:
        """1-based place in the overall order, None if not waiting."""
        entry = await self.get(workload_id)
        if entry is None or entry.status != QueueStatus.WAITING:
            return None
        before = 0
        for p in PRIORITIES:
            if p == entry.priority.value:
                rank = await self._redis.zrank(self._qkey(p), workload_id)
                return None if rank is None else before + int(rank) + 1
            before += int(await self._redis.zcard(self._qkey(p)))
        return None
