"""The Builder's unit of work and the repositories it binds: thin classes over store.py's SQL."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Callable

import asyncpg

from contracts.events import ComponentSnapshot
from contracts.spec import AppSpec, ImportedApp
from services.builder import store
from services.builder.domain import App, AppInfo, PlacedComponent, SpecSummary, Task
from services.kit.secrets import SecretValues
from services.kit.unit_of_work import UnitOfWork


class AppRepository:
    """Apps, their imports and their spec versions. A loaded App is tracked: its events go out on commit."""

    def __init__(self, conn: asyncpg.Connection, track: Callable[[Any], Any]) -> None:
        self._conn = conn
        self._track = track

    async def id_taken(self, app_id: str) -> bool:
        return await store.app_id_taken(self._conn, app_id)

    async def add(self, info: AppInfo) -> None:
        await store.insert_app(self._conn, info)

    async def get(self, app_id: str, *, lock: bool = False) -> App:
        return self._track(await store.load_app(self._conn, app_id, lock=lock))

    async def info(self, app_id: str, *, lock: bool = False) -> AppInfo:
        """The App's own fields; `lock` serialises every edit of one App."""
        return await store.app_info(self._conn, app_id, lock=lock)

    async def lock(self, app_ids: list[str]) -> None:
        await store.lock_apps(self._conn, app_ids)

    async def to_seal(self) -> list[str]:
        return await store.apps_to_seal(self._conn)

    async def sealed(self, app_id: str) -> None:
        await store.sealed(self._conn, app_id)

    async def save(self, info: AppInfo) -> None:
        await store.save_app(self._conn, info)

    async def touch(self, app_id: str, user: str) -> None:
        await store.touch(self._conn, app_id, user)

    async def transfer(self, app_id: str, previous: str | None, new_owner: str, by: str) -> None:
        await store.transfer(self._conn, app_id, previous, new_owner, by)

    async def delete(self, app_id: str) -> None:
        await store.delete_app(self._conn, app_id)

    async def add_import(self, app_id: str, imported: ImportedApp) -> None:
        await store.insert_import(self._conn, app_id, imported)

    async def remove_import(self, app_id: str, app_ref: str) -> None:
        await store.delete_import(self._conn, app_id, app_ref)

    async def drop_import_if_unused(self, app_id: str, app_ref: str) -> None:
        await store.drop_import_if_unused(self._conn, app_id, app_ref)

    async def spec_versions(self, app_id: str) -> set[str]:
        return await store.spec_versions_of(self._conn, app_id)

    async def add_spec(self, spec: AppSpec, revision: int, summary: SpecSummary, user: str) -> None:
        await store.insert_spec(self._conn, spec, revision, summary, user)

    async def spec_file(self, app_id: str, version: str | None) -> dict[str, Any] | None:
        return await store.spec_file(self._conn, app_id, version)


class TaskRepository:
    """One App's Tasks, their placed components and workflow edges."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def take_numbers(self, app_id: str, count: int) -> int:
        return await store.take_task_numbers(self._conn, app_id, count)

    async def add(self, app_id: str, number: int, task: Task) -> None:
        await store.insert_task(self._conn, app_id, number, task)

    async def get(self, app_id: str, task_id: str) -> Task:
        return await store.load_task(self._conn, app_id, task_id)

    async def rename(self, app_id: str, task: Task) -> None:
        await store.rename_task(self._conn, app_id, task.task_id, task.name)

    async def delete(self, app_id: str, task_id: str) -> None:
        await store.delete_task(self._conn, app_id, task_id)

    async def add_component(self, app_id: str, task_id: str, component: PlacedComponent, position: int) -> None:
        await store.insert_component(self._conn, app_id, task_id, component, position)

    async def save_component(self, app_id: str, task_id: str, component: PlacedComponent) -> None:
        await store.update_component(self._conn, app_id, task_id, component)

    async def remove_component(self, app_id: str, task_id: str, component_id: str) -> None:
        await store.delete_component(self._conn, app_id, task_id, component_id)

    async def save_order(self, app_id: str, task: Task) -> None:
        await store.save_order(self._conn, app_id, task)

    async def add_edge(self, app_id: str, task_id: str, source: str, target: str) -> None:
        await store.insert_edge(self._conn, app_id, task_id, source, target)

    async def remove_edge(self, app_id: str, task_id: str, source: str, target: str) -> None:
        await store.delete_edge(self._conn, app_id, task_id, source, target)


class LibraryReadModel:
    """The components the library announced (or the Builder looked up), newest snapshot each."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def get(self, component_id: str) -> ComponentSnapshot | None:
        return await store.library_component(self._conn, component_id)

    async def remember(self, snapshot: ComponentSnapshot, as_of: datetime) -> None:
        await store.remember_component(self._conn, snapshot, as_of)


class BuilderUnitOfWork(UnitOfWork):
    apps: AppRepository
    tasks: TaskRepository
    library: LibraryReadModel
    secrets: SecretValues

    def bind(self, conn: asyncpg.Connection) -> None:
        self.secrets = SecretValues(conn)
        self.apps = AppRepository(conn, self.track)
        self.tasks = TaskRepository(conn)
        self.library = LibraryReadModel(conn)
