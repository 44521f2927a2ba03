"""The scheduling engine: one level-triggered loop that drives every job from PostgreSQL state.

Every change it makes to a job goes through the `Job` aggregate and a unit of work (its events
reach the outbox on commit, each a child of its job's span).

Only the leader replica (PostgreSQL advisory lock, leader.py) runs it; any replica consumes
events and serves HTTP.

| module | what it does |
|---|---|
| `loop.py` | `Engine`: wires the parts; lead (recover, then the loops), stand down, one iteration |
| `context.py` | the adapters the parts drive, and the runs this leader watches |
| `recovery.py` | Redis state rebuilt from PostgreSQL and the runner; the queue mirror |
| `jobs.py` | deadlines, failures, completion, rounds; finishers (compensation, terminal event) |
| `starts.py` | one scheduling round: `decide()`, claim, allocate, record, launch |
| `watcher.py` | one task per run: its log, end, metrics, log upload, allocation release |
| `reconciler.py` | lease renewal, allocations and runner runs nobody owns |
| `usage.py` | measured usage of the watched runs, into Redis |
| `telemetry.py` | job spans and metrics |
"""
from services.scheduler.engine.context import NodeSource
from services.scheduler.engine.loop import Engine

__all__ = ["Engine", "NodeSource"]
