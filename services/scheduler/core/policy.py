"""Which ready components to start now: strict priority order with EASY backfill and
high-priority guards (pure).

decide() takes the queue in scheduling order (each workload with its ready components, those
whose DAG predecessors are done, and `max_runtime_s`, the longest a component may still run),
the free capacity of every node, the running allocations with their expected ends, and `now`;
it returns the components to start, each on one node, and the reservation of the blocked head.
Call it again whenever capacity or the queue changes.

Rules (the code cites them by number):
1. Start components in queue order while they fit (best fit, demand.py).
2. The first one that does not fit is the head. Its reservation is its shadow time T: the
   earliest time it fits on one node as running work ends by its expected end. A component
   that would not fit even once all that work has ended is unschedulable and holds nothing up.
3. EASY backfill (Lifka; Slurm's sched/backfill): a later component may start now if it fits
   now and either ends by T or leaves the head room to fit at T on the node it uses; candidate
   nodes are tried best fit first.
4. Nothing running is preempted; only the head gets a reservation.
5. Protected classes (`protected_classes`, default "high"; `drain_guard`) only ever remove
   backfill candidates: (a) while a protected component is blocked, only protected work
   backfills; (b) backfilled unprotected work must end by its node's drain time (the latest
   expected end of the work on it, `now` if idle); (c) so must backfilled protected work on
   every node where a blocked protected component could ever run.
6. Spare nodes per GPU class (type, memory per GPU), with backfill on and horizon
   H = `reserve_horizon_s` (None turns the rule off): (a) level k of `spare_levels` wants k
   nodes of the class drained by now + H x spare_levels[k-1], in classes of more than k nodes;
   (b) an unprotected component may not start where it would end after both now + H and the
   node's drain time if that makes a level fall short or one is short already: it is skipped,
   without a reservation; (c) with `whole_node_spare`, protected work obeys (b) too, except a
   component that needs a whole node of the class or one that could start nowhere (b) allows
   within `spare_hold_s`; one held by (b) keeps lower classes out as a blocked one does (5a),
   without a reservation, and protected work tries non-spare nodes first.

Guarantees, by the declared runtimes: (i) backfill never delays the head: it starts at T, when
it would start with no backfill; when work ends early it starts no later than T and its
reservation never moves later; (ii) unprotected starts never make a level of a class fall
short, and in a class with a level short they move no drain time past max(drain time, now + H),
so a protected component that needs a whole node of a class starts within H of its arrival and
a second one within spare_levels[1] x H (classes of more than two nodes), unless protected work
queued ahead of it for the class, or whole-node protected work (or small protected work that
could start nowhere else within spare_hold_s) started since, takes those nodes;
(iii) a protected component held off the spare nodes by 6c waits at most about spare_hold_s
for the capacity it was held for, unless protected work ahead of it takes it first. (i) and
(ii) are property-tested in tests/unit/scheduler/test_core_policy.py. None of this is a per-job
promise against strict priority (`backfill=False`): the two schedules diverge. How the defaults
compare with strict priority and plain EASY on the benchmark traces, and what they cost in
utilisation, is in bench/RESULTS.md (bench_policy). `max_candidates` bounds how many components
after the head one call examines (like Slurm's bf_max_job_test).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Collection, Iterable, Protocol, Sequence

from .demand import ComponentDemand, NodeFree, Placement, placement_on
from .inventory import NodeStatus

DEFAULT_RESERVE_HORIZON_S = 3 * 3600.0  # rule 6; chosen with bench/bench_policy.py (bench/RESULTS.md)
DEFAULT_SPARE_LEVELS = (1.0, 1.5)  # rule 6a: 1 node by 3 h, 2 nodes by 4.5 h
DEFAULT_SPARE_HOLD_S = 3600.0  # rule 6c


@dataclass(frozen=True)
class ReadyComponent:
    component_id: str
    demand: ComponentDemand


@dataclass(frozen=True)
class QueuedWorkload:
    workload_id: str
    ready: tuple[ReadyComponent, ...]
    max_runtime_s: float
    priority: str = "normal"  # order comes from the sequence; the class feeds rule 5


class RunningLike(Protocol):
    node: str
    gpu_type: str | None
    gpu_count: int
    memory_bytes: int
    cpu_millis: int
    expected_end: float | None  # None = unknown: never assumed to end


@dataclass(frozen=True)
class RunningAllocation:
    node: str
    gpu_type: str | None
    gpu_count: int
    memory_bytes: int
    cpu_millis: int
    expected_end: float | None


@dataclass(frozen=True)
class Start:
    workload_id: str
    component_id: str
    node: str
    gpu_type: str | None
    expected_end: float
    backfilled: bool


@dataclass(frozen=True)
class Reservation:
    workload_id: str
    component_id: str
    start_at: float
    node: str
    gpu_type: str | None


@dataclass(frozen=True)
class Decision:
    starts: tuple[Start, ...]
    reservation: Reservation | None
    unschedulable: tuple[tuple[str, str], ...]  # (workload_id, component_id)


class _Capacity:
    """Free state of the Active nodes, with nodes indexed by GPU class (type, memory per GPU)
    so a component is only tried on nodes that have enough free GPUs of a class it accepts."""

    def __init__(self, nodes: Iterable[NodeFree]) -> None:
        self.nodes = {n.name: n for n in nodes if n.status == NodeStatus.ACTIVE}
        self.by_class: dict[tuple[str, int], dict[str, int]] = {}
        for n in self.nodes.values():
            for t, g in n.gpus.items():
                self.by_class.setdefault((t, g.memory_per_gpu_bytes), {})[n.name] = g.free

    def placements(self, d: ComponentDemand) -> list[Placement]:
        """Every node where the demand fits now, best fit first."""
        if d.gpu_count == 0:
            names: Iterable[str] = self.nodes
        else:
            names = {name for (t, mem), frees in self.by_class.items() if d.accepts(t, mem)
                     for name, free in frees.items() if free >= d.gpu_count}
        return sorted(p for p in (placement_on(self.nodes[n], d) for n in names) if p is not None)

    def take(self, node: str, d: ComponentDemand, gpu_type: str | None) -> None:
        self.nodes[node] = taken = self.nodes[node].take(d, gpu_type)
        if gpu_type is not None:
            pool = taken.gpus[gpu_type]
            self.by_class[(gpu_type, pool.memory_per_gpu_bytes)][node] = pool.free


def _end(r: RunningLike, now: float) -> float:
    if r.expected_end is None:
        return math.inf
    return max(float(r.expected_end), now)  # overdue work is assumed to end any moment


def _reserve(demand: ComponentDemand, free: dict[str, NodeFree],
             releases: list[tuple[float, str, RunningLike]]) -> tuple[float, Placement, dict[str, NodeFree]] | None:
    """Earliest time the demand fits on one node as running work ends, with that state."""
    state = dict(free)
    events = sorted((e for e in releases if e[1] in state and math.isfinite(e[0])), key=lambda e: e[0])
    i = 0
    while i < len(events):
        t = events[i][0]
        changed = set()
        while i < len(events) and events[i][0] == t:
            _, node, r = events[i]
            state[node] = state[node].adjusted(r.gpu_type, r.gpu_count, r.memory_bytes, r.cpu_millis, +1)
            changed.add(node)
            i += 1
        found = [p for p in (placement_on(state[n], demand) for n in changed) if p is not None]
        if found:
            return t, min(found), state
    return None


def _after_all(free: dict[str, NodeFree], releases: list[tuple[float, str, RunningLike]]) -> dict[str, NodeFree]:
    state = dict(free)
    for end, node, r in releases:
        if node in state and math.isfinite(end):
            state[node] = state[node].adjusted(r.gpu_type, r.gpu_count, r.memory_bytes, r.cpu_millis, +1)
    return state


def decide(queue: Sequence[QueuedWorkload], nodes: Iterable[NodeFree], running: Iterable[RunningLike],
           now: float, *, backfill: bool = True, max_candidates: int | None = 1000,
           protected_classes: Collection[str] = ("high",), drain_guard: bool = True,
           reserve_horizon_s: float | None = DEFAULT_RESERVE_HORIZON_S,
           spare_levels: Sequence[float] = DEFAULT_SPARE_LEVELS, whole_node_spare: bool = True,
           spare_hold_s: float | None = DEFAULT_SPARE_HOLD_S) -> Decision:
    """Components to start now (see the module docstring). backfill=False is strict
    priority; protected_classes=(), drain_guard=False, reserve_horizon_s=None is plain EASY;
    spare_levels=(1.0,), whole_node_spare=False keeps one spare node per class that any
    protected work may take."""
    cap = _Capacity(nodes)
    releases: list[tuple[float, str, RunningLike]] = [(_end(r, now), r.node, r) for r in running]
    drain: dict[str, float] = {}  # node -> latest expected end of the work on it (now if idle)
    for end, node, _ in releases:
        drain[node] = max(drain.get(node, now), end)
    reserve = _Reserve(cap.nodes, drain, now, reserve_horizon_s, spare_levels,
                       _after_all(cap.nodes, releases) if whole_node_spare else None) \
        if backfill and reserve_horizon_s is not None else None
    protected_blocked = False
    guarded: set[str] = set()  # nodes some blocked protected component could use (rule 5c)
    hosts_seen: set[ComponentDemand] = set()
    starts: list[Start] = []
    unschedulable: list[tuple[str, str]] = []

    head: tuple[QueuedWorkload, ReadyComponent] | None = None
    shadow_time = math.inf
    shadow: dict[str, NodeFree] = {}
    head_fits_on: set[str] = set()
    eventual: dict[str, NodeFree] | None = None
    examined = 0

    def start(w: QueuedWorkload, c: ReadyComponent, p: Placement, backfilled: bool) -> None:
        end = now + w.max_runtime_s
        cap.take(p.node, c.demand, p.gpu_type)
        releases.append((end, p.node, RunningAllocation(p.node, p.gpu_type, c.demand.gpu_count,
                                                        c.demand.memory_bytes, c.demand.cpu_millis, end)))
        starts.append(Start(w.workload_id, c.component_id, p.node, p.gpu_type, end, backfilled))
        if reserve is not None:
            reserve.extend(p.node, end)
        drain[p.node] = max(drain.get(p.node, now), end)

    def guard_hosts(demand: ComponentDemand) -> bool:
        """Mark the nodes a blocked protected demand could ever use; False if there are none."""
        nonlocal eventual
        if eventual is None:  # capacity once all work with a known end is over
            eventual = _after_all(cap.nodes, releases)
        if demand in hosts_seen:
            return True
        hosts = {n for n, st in eventual.items() if placement_on(st, demand) is not None}
        if hosts:
            hosts_seen.add(demand)
            guarded.update(hosts)
        return bool(hosts)

    elsewhere: dict[tuple[ComponentDemand, float], bool] = {}

    def may_take_spare(p: Placement, demand: ComponentDemand, end: float) -> bool:
        """Rule 6c: may a protected component take a spare node past the first horizon?"""
        if not whole_node_spare or reserve is None or reserve.whole(p, demand):
            return True
        if spare_hold_s is None:
            return False
        key = (demand, end)
        if key not in elsewhere:  # can it start on a node rule 6 allows within spare_hold_s?
            allowed = {n: st for n, st in cap.nodes.items() if reserve.allows(n, end)}
            r = _reserve(demand, allowed, releases) if allowed else None
            elsewhere[key] = r is not None and r[0] <= now + spare_hold_s
        return not elsewhere[key]

    for w in queue:
        protected = w.priority in protected_classes
        end = now + w.max_runtime_s
        for c in w.ready:
            if head is None:
                if not protected and protected_blocked:
                    continue
                found = cap.placements(c.demand)
                if reserve is not None and found:
                    ok = [p for p in found if reserve.allows(p.node, end)]
                    if not protected:
                        if not ok:
                            continue  # rule 6: it would take the class's last spare node
                        found = ok
                    else:  # protected work may use the spare node, but prefers any other
                        found = ok + [p for p in found if p not in ok and may_take_spare(p, c.demand, end)]
                        if not found:  # held by rule 6: lower classes stay out (rule 5a)
                            protected_blocked = True
                            if drain_guard:
                                guard_hosts(c.demand)
                            continue
                if found:
                    start(w, c, found[0], backfilled=False)
                    continue
                reservation = _reserve(c.demand, cap.nodes, releases)
                if reservation is None:
                    unschedulable.append((w.workload_id, c.component_id))
                    continue
                head = (w, c)
                shadow_time, _, shadow = reservation
                head_fits_on = {n for n, s in shadow.items() if placement_on(s, c.demand) is not None}
                if not backfill:
                    return _decision(starts, head, shadow_time, shadow, unschedulable)
                if protected:
                    protected_blocked = True
                    if drain_guard:
                        guard_hosts(c.demand)
                continue

            examined += 1
            if max_candidates is not None and examined > max_candidates:
                return _decision(starts, head, shadow_time, shadow, unschedulable)
            if not protected and protected_blocked:
                continue
            placed = False
            found = cap.placements(c.demand)
            if reserve is not None and len(found) > 1:
                ok = [p for p in found if reserve.allows(p.node, end)]
                found = ok + [p for p in found if p not in ok]
            for p in found:
                if drain_guard and (not protected or p.node in guarded) and end > drain.get(p.node, now):
                    continue
                if reserve is not None and not reserve.allows(p.node, end) and (
                        not protected or not may_take_spare(p, c.demand, end)):
                    continue
                if end <= shadow_time:
                    placed = True
                    start(w, c, p, backfilled=True)
                    break
                after = shadow[p.node].take(c.demand, p.gpu_type)
                if head_fits_on - {p.node} or placement_on(after, head[1].demand) is not None:
                    shadow[p.node] = after
                    if placement_on(after, head[1].demand) is None:
                        head_fits_on.discard(p.node)
                    start(w, c, p, backfilled=True)
                    placed = True
                    break
            if protected and not placed and (drain_guard or not protected_blocked):
                protected_blocked = guard_hosts(c.demand) or protected_blocked
    return _decision(starts, head, shadow_time, shadow, unschedulable)


class _Reserve:
    """Rule 6: per GPU class (type, memory per GPU) and level k, the count of nodes whose drain
    time is <= now + reserve_horizon_s x spare_levels[k-1]; level k wants k nodes. With
    `eventual` (rule 6c), the most GPUs of each class on one node once known work ends."""

    def __init__(self, nodes: dict[str, NodeFree], drain: dict[str, float], now: float,
                 horizon_s: float, levels: Sequence[float] = (1.0,),
                 eventual: dict[str, NodeFree] | None = None) -> None:
        self.now, self.drain = now, drain
        self.class_gpus: dict[tuple[str, int], int] = {}  # most GPUs of the class on one node
        for n in (eventual or {}).values():
            for t, g in n.gpus.items():
                key = (t, g.memory_per_gpu_bytes)
                self.class_gpus[key] = max(self.class_gpus.get(key, 0), g.free)
        self.horizons = [now + horizon_s * f for f in levels]
        self.horizon = self.horizons[0]
        members: dict[tuple[str, int], list[str]] = {}
        self.nodes_mem: dict[tuple[str, str], int] = {}
        for n in nodes.values():
            for t, g in n.gpus.items():
                members.setdefault((t, g.memory_per_gpu_bytes), []).append(n.name)
                self.nodes_mem[(n.name, t)] = g.memory_per_gpu_bytes
        # a class of one node is not guarded: it could then never take long work
        self.classes: dict[str, list[tuple[str, int]]] = {}
        self.within: dict[tuple[str, int], list[int]] = {}
        for key, names in members.items():
            if len(names) < 2:
                continue
            # level k applies to classes of more than k nodes (one node always stays usable)
            self.within[key] = [sum(1 for n in names if drain.get(n, now) <= h)
                                for h in self.horizons[:len(names) - 1]]
            for n in names:
                self.classes.setdefault(n, []).append(key)

    def allows(self, node: str, end: float) -> bool:
        d = self.drain.get(node, self.now)
        if end <= d or end <= self.horizon:
            return True  # the node's drain time does not move past the first horizon
        for key in self.classes.get(node, ()):
            within = self.within[key]
            for k, h in zip(range(len(within)), self.horizons):
                if within[k] < k + 1:  # level short already: extend no drain time in the class
                    return False
                if d <= h < end and within[k] < k + 2:  # the node would stop counting
                    return False
        return True

    def whole(self, p: Placement, demand: ComponentDemand) -> bool:
        """The demand needs a whole node of the class it would use here."""
        if p.gpu_type is None:
            return False
        mem = self.nodes_mem.get((p.node, p.gpu_type))
        return demand.gpu_count >= self.class_gpus.get((p.gpu_type, mem), math.inf)

    def extend(self, node: str, end: float) -> None:
        d = self.drain.get(node, self.now)
        for key in self.classes.get(node, ()):
            within = self.within[key]
            for k, h in zip(range(len(within)), self.horizons):
                if d <= h < end:
                    within[k] -= 1


def _decision(starts: list[Start], head: tuple[QueuedWorkload, ReadyComponent] | None, shadow_time: float,
              shadow: dict[str, NodeFree], unschedulable: list[tuple[str, str]]) -> Decision:
    reservation = None
    if head is not None:
        w, c = head
        found = [p for p in (placement_on(s, c.demand) for s in shadow.values()) if p is not None]
        p = min(found)  # the head fits at shadow_time by construction
        reservation = Reservation(w.workload_id, c.component_id, shadow_time, p.node, p.gpu_type)
    return Decision(tuple(starts), reservation, tuple(unschedulable))
