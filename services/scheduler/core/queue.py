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
the hash for display until `remove`. Every mutation is one Lua script (lua/queue/*.lua, read
when the queue is built).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, AsyncIterator, Mapping, Sequence

from .scripts import register_scripts

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
        scripts = register_scripts(redis, "queue", ("enqueue", "remove", "set_status", "reprioritise", "move"))
        self._enqueue = scripts["enqueue"]
        self._remove = scripts["remove"]
        self._set_status = scripts["set_status"]
        self._reprioritise = scripts["reprioritise"]
        self._move = scripts["move"]

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
