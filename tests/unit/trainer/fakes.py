"""The trainer's unit of work without servers: its tables held in memory, changed as store.py's SQL
changes them (a unit that does not commit leaves them as they were)."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Sequence

from contracts.spec import AppSpec
from contracts.workload import Workload
from services.trainer import domain
from services.trainer.store import Appended
from tests.support.fakes import FakeUnitOfWork, FakeUnitOfWorks


@dataclass
class Row:
    """A training_requests row."""

    workload: Workload
    source: str
    status: str = "waiting"
    last_event_at: datetime | None = None
    cancel_requested_by: str | None = None
    cancel_requested_at: datetime | None = None


@dataclass
class Tables:
    specs: dict[tuple[str, str], AppSpec] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    requests: dict[str, Row] = field(default_factory=dict)
    timelines: dict[str, list[domain.TimelineEntry]] = field(default_factory=dict)

    def latest(self, app_id: str) -> str | None:
        versions = [spec for (app, _), spec in self.specs.items() if app == app_id]
        return max(versions, key=lambda spec: (spec.created_at, spec.version)).version if versions else None


class FakeReadyApps:
    def __init__(self, uow: "FakeTrainerUnitOfWork") -> None:
        self._uow = uow

    async def ready_spec(self, app_id: str, version: str | None, *, fresh: bool = False) -> AppSpec | None:
        key = (app_id, version)
        if not fresh and key in self._uow.cache:  # the process's cache, which may have gone stale
            return self._uow.cache[key]
        tables = self._uow.tables
        spec = None if app_id in tables.deleted else tables.specs.get((app_id, version or tables.latest(app_id) or ""))
        if spec is None:
            self._uow.cache.pop(key, None)
        else:
            self._uow.cache[key] = spec
        return spec

    async def add_spec(self, spec: AppSpec) -> None:
        self._uow.tables.specs.setdefault((spec.app_id, spec.version), spec)

    async def mark_deleted(self, app_id: str) -> None:
        self._uow.tables.deleted.add(app_id)


class FakeTrainingRequests:
    def __init__(self, uow: "FakeTrainerUnitOfWork") -> None:
        self._uow = uow

    def add(self, request: domain.TrainingRequest, requested_version: str | None) -> Callable[[], bool]:
        """The guarded insert: only while the App is ready at the version the workload was built from."""
        self._uow.track(request)
        workload = request.workload
        assert workload is not None

        def insert() -> bool:
            tables = self._uow.tables
            if (workload.app_id in tables.deleted or workload.workload_id in tables.requests
                    or (requested_version or tables.latest(workload.app_id)) != workload.spec_version):
                return False
            tables.requests[workload.workload_id] = Row(workload, source="trainer")
            return True
        return insert

    async def add_published(self, request: domain.TrainingRequest, *, source: str) -> bool:
        assert request.workload is not None
        if request.workload_id in self._uow.tables.requests:
            return False
        self._uow.tables.requests[request.workload_id] = Row(request.workload, source=source)
        self._uow.track(request)
        return True

    async def get(self, workload_id: str) -> domain.TrainingRequest | None:
        row = self._uow.tables.requests.get(workload_id)
        if row is None:
            return None
        status = domain.derive_status(await self._uow.timelines.entries(workload_id))
        return self._uow.track(domain.TrainingRequest(
            workload_id=workload_id, requester=row.workload.requester, status=status,
            cancel_requested_by=row.cancel_requested_by, cancel_requested_at=row.cancel_requested_at))

    async def save_cancel_request(self, request: domain.TrainingRequest) -> None:
        row = self._uow.tables.requests[request.workload_id]
        row.cancel_requested_by, row.cancel_requested_at = request.cancel_requested_by, datetime.now(timezone.utc)
        request.cancel_requested_at = row.cancel_requested_at


class FakeTimelines:
    def __init__(self, uow: "FakeTrainerUnitOfWork") -> None:
        self._uow = uow

    async def append(self, entries: Sequence[tuple[str, domain.TimelineEntry, dict[str, str]]]) -> list[Appended]:
        """store.append: each entry added once; folded by its transitions when it is its workload's latest."""
        workloads = [workload_id for workload_id, _, _ in entries]
        assert len(set(workloads)) == len(workloads), "store.append takes at most one entry per workload"
        tables, results = self._uow.tables, []
        for workload_id, entry, transitions in entries:
            timeline = tables.timelines.setdefault(workload_id, [])
            added = all(item.event_id != entry.event_id for item in timeline)
            if added:
                timeline.append(entry)
            row = tables.requests.get(workload_id)
            previous = row.last_event_at if row else None
            folded = added and row is not None and (previous is None or previous <= entry.occurred_at)
            if folded:
                row.status = transitions.get(row.status, row.status)
                row.last_event_at = entry.occurred_at
            results.append(Appended(added, folded, row is not None, previous if folded else None))
        return results

    async def entries(self, workload_id: str) -> list[domain.TimelineEntry]:
        return sorted(self._uow.tables.timelines.get(workload_id, []), key=lambda entry: entry.occurred_at)

    async def set_status(self, workload_id: str, status: str, last_event_at: datetime | None) -> None:
        row = self._uow.tables.requests[workload_id]
        row.status, row.last_event_at = status, last_event_at


class FakeTrainerUnitOfWork(FakeUnitOfWork):
    def __init__(self, tables: Tables, cache: dict[tuple[str, str | None], AppSpec], published: Any = None, *,
                 cause: Any = None) -> None:
        super().__init__(published, cause=cause, state=tables)
        self.tables = tables
        self.cache = cache
        self.apps = FakeReadyApps(self)
        self.requests = FakeTrainingRequests(self)
        self.timelines = FakeTimelines(self)



def trainer_units(tables: Tables) -> FakeUnitOfWorks:
    """Units over the same tables and the same (process-wide) cache of ready specs."""
    cache: dict[tuple[str, str | None], AppSpec] = {}
    return FakeUnitOfWorks(lambda published, cause=None: FakeTrainerUnitOfWork(tables, cache, published, cause=cause))
