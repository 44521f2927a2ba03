"""The scheduler's own Prometheus metrics (the shared saga metrics are in services.kit.metrics)."""
from __future__ import annotations

from prometheus_client import Gauge

from services.kit.metrics import Counter, Histogram

QUEUE_DEPTH = Gauge("avatar_queue_depth", "Workloads waiting in the scheduler queue", ["priority"])
GPUS = Gauge("avatar_gpus", "GPUs by type and state (allocated / idle)", ["gpu_type", "state"])
LEADER = Gauge("avatar_scheduler_leader", "1 while this replica runs the scheduling engine")
RUNS = Counter("avatar_scheduler_runs_total", "Component runs that ended, by outcome", ["outcome"])
RUN_SECONDS = Histogram("avatar_scheduler_run_seconds", "Wall time of one component run",
                        buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 7200, 28800))
PLACEMENTS = Counter("avatar_scheduler_placements_total", "Components placed, in queue order or backfilled", ["how"])
RELEASED = Counter("avatar_scheduler_allocations_released_total",
                   "Allocations given back, by who released them", ["by"])
DECISION_SECONDS = Histogram("avatar_scheduler_decision_seconds", "Time to build the policy input and decide",
                             buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
ITERATION_SECONDS = Histogram("avatar_scheduler_iteration_seconds",
                              "Time of one engine iteration (sync, advance, one scheduling round)",
                              buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
REDIS_REBUILDS = Counter("avatar_scheduler_redis_rebuilds_total", "Times Redis state was rebuilt from PostgreSQL")
LOOP_TESTS = Counter("avatar_scheduler_loop_tests_total", "Loop tests that ended, by outcome", ["outcome"])
ORPHANS_STOPPED = Counter("avatar_scheduler_orphans_stopped_total", "Runner runs stopped because no run owned them")
ADOPTED = Counter("avatar_scheduler_runs_adopted_total",
                  "Live runs a new leader adopted from the runner instead of running them again")
RERUNS = Counter("avatar_scheduler_reruns_total", "Runs started again because they died, by why", ["why"])
DRIFT = Counter("avatar_allocation_drift_total",
                "Disagreements between Redis allocations, PostgreSQL's live runs and the runner, repaired, by kind",
                ["kind"])
