"""The library's unit of work and the repositories it binds: thin classes over store.py's SQL."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Callable

import asyncpg

from contracts.spec import AppSpec
from services.kit.unit_of_work import UnitOfWork
from services.library import store
from services.library.domain import Component


class ComponentRepository:
    """Components and their versions. A loaded or added Component is tracked: its events go out on commit."""

    def __init__(self, conn: asyncpg.Connection, track: Callable[[Any], Any]) -> None:
        self._conn = conn
        self._track = track

    async def next_number(self) -> int:
        return await store.next_number(self._conn)

    async def add(self, number: int, component: Component, user: str) -> None:
        await store.insert(self._conn, number, component.snapshot, user, component.owner)
        self._track(component)

    async def get(self, component_id: str, *, lock: bool = False) -> Component:
        row = await store.component(self._conn, component_id, lock=lock)
        used = {version["version"] for version in await store.versions(self._conn, component_id)}
        return self._track(Component(store.snapshot(row), used, row["owner"]))

    async def transfer(self, component_id: str, previous: str | None, new_owner: str, by: str) -> None:
        await store.transfer(self._conn, component_id, previous, new_owner, by)

    async def save(self, component: Component, user: str) -> None:
        await store.save(self._conn, component.snapshot, component.changed, user)

    async def any(self) -> bool:
        return await store.any_component(self._conn)

    async def lock_for_seeding(self) -> None:
        await store.lock_seeding(self._conn)


class UsageRepository:
    """Where components are used (CL-03), as the builder's spec and delete events tell."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def record_spec(self, spec: AppSpec) -> bool:
        return await store.record_spec(self._conn, spec)

    async def forget_app(self, app_id: str, deleted_at: datetime) -> None:
        await store.forget_app(self._conn, app_id, deleted_at)


class LibraryUnitOfWork(UnitOfWork):
    components: ComponentRepository
    usage: UsageRepository

    def bind(self, conn: asyncpg.Connection) -> None:
        self.components = ComponentRepository(conn, self.track)
        self.usage = UsageRepository(conn)
