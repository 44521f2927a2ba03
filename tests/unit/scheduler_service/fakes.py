"""The scheduler's handler tier without servers: in-memory jobs and runs behind the same repository
interface as services/scheduler/unit_of_work.py, with the same guards as its SQL; a queue and an
allocator that only remember what they were asked; builders for workloads and loop-test requests."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Mapping, Sequence

from contracts.events import ComponentSnapshot, Event, LoopTestRequested, make_event
from contracts.resources import Resources
from contracts.spec import AppSpec, ImageRef, SpecComponent, SpecTask, WorkflowEdge
from contracts.workload import RequestedResources, Workload
from services.kit.messagebus import MessageBus
from services.scheduler import handlers
from services.scheduler.core.queue import Priority, QueueEntry, QueueStatus
from services.scheduler.domain import Job
from services.scheduler.records import JobRecord, RunRecord
from services.scheduler.settings import SchedulerSettings
from tests.support.fakes import FakeUnitOfWork, FakeUnitOfWorks

T0 = datetime(2026, 2, 9, 9, 0, tzinfo=timezone.utc)
NOW = T0 + timedelta(hours=1)


# ---------------------------------------------------------------- builders

def component(component_id: str, *, gpus: int = 0) -> SpecComponent:
    return SpecComponent(component_id=component_id, name=component_id.lower(), image=ImageRef(registry="r", tag="1"),
                         resources=Resources(gpu_type="A100", gpu_count=gpus, memory="1GB"))


def workload(workload_id: str = "WL-1", *components: SpecComponent, requester: str = "kim",
             priority: str = "normal", edges: Sequence[tuple[str, str]] = ()) -> Workload:
    tasks = [SpecTask(task_id="T1", name="t", components=list(components),
                      workflow=[WorkflowEdge(from_=a, to=b) for a, b in edges])] if components else []
    spec = AppSpec(app_id="APP-1", name="app", version="1", created_at=T0, tasks=tasks)
    return Workload(workload_id=workload_id, app_id="APP-1", spec_version="1", requester=requester,
                    priority=priority, submitted_at=T0, resources=RequestedResources(gpu_type="A100", gpu_count=1, memory="1GB"), spec=spec)


def looptest(workload_: Workload, *, test_run_id: str = "TR-1", mode: str = "general",
             episodes: int = 2) -> LoopTestRequested:
    return LoopTestRequested(workload_id=workload_.workload_id, test_run_id=test_run_id, mode=mode,
                             episodes=episodes, requested_by="approver", workload=workload_)


def event(event_type: str, data: Any, workload_id: str = "WL-1") -> Event:
    return make_event(event_type, data, producer="test", correlation_id=workload_id)


def snapshot_of(name: str) -> ComponentSnapshot:
    return ComponentSnapshot(component_id=name, name=name.lower(), image=ImageRef(registry="r", tag="2"),
                             version="2", type="trainer", resources=Resources(gpu_type="A100", gpu_count=0, memory="1GB"),
                             command=["python", "x"])


# ---------------------------------------------------------------- state

@dataclass
class Tables:
    """What PostgreSQL would hold."""

    jobs: dict[str, JobRecord] = field(default_factory=dict)
    runs: dict[str, list[RunRecord]] = field(default_factory=dict)
    components: dict[str, ComponentSnapshot] = field(default_factory=dict)
    node_overrides: dict[str, tuple[str, str]] = field(default_factory=dict)
    queue_positions: dict[str, tuple[str, float]] = field(default_factory=dict)

    def copy(self) -> "Tables":
        return Tables(dict(self.jobs), {k: list(v) for k, v in self.runs.items()}, dict(self.components),
                      dict(self.node_overrides), dict(self.queue_positions))

    def put(self, job: JobRecord, runs: Iterable[RunRecord] = ()) -> JobRecord:
        """A job as an earlier change left it (a test's starting point)."""
        self.jobs[job.job_id] = job
        self.runs.setdefault(job.job_id, []).extend(runs)
        return job


class FakeJobRepository:
    """The real repository's interface and guards, over `Tables`."""

    def __init__(self, tables: Tables) -> None:
        self.t = tables

    async def get(self, job_id: str, *, lock: bool = False) -> Job | None:
        record = self.t.jobs.get(job_id)
        return None if record is None else Job(record)

    async def looptests_of(self, workload_id: str) -> list[Job]:
        return [Job(r) for r in self.t.jobs.values() if r.workload_id == workload_id and r.kind == "looptest"]

    async def runs_of(self, job_ids: Sequence[str]) -> dict[str, list[RunRecord]]:
        return {job_id: list(self.t.runs.get(job_id, [])) for job_id in job_ids}

    async def component_types(self, component_ids: Sequence[str]) -> dict[str, str]:
        return {c: self.t.components[c].type for c in component_ids if c in self.t.components}

    async def add(self, job: Job) -> bool:
        if job.job_id in self.t.jobs:
            job.events.clear()
            return False
        self.t.jobs[job.job_id] = replace(job.state, queued_at=NOW,
                                          finished_at=NOW if job.status in ("completed", "failed", "cancelled") else None)
        self.t.runs[job.job_id] = [RunRecord(run_id=p.run_id, job_id=job.job_id, round=p.round, seq=p.seq,
                                             task_id=p.task_id, component_id=p.component_id, name=p.name,
                                             output_prefix=p.output_prefix) for p in job.planned]
        return True

    async def approve_after_cancel(self, job: Job) -> bool:
        return self._guarded(job, lambda stored: stored.workload is None, job.state)

    async def cancel_waiting(self, job: Job) -> bool:
        return self._guarded(job, lambda stored: stored.status == "waiting", replace(job.state, finished_at=NOW))

    async def begin_stopping(self, job: Job) -> bool:
        return self._guarded(job, lambda stored: stored.status in ("waiting", "running"), job.state)

    async def finish(self, job: Job) -> bool:
        return self._guarded(job, lambda stored: stored.status == "stopping", replace(job.state, finished_at=NOW))

    async def skip_pending(self, job: Job) -> list[RunRecord]:
        await self.skip_round(job.job_id, None, job.state.failure_reason)
        return list(self.t.runs[job.job_id])

    async def skip_round(self, job_id: str, round_: int | None, reason: str | None) -> int:
        runs = self.t.runs.get(job_id, [])
        skipped = 0
        for i, run in enumerate(runs):
            if run.status == "pending" and (round_ is None or run.round == round_):
                runs[i] = replace(run, status="skipped", reason=run.reason or reason, finished_at=NOW)
                skipped += 1
        return skipped

    def _guarded(self, job: Job, guard: Any, new: JobRecord) -> bool:
        stored = self.t.jobs.get(job.job_id)
        if stored is None or not guard(stored):
            job.events.clear()
            return False
        self.t.jobs[job.job_id] = new
        job.refresh(new)
        return True


class FakeTables:
    def __init__(self, tables: Tables) -> None:
        self.t = tables

    async def set_queue_positions(self, positions: Iterable[tuple[str, str, float]]) -> None:
        for job_id, priority, rank in positions:
            if self.t.jobs.get(job_id) is not None and self.t.jobs[job_id].status == "waiting":
                self.t.queue_positions[job_id] = (priority, rank)

    async def record_component(self, snapshot: ComponentSnapshot, published_at: datetime) -> None:
        self.t.components[snapshot.component_id] = snapshot  # the latest heard of (the type is what is read)

    async def set_node_override(self, name: str, status: str, set_by: str) -> None:
        self.t.node_overrides[name] = (status, set_by)


class FakeSchedulerUnitOfWork(FakeUnitOfWork):
    """One unit over the shared `Tables`: what it changed is undone when it ends without committing."""

    def __init__(self, tables: Tables, published: list, *, cause: Event | None = None) -> None:
        super().__init__(published, cause=cause)
        self.tables_state = tables
        self.jobs = FakeJobRepository(tables)
        self.tables = FakeTables(tables)
        self.woken = 0
        self._before: Tables | None = None

    async def __aenter__(self) -> "FakeSchedulerUnitOfWork":
        await super().__aenter__()
        self._before = self.tables_state.copy()
        return self

    def rollback(self) -> None:
        if self._before is not None:
            before = self._before
            self.tables_state.__dict__.update(before.__dict__)

    def wake_engine(self) -> None:
        self.after_commit(self._woken)

    def _woken(self) -> None:
        self.woken += 1

    def now(self) -> datetime:
        return NOW


# ---------------------------------------------------------------- queue and allocator

class FakeQueue:
    """The Redis queue as the handlers use it: entries in order, per priority class."""

    def __init__(self, *workload_ids: str) -> None:
        self.entries = [QueueEntry(workload_id=w, priority=Priority.NORMAL, rank=float(i), submitted_at=0.0,
                                   requester="kim", name=w, resources={}, attributes={}, status=QueueStatus.WAITING)
                        for i, w in enumerate(workload_ids)]
        self.removed: list[str] = []

    async def remove(self, workload_id: str) -> None:
        self.removed.append(workload_id)
        self.entries = [e for e in self.entries if e.workload_id != workload_id]

    async def reprioritise(self, workload_id: str, priority: str) -> bool:
        found = [e for e in self.entries if e.workload_id == workload_id]
        self.entries = [replace(e, priority=Priority(priority)) if e.workload_id == workload_id else e
                        for e in self.entries]
        return bool(found)

    async def move(self, workload_id: str, *, before: str | None = None, after: str | None = None) -> bool:
        moving = next((e for e in self.entries if e.workload_id == workload_id), None)
        target = before or after
        if moving is None or target not in {e.workload_id for e in self.entries}:
            return False
        rest = [e for e in self.entries if e.workload_id != workload_id]
        at = next(i for i, e in enumerate(rest) if e.workload_id == target) + (1 if after else 0)
        rest.insert(at, moving)
        self.entries = [replace(e, rank=float(i)) for i, e in enumerate(rest)]
        return True

    async def list(self, limit: int | None = None) -> list[QueueEntry]:
        return list(self.entries)


@dataclass
class FakeNode:
    name: str
    status: str = "Active"


@dataclass
class FakeSnapshot:
    nodes: list[FakeNode]


class FakeAllocator:
    def __init__(self, *nodes: str) -> None:
        self.nodes = [FakeNode(n) for n in nodes]
        self.statuses: dict[str, str] = {}

    async def snapshot(self) -> FakeSnapshot:
        return FakeSnapshot(self.nodes)

    async def set_node_status(self, name: str, status: str) -> None:
        self.statuses[name] = status


# ---------------------------------------------------------------- the bus

@dataclass
class Harness:
    tables: Tables
    uows: FakeUnitOfWorks
    queue: FakeQueue
    allocator: FakeAllocator
    bus: MessageBus
    synced: list[bool]

    def published(self, event_type: str | None = None) -> list[Any]:
        return [e for e in self.uows.published if event_type is None or e.type == event_type]

    def types(self) -> list[str]:
        return self.uows.types()

    @property
    def woken(self) -> int:
        return sum(uow.woken for uow in self.uows.made)


def harness(queue: FakeQueue | None = None, allocator: FakeAllocator | None = None,
            settings: Mapping[str, Any] | None = None) -> Harness:
    tables = Tables()
    uows = FakeUnitOfWorks(lambda published, cause=None: FakeSchedulerUnitOfWork(tables, published, cause=cause))
    queue = queue or FakeQueue()
    allocator = allocator or FakeAllocator("node-a")
    synced: list[bool] = []

    async def sync_queue() -> None:
        synced.append(True)

    bus = MessageBus(uows, commands=handlers.COMMANDS, events=handlers.EVENTS,  # type: ignore[arg-type]
                     dependencies={"settings": SchedulerSettings(**(settings or {})), "queue": queue,
                                   "allocator": allocator, "sync_queue": sync_queue})
    return Harness(tables, uows, queue, allocator, bus, synced)
