"""What the Builder's routes are handed besides the kit's Platform, and the shape every edit takes."""
from __future__ import annotations

import contextlib
from typing import Annotated, AsyncIterator

import asyncpg
from fastapi import Depends, Request

from services.builder import store
from services.builder.domain import AppInfo, Task, Threshold
from services.builder.library import ComponentCatalog
from services.kit.service import Platform


async def _threshold(request: Request) -> Threshold:
    return request.app.state.settings.threshold


async def _catalog(request: Request) -> ComponentCatalog:
    return request.app.state.catalog


ThresholdDep = Annotated[Threshold, Depends(_threshold)]
CatalogDep = Annotated[ComponentCatalog, Depends(_catalog)]


@contextlib.asynccontextmanager
async def editing_app(platform: Platform, app_id: str, user: str) -> AsyncIterator[tuple[asyncpg.Connection, AppInfo]]:
    """Every edit of an App: under its lock (edits of one App never interleave), and its revision moves."""
    async with platform.transaction() as conn:
        info = await store.app_info(conn, app_id, lock=True)
        yield conn, info
        await store.touch(conn, app_id, user)


@contextlib.asynccontextmanager
async def editing_task(platform: Platform, app_id: str, task_id: str,
                       user: str) -> AsyncIterator[tuple[asyncpg.Connection, Task]]:
    async with editing_app(platform, app_id, user) as (conn, _):
        yield conn, await store.load_task(conn, app_id, task_id)
