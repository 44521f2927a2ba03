"""The component catalog over HTTP: register, search, detail, update, versions (CL-01…CL-05)."""
from __future__ import annotations

from typing import Annotated

import asyncpg
from fastapi import APIRouter, Query, Response

from contracts.events import ComponentChanged, ComponentSnapshot, ComponentType
from services.kit.auth import Reader, Writer
from services.kit.metrics import Counter
from services.kit.paging import Page, Paging
from services.kit.service import PlatformDep
from services.library import catalog, domain, store
from services.library.schemas import (ComponentDetail, ComponentPatch, ComponentRegistration, ComponentSummary,
                                      VersionSummary, VersionView)

router = APIRouter(prefix="/components", tags=["components"])
CATALOG_CHANGES = Counter("avatar_library_changes_total", "Components registered or updated", ["event"])


async def _detail(conn: asyncpg.Connection, component_id: str) -> ComponentDetail:
    row = await store.component(conn, component_id)
    return ComponentDetail.of(row, await store.used_in(conn, component_id), await store.versions(conn, component_id))


@router.post("", status_code=201, response_model=ComponentDetail, summary="Register a component (CL-01)")
async def register(body: ComponentRegistration, user: Writer, platform: PlatformDep,
                   response: Response) -> ComponentDetail:
    async with platform.transaction() as conn:
        component = await catalog.register(conn, platform.outbox, body, user.user)
        detail = await _detail(conn, component.component_id)
    CATALOG_CHANGES.labels("registered").inc()
    response.headers["Location"] = f"/components/{component.component_id}"
    return detail


@router.get("", response_model=Page[ComponentSummary],
            summary="Search by name or description, filter by type (CL-02)")
async def search(_: Reader, platform: PlatformDep, paging: Paging,
                 q: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
                 type: Annotated[ComponentType | None, Query()] = None) -> Page[ComponentSummary]:
    async with platform.snapshot() as conn:
        rows, total = await store.search(conn, q, type, paging.page_size, paging.offset)
    return Page.of([ComponentSummary.of(row) for row in rows], total, paging)


@router.get("/{component_id}", response_model=ComponentDetail,
            summary="A component with where it is used and its versions (CL-03)")
async def detail(component_id: str, _: Reader, platform: PlatformDep) -> ComponentDetail:
    async with platform.snapshot() as conn:
        return await _detail(conn, component_id)


@router.patch("/{component_id}", response_model=ComponentDetail,
              summary="Update a component; the previous version is kept (CL-04, CL-05)")
async def update(component_id: str, body: ComponentPatch, user: Writer, platform: PlatformDep) -> ComponentDetail:
    async with platform.transaction() as conn:
        current = store.snapshot(await store.component(conn, component_id, lock=True))
        used = {row["version"] for row in await store.versions(conn, component_id)}
        revision = domain.revise(current, body.model_dump(exclude_none=True), used)
        if revision is not None:
            await store.save(conn, revision.component, revision.changed, user.user)
            await platform.outbox.emit(conn, "component.updated", ComponentChanged(component=revision.component),
                                       correlation_id=component_id)
        detail = await _detail(conn, component_id)
    if revision is not None:
        CATALOG_CHANGES.labels("updated").inc()
    return detail


@router.get("/{component_id}/versions", response_model=list[VersionView],
            summary="Every version of a component, newest first (CL-05)")
async def versions(component_id: str, _: Reader, platform: PlatformDep) -> list[VersionView]:
    async with platform.snapshot() as conn:
        current = (await store.component(conn, component_id))["version"]
        rows = await store.versions(conn, component_id)
    return [VersionView(**VersionSummary.of(row).model_dump(), current=row["version"] == current,
                        component=ComponentSnapshot.model_validate(row["snapshot"])) for row in rows]
