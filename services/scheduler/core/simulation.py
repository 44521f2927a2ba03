"""Trace-driven discrete-event simulation of the scheduler loop, reusing policy.decide (pure).

Used by bench/bench_policy.py and the backfill property tests: jobs arrive, the policy
decides at every arrival/completion, started jobs run for their actual runtime (at most
their declared max_runtime) and give their capacity back.
"""
from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from .demand import ComponentDemand, NodeFree
from .inventory import Node
from .policy import Decision, QueuedWorkload, ReadyComponent, RunningAllocation, decide

PRIORITY_ORDER = {"high": 0, "normal": 1, "low": 2}


@dataclass(frozen=True)
class SimJob:
    job_id: str
    submit_at: float
    priority: str
    demand: ComponentDemand
    max_runtime_s: float
    runtime_s: float  # actual; <= max_runtime_s


@dataclass
class SimResult:
    started: dict[str, float] = field(default_factory=dict)
    ended: dict[str, float] = field(default_factory=dict)
    backfilled: set[str] = field(default_factory=set)
    unschedulable: set[str] = field(default_factory=set)
    gpu_seconds_used: float = 0.0
    gpu_total: int = 0
    first_submit: float = 0.0
    last_end: float = 0.0
    decisions: int = 0

    def wait(self, job: SimJob) -> float:
        return self.started[job.job_id] - job.submit_at

    @property
    def makespan(self) -> float:
        return self.last_end - self.first_submit

    @property
    def utilisation(self) -> float:
        """GPU-seconds used / GPU-seconds available from first submission to last completion."""
        span = self.makespan
        return self.gpu_seconds_used / (self.gpu_total * span) if span > 0 and self.gpu_total else 0.0


def simulate(jobs: Sequence[SimJob], nodes: Sequence[Node], *, backfill: bool,
             max_candidates: int | None = None,
             on_decision: Callable[[float, Decision, list[SimJob]], None] | None = None,
             **policy_options: Any) -> SimResult:
    """Run the trace to completion. Queue order: priority class, then submission, then id.
    policy_options go to policy.decide (protected_classes, drain_guard, reserve_horizon_s)."""
    free = {n.name: NodeFree.from_node(n) for n in nodes}
    result = SimResult(gpu_total=sum(n.gpu_total for n in nodes),
                       first_submit=min((j.submit_at for j in jobs), default=0.0))
    by_id = {j.job_id: j for j in jobs}
    arrivals = sorted(jobs, key=lambda j: (j.submit_at, j.job_id))
    completions: list[tuple[float, str]] = []
    running: dict[str, RunningAllocation] = {}
    waiting: list[SimJob] = []
    a = 0
    while a < len(arrivals) or completions or waiting:
        t_next = min(arrivals[a].submit_at if a < len(arrivals) else math.inf,
                     completions[0][0] if completions else math.inf)
        if math.isinf(t_next):
            # nothing will ever change: what is still waiting can never start
            result.unschedulable.update(j.job_id for j in waiting)
            break
        now = t_next
        while completions and completions[0][0] == now:
            _, job_id = heapq.heappop(completions)
            r = running.pop(job_id)
            free[r.node] = free[r.node].adjusted(r.gpu_type, r.gpu_count, r.memory_bytes, r.cpu_millis, +1)
            result.ended[job_id] = now
            result.last_end = max(result.last_end, now)
        while a < len(arrivals) and arrivals[a].submit_at == now:
            waiting.append(arrivals[a])
            a += 1
        waiting.sort(key=lambda j: (PRIORITY_ORDER[j.priority], j.submit_at, j.job_id))
        queue = [QueuedWorkload(j.job_id, (ReadyComponent("main", j.demand),), j.max_runtime_s, j.priority)
                 for j in waiting]
        decision = decide(queue, free.values(), running.values(), now, backfill=backfill,
                          max_candidates=max_candidates, **policy_options)
        result.decisions += 1
        if on_decision is not None:
            on_decision(now, decision, list(waiting))
        started = set()
        for s in decision.starts:
            job = by_id[s.workload_id]
            free[s.node] = free[s.node].take(job.demand, s.gpu_type)
            running[job.job_id] = RunningAllocation(s.node, s.gpu_type, job.demand.gpu_count,
                                                    job.demand.memory_bytes, job.demand.cpu_millis,
                                                    now + job.max_runtime_s)
            heapq.heappush(completions, (now + job.runtime_s, job.job_id))
            result.started[job.job_id] = now
            result.gpu_seconds_used += job.demand.gpu_count * job.runtime_s
            if s.backfilled:
                result.backfilled.add(job.job_id)
            started.add(job.job_id)
        dropped = {w for w, _ in decision.unschedulable}
        if dropped and not running and not completions and a >= len(arrivals):
            result.unschedulable.update(dropped)
            started |= dropped
        waiting = [j for j in waiting if j.job_id not in started]
    return result
