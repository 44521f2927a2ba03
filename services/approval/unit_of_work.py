"""The approval service's unit of work and its repositories (the SQL itself is in store.py)."""
from __future__ import annotations

from datetime import datetime

import asyncpg

from services.approval import store
from services.approval.domain import ApprovalRequest, TestRun, Thresholds
from services.kit.unit_of_work import AbstractUnitOfWork, UnitOfWork


class ApprovalRequests:
    """Approval requests, one per workload; what it loads or adds publishes its events on commit."""

    def __init__(self, conn: asyncpg.Connection, uow: AbstractUnitOfWork) -> None:
        self._conn, self._uow = conn, uow

    async def get(self, workload_id: str, *, lock: bool = False) -> ApprovalRequest | None:
        return self._uow.track(await store.find_request(self._conn, workload_id, for_update=lock))

    async def add(self, request: ApprovalRequest) -> bool:
        """False when the workload already has a request (a duplicate, even under a new event id)."""
        if not await store.insert_request(self._conn, request):
            return False
        self._uow.track(request)
        return True

    async def save(self, request: ApprovalRequest) -> None:
        await store.save_request(self._conn, request)


class TestRuns:
    __test__ = False  # not a pytest class

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def get(self, test_run_id: str, *, lock: bool = False) -> TestRun | None:
        return await store.find_test_run(self._conn, test_run_id, for_update=lock)

    async def add(self, run: TestRun) -> None:
        await store.insert_test_run(self._conn, run)

    async def save(self, run: TestRun) -> None:
        await store.save_test_run(self._conn, run)

    async def overdue(self, started_before: datetime) -> list[TestRun]:
        return await store.overdue_test_runs(self._conn, started_before)


class ThresholdSetting:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def get(self) -> Thresholds:
        return await store.thresholds(self._conn)

    async def set(self, limits: Thresholds, by: str) -> None:
        await store.set_thresholds(self._conn, limits, by)


class ApprovalUnitOfWork(UnitOfWork):
    requests: ApprovalRequests
    test_runs: TestRuns
    thresholds: ThresholdSetting

    def bind(self, conn: asyncpg.Connection) -> None:
        self.requests = ApprovalRequests(conn, self)
        self.test_runs = TestRuns(conn)
        self.thresholds = ThresholdSetting(conn)
