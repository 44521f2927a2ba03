"""The component catalog over HTTP: register, search, detail, update, versions (CL-01…CL-05)."""
from __future__ import annotations

from typing import Annotated

import asyncpg
from fastapi import APIRouter, Path, Query, Response

from contracts.events import ComponentSnapshot, ComponentType
from services.kit.auth import Admin, NewOwner, Reader, Subject, Writer
from services.kit.paging import Page, Paging
from services.kit.service import MessageBusDep, Platform, PlatformDep
from services.library import store
from services.library.commands import RegisterComponent, TransferComponent, UpdateComponent
from services.library.schemas import (ComponentDetail, ComponentPatch, ComponentRegistration, ComponentSummary,
                                      VersionSummary, VersionView)

router = APIRouter(prefix="/components", tags=["components"])


async def _detail(conn: asyncpg.Connection, component_id: str) -> ComponentDetail:
    row = await store.component(conn, component_id)
    return ComponentDetail.of(row, await store.used_in(conn, component_id), await store.versions(conn, component_id))


async def _committed(platform: Platform, component_id: str) -> ComponentDetail:
    async with platform.snapshot() as conn:
        return await _detail(conn, component_id)


@router.post("", status_code=201, response_model=ComponentDetail, summary="Register a component (CL-01)")
async def register(body: ComponentRegistration, user: Writer, bus: MessageBusDep, platform: PlatformDep,
                   response: Response) -> ComponentDetail:
    component_id = await bus.handle(RegisterComponent(body, user.user))
    response.headers["Location"] = f"/components/{component_id}"
    return await _committed(platform, component_id)


@router.get("", response_model=Page[ComponentSummary],
            summary="Search by name or description, filter by type (CL-02)")
async def search(principal: Reader, platform: PlatformDep, paging: Paging,
                 q: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
                 type: Annotated[ComponentType | None, Query()] = None,
                 owner: Annotated[Subject | None, Query(description='only the components this user owns; "me": '
                                                        "the caller's own")] = None) -> Page[ComponentSummary]:
    async with platform.snapshot() as conn:
        rows, total = await store.search(conn, q, type, principal.user if owner == "me" else owner,
                                         paging.page_size, paging.offset)
    return Page.of([ComponentSummary.of(row) for row in rows], total, paging)


@router.get("/{component_id}", response_model=ComponentDetail,
            summary="A component with where it is used and its versions (CL-03)")
async def detail(component_id: str, _: Reader, platform: PlatformDep) -> ComponentDetail:
    return await _committed(platform, component_id)


@router.patch("/{component_id}", response_model=ComponentDetail,
              summary="Update a component; the previous version is kept (CL-04, CL-05)")
async def update(component_id: str, body: ComponentPatch, user: Writer, bus: MessageBusDep,
                 platform: PlatformDep) -> ComponentDetail:
    await bus.handle(UpdateComponent(component_id, body.model_dump(exclude_none=True), user.user, user.is_admin,
                                     role=user.role))
    return await _committed(platform, component_id)


@router.put("/{component_id}/owner", response_model=ComponentDetail,
            summary="Give the component to another owner (admin only); recorded in the transfer trail")
async def transfer(component_id: str, body: NewOwner, admin: Admin, bus: MessageBusDep,
                   platform: PlatformDep) -> ComponentDetail:
    await bus.handle(TransferComponent(component_id, body.owner, admin.user, admin.is_admin, role=admin.role))
    return await _committed(platform, component_id)


@router.get("/{component_id}/versions", response_model=list[VersionView],
            summary="Every version of a component, newest first (CL-05)")
async def versions(component_id: str, _: Reader, platform: PlatformDep) -> list[VersionView]:
    async with platform.snapshot() as conn:
        current = (await store.component(conn, component_id))["version"]
        rows = await store.versions(conn, component_id)
    return [_version_view(row, current) for row in rows]


@router.get("/{component_id}/versions/{version}", response_model=VersionView,
            summary="One version of a component exactly as published: what a spec naming it runs (CL-05)")
async def one_version(component_id: str, version: Annotated[str, Path(max_length=64)], _: Reader,
                      platform: PlatformDep) -> VersionView:
    async with platform.snapshot() as conn:
        current = (await store.component(conn, component_id))["version"]
        row = await store.version(conn, component_id, version)
    return _version_view(row, current)


def _version_view(row: asyncpg.Record, current: str) -> VersionView:
    return VersionView(**VersionSummary.of(row).model_dump(), current=row["version"] == current,
                       component=ComponentSnapshot.model_validate(row["snapshot"]))
