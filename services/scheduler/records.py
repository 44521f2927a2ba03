"""What the scheduler's tables hold, as typed records: store.py returns these, never raw rows.

A record is a snapshot of one row when it was read; a state change goes through the `Job`
aggregate (domain.py) and the guarded SQL in store.py, which hands back the row as it then is.
"""
from __future__ import annotations

from dataclasses import MISSING, dataclass, fields
from datetime import datetime
from typing import Any, Mapping

_LAYOUT: dict[type, tuple[tuple[str, ...], dict[str, Any]]] = {}


def _from_row(cls: Any, row: Mapping[str, Any]) -> Any:
    """The record of a row, by column name. The engine reads every live job and run each round, and a
    frozen dataclass's __init__ costs a setattr per field: the fields are set at once instead."""
    layout = _LAYOUT.get(cls)
    if layout is None:
        layout = _LAYOUT[cls] = (tuple(f.name for f in fields(cls)),
                                 {f.name: f.default for f in fields(cls) if f.default is not MISSING})
    names, defaults = layout
    try:
        values = {name: row[name] for name in names}
    except KeyError:  # a partial row (a test's): the defaults fill in
        values = {**defaults, **{name: row[name] for name in names if name in row}}
        missing = [name for name in names if name not in values]
        if missing:
            raise KeyError(f"{cls.__name__} needs the columns {', '.join(missing)}") from None
    record = object.__new__(cls)
    record.__dict__.update(values)
    return record


@dataclass(frozen=True)
class JobRecord:
    """A row of `jobs`: a workload run or a loop test of a workload."""

    job_id: str
    kind: str  # "workload" | "looptest"
    workload_id: str
    status: str
    workload: dict[str, Any] | None = None  # the wire Workload; None only for a cancel that came first
    test_run_id: str | None = None
    mode: str | None = None
    rounds: int = 1
    episodes: int | None = None
    priority: str = "normal"
    queue_rank: float = 0.0
    requester: str = ""
    name: str = ""
    outcome: str | None = None
    submitted_at: datetime | None = None
    queued_at: datetime | None = None
    started_at: datetime | None = None
    deadline: datetime | None = None
    finished_at: datetime | None = None
    max_runtime_s: int = 7200
    failure_stage: str | None = None
    failure_reason: str | None = None
    failure_component: str | None = None
    cancelled_by: str | None = None
    was_running: bool = False
    trace_headers: dict[str, Any] | None = None
    redis_synced: bool = False
    updated_at: datetime | None = None

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> "JobRecord":
        return _from_row(cls, row)


@dataclass(frozen=True)
class RunRecord:
    """A row of `runs`: one execution of one component of a job (per round, for a general loop test)."""

    run_id: str
    job_id: str
    task_id: str
    component_id: str
    name: str
    output_prefix: str = ""
    round: int = 1
    seq: int = 1
    status: str = "pending"
    attempt: int = 0
    allocation_id: str | None = None
    node: str | None = None
    gpu_type: str | None = None
    gpu_indices: tuple[int, ...] | list[int] = ()
    memory_bytes: int = 0
    cpu_millis: int = 0
    runner_ref: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    exit_code: int | None = None
    last_line: str | None = None
    reason: str | None = None
    log_url: str | None = None
    metrics: dict[str, Any] | None = None
    rerun_reason: str | None = None  # why its earlier attempts died, oldest first (None: never rerun)

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> "RunRecord":
        return _from_row(cls, row)
