"""The trainer's unit of work and its repositories (thin, over store.py's SQL)."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Callable, Sequence

import asyncpg

from contracts.events import Event
from contracts.spec import AppSpec
from contracts.workload import Workload
from services.kit.outbox import Outbox
from services.kit.secrets import SecretValues
from services.kit.unit_of_work import Statement, UnitOfWork
from services.trainer import domain, store
from services.trainer.specs import ReadySpecs


class ReadyApps:
    """The ready-apps read model: the specs a submission is built from."""

    def __init__(self, conn: asyncpg.Connection, specs: ReadySpecs) -> None:
        self._conn = conn
        self._specs = specs

    async def ready_spec(self, app_id: str, version: str | None, *, fresh: bool = False) -> AppSpec | None:
        """The spec of `version` (None: the latest) of a ready App; None when it is not ready at that version.
        Not `fresh`, it may come from the process's cache (the submit statement re-checks it)."""
        return await self._specs.find(self._conn, app_id, version, fresh=fresh)

    async def add_spec(self, spec: AppSpec) -> None:
        await store.record_spec(self._conn, spec)

    async def mark_deleted(self, app_id: str) -> None:
        await store.record_deleted(self._conn, app_id)


class TrainingRequests:
    """Training requests; those added or loaded are tracked, so what they record goes out on commit."""

    def __init__(self, conn: asyncpg.Connection, track: Callable[[Any], Any]) -> None:
        self._conn = conn
        self._track = track

    def add(self, request: domain.TrainingRequest, requested_version: str | None) -> Statement:
        """The guarded insert of a request submitted here (for `commit_guarded`)."""
        assert request.workload is not None
        self._track(request)
        return store.submitted_request(request.workload, requested_version)

    async def add_published(self, request: domain.TrainingRequest, *, source: str) -> bool:
        """Record a request another system published (accepted or refused); False when its workload id was
        already known. An accepted one's `training.requested` goes out on commit."""
        assert request.workload is not None
        if not await store.insert_request(self._conn, request.workload, source=source):
            return False
        self._track(request)
        return True

    async def get(self, workload_id: str) -> domain.TrainingRequest | None:
        """The request, locked with its timeline for the rest of the unit, its status folded from it."""
        await store.lock_workload(self._conn, workload_id)
        row = await store.find_request(self._conn, workload_id, for_update=True)
        if row is None:
            return None
        status = domain.derive_status(await store.timeline(self._conn, workload_id))
        return self._track(domain.TrainingRequest(
            workload_id=workload_id, requester=row["requester"], status=status,
            cancel_requested_by=row["cancel_requested_by"], cancel_requested_at=row["cancel_requested_at"]))

    async def save_cancel_request(self, request: domain.TrainingRequest) -> None:
        assert request.cancel_requested_by is not None
        request.cancel_requested_at = await store.mark_cancel_requested(self._conn, request.workload_id,
                                                                        request.cancel_requested_by)


class Timelines:
    """Every workload's saga timeline and the request status folded from it."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def append(self, entries: Sequence[tuple[str, domain.TimelineEntry, dict[str, str]]]
                     ) -> list[store.Appended]:
        return await store.append(self._conn, entries)

    async def entries(self, workload_id: str) -> list[domain.TimelineEntry]:
        return await store.timeline(self._conn, workload_id)

    async def set_status(self, workload_id: str, status: str, last_event_at: datetime | None) -> None:
        await store.set_status(self._conn, workload_id, status, last_event_at)


class TrainerUnitOfWork(UnitOfWork):
    apps: ReadyApps
    requests: TrainingRequests
    timelines: Timelines
    secrets: SecretValues

    def __init__(self, pool: asyncpg.Pool, outbox: Outbox, *, specs: ReadySpecs,
                 conn: asyncpg.Connection | None = None, cause: Event | None = None) -> None:
        super().__init__(pool, outbox, conn=conn, cause=cause)
        self._specs = specs

    def bind(self, conn: asyncpg.Connection) -> None:
        self.apps = ReadyApps(conn, self._specs)
        self.requests = TrainingRequests(conn, self.track)
        self.timelines = Timelines(conn)
        self.secrets = SecretValues(conn)
