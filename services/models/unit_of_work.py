"""The models service's unit of work and its repositories (the SQL itself is in store.py)."""
from __future__ import annotations

from datetime import datetime

import asyncpg

from services.kit.unit_of_work import AbstractUnitOfWork, UnitOfWork
from services.models import store
from services.models.domain import Alias, AliasTarget, Model, NewModel


class Models:
    """Models: added pending when a workload completes, then stored by a store worker holding their lease."""

    def __init__(self, conn: asyncpg.Connection, uow: AbstractUnitOfWork) -> None:
        self._conn, self._uow = conn, uow

    async def add(self, model: NewModel) -> int | None:
        """The version the App's new model got; None when the workload already has a model."""
        return await store.insert_pending(self._conn, model)

    async def leased(self, model_id: str, owner: str) -> Model | None:
        """The pending model `owner` holds the lease on, locked; None once the lease is lost."""
        return self._uow.track(await store.leased_model(self._conn, model_id, owner))

    async def save(self, model: Model) -> None:
        await store.save_model(self._conn, model)

    async def target(self, model_id: str) -> AliasTarget | None:
        """The model as an alias move sees it."""
        return await store.alias_target(self._conn, model_id)


class Aliases:
    def __init__(self, conn: asyncpg.Connection, uow: AbstractUnitOfWork) -> None:
        self._conn, self._uow = conn, uow

    async def get(self, app_id: str, name: str, *, undoable: bool = False) -> Alias:
        """The alias, locked (model_id None when it does not exist yet); with `undoable`, with the newest
        move a rollback would undo."""
        return self._uow.track(await store.lock_alias(self._conn, app_id, name, undoable=undoable))

    async def save(self, alias: Alias) -> None:
        await store.save_alias(self._conn, alias)


class AppOwners:
    """Who owns each App, as the builder announced it (who may move the App's aliases)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def remember(self, app_id: str, owner: str | None, as_of: datetime) -> None:
        await store.remember_owner(self._conn, app_id, owner, as_of)

    async def get(self, app_id: str) -> str | None:
        """None: the platform's, or an App the builder has not announced (yet)."""
        return await store.app_owner(self._conn, app_id)


class ModelsUnitOfWork(UnitOfWork):
    models: Models
    aliases: Aliases
    owners: AppOwners

    def bind(self, conn: asyncpg.Connection) -> None:
        self.models = Models(conn, self)
        self.aliases = Aliases(conn, self)
        self.owners = AppOwners(conn)
