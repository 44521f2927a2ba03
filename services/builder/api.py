"""Apps, their env vars, training config, imports and spec files (BL-02, BL-04, BL-05, BL-12)."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse

from contracts.events import AppDeleted, AppSpecCreated
from contracts.spec import AppSpec, ImportedApp, TrainingConfig
from services.builder import domain, store
from services.builder.deps import ThresholdDep, editing_app
from services.builder.domain import AppInfo, AppStatus, Threshold
from services.builder.schemas import (AppCreate, AppPatch, AppRef, AppSummary, AppView, EnvVars, ImportBody,
                                      SpecSummaryView, app_view, summary)
from services.kit.auth import Reader, Writer
from services.kit.errors import Invalid, NotFound
from services.kit.metrics import Counter
from services.kit.paging import Page, Paging
from services.kit.service import Platform, PlatformDep

router = APIRouter(tags=["apps"])
SPECS_GENERATED = Counter("avatar_builder_specs_generated_total", "App spec versions written")


async def _view(conn: asyncpg.Connection, app_id: str, threshold: Threshold) -> AppView:
    return app_view(await store.load_app(conn, app_id), threshold)


async def _update(platform: Platform, app_id: str, user: str, threshold: Threshold, **fields: Any) -> AppView:
    """Change some of an App's own fields; answers the App as committed."""
    async with editing_app(platform, app_id, user) as (conn, info):
        await store.save_app(conn, replace(info, **fields))
    async with platform.snapshot() as conn:
        return await _view(conn, app_id, threshold)


@router.post("/apps", status_code=201, response_model=AppView, summary="Create an App (status draft)")
async def create_app(body: AppCreate, user: Writer, platform: PlatformDep, threshold: ThresholdDep,
                     response: Response) -> AppView:
    async with platform.transaction() as conn:
        app_id = domain.new_app_id()
        while await store.app_id_taken(conn, app_id):
            app_id = domain.new_app_id()
        await store.insert_app(conn, AppInfo(
            app_id=app_id, name=body.name, version=body.version, description=body.description,
            env_vars=body.env_vars, training_config=body.training_config,
            storage=body.storage or domain.default_storage(body.name), created_by=user.user))
        view = await _view(conn, app_id, threshold)
    response.headers["Location"] = f"/apps/{app_id}"
    return view


@router.get("/apps", response_model=Page[AppSummary], summary="List Apps, newest change first")
async def list_apps(_: Reader, platform: PlatformDep, paging: Paging,
                    status: Annotated[AppStatus | None, Query()] = None) -> Page[AppSummary]:
    async with platform.snapshot() as conn:
        infos, total = await store.list_apps(conn, status, paging.page_size, paging.offset)
    return Page.of([summary(info) for info in infos], total, paging)


@router.get("/apps/{app_id}", response_model=AppView, summary="An App with its Tasks, Components and workflows")
async def get_app(app_id: str, _: Reader, platform: PlatformDep, threshold: ThresholdDep) -> AppView:
    async with platform.snapshot() as conn:
        return await _view(conn, app_id, threshold)


@router.patch("/apps/{app_id}", response_model=AppView, summary="Change an App's name, description, version, "
              "storage or test run reference (null clears it)")
async def patch_app(app_id: str, body: AppPatch, user: Writer, platform: PlatformDep,
                    threshold: ThresholdDep) -> AppView:
    given = {name: getattr(body, name) for name in body.model_fields_set}
    # null clears only the test run reference; for the other fields it means "unchanged"
    return await _update(platform, app_id, user.user, threshold,
                         **{k: v for k, v in given.items() if v is not None or k == "test_run_ref"})


@router.delete("/apps/{app_id}", status_code=204, summary="Delete an App's working copy (its spec versions stay)")
async def delete_app(app_id: str, user: Writer, platform: PlatformDep) -> Response:
    async with platform.transaction() as conn:
        await store.app_info(conn, app_id, lock=True)
        await store.delete_app(conn, app_id)
        await platform.outbox.emit(conn, "app.deleted", AppDeleted(app_id=app_id, deleted_by=user.user),
                                   correlation_id=app_id)
    return Response(status_code=204)


@router.put("/apps/{app_id}/env-vars", response_model=AppView,
            summary="Replace the App-level environment variables every component shares (BL-02)")
async def put_env_vars(app_id: str, body: EnvVars, user: Writer, platform: PlatformDep,
                       threshold: ThresholdDep) -> AppView:
    return await _update(platform, app_id, user.user, threshold, env_vars=body)


@router.put("/apps/{app_id}/training-config", response_model=AppView,
            summary="Replace the RL training config; omitted fields take the TR-03 defaults")
async def put_training_config(app_id: str, body: TrainingConfig, user: Writer, platform: PlatformDep,
                              threshold: ThresholdDep) -> AppView:
    return await _update(platform, app_id, user.user, threshold, training_config=body)


@router.post("/apps/{app_id}/imports", status_code=201, response_model=AppView,
             summary="Import another App: copy its Tasks here with imported_from set (BL-12)")
async def import_app(app_id: str, body: ImportBody, user: Writer, platform: PlatformDep,
                     threshold: ThresholdDep) -> AppView:
    async with platform.transaction() as conn:
        await store.lock_apps(conn, [app_id, body.app_ref])
        target = await store.load_app(conn, app_id)
        try:
            source = await store.load_app(conn, body.app_ref)
        except NotFound:
            raise Invalid(f"unknown app {body.app_ref}: there is nothing to import", code="unknown_app") from None
        domain.check_import(target, source)
        first = await store.take_task_numbers(conn, app_id, len(source.tasks))
        for number, task in enumerate(source.tasks, start=first):
            await store.insert_task(conn, app_id, number, task.copy_as(domain.task_id(number), body.app_ref))
        await store.insert_import(conn, app_id, ImportedApp(app_ref=body.app_ref, name=source.info.name))
        await store.touch(conn, app_id, user.user)
        return await _view(conn, app_id, threshold)


@router.delete("/apps/{app_id}/imports/{app_ref}", response_model=AppView,
               summary="Undo an import: remove it and every Task it brought")
async def remove_import(app_id: str, app_ref: AppRef, user: Writer, platform: PlatformDep,
                        threshold: ThresholdDep) -> AppView:
    async with editing_app(platform, app_id, user.user) as (conn, _):
        app = await store.load_app(conn, app_id)
        if not any(imported.app_ref == app_ref for imported in app.imported_apps):
            raise NotFound(f"app {app_ref} is not imported into {app_id}")
        await store.delete_import(conn, app_id, app_ref)
    async with platform.snapshot() as conn:
        return await _view(conn, app_id, threshold)


def _spec_response(spec: dict, status_code: int) -> JSONResponse:
    return JSONResponse(spec, status_code=status_code, headers={
        "Location": f"/apps/{spec['app_id']}/spec?version={spec['version']}"})


@router.post("/apps/{app_id}/spec", response_model=AppSpec, status_code=201,
             responses={200: {"description": "nothing changed since the latest spec; that spec is returned"},
                        422: {"description": "the App cannot run yet; `detail.problems` lists why"}},
             summary="Generate the App spec file: a new immutable version; the App becomes ready (BL-04)")
async def generate_spec(app_id: str, user: Writer, platform: PlatformDep, threshold: ThresholdDep) -> JSONResponse:
    async with platform.transaction() as conn:
        app = await store.load_app(conn, app_id, lock=True)
        info = app.info
        if info.latest_spec_version and not info.has_unpublished_changes:
            return _spec_response(await store.spec_file(conn, app_id, info.latest_spec_version), 200)
        version = domain.next_spec_version(info.version, await store.spec_versions_of(conn, app_id))
        now = datetime.now(timezone.utc)
        spec = app.to_spec(version, now.replace(microsecond=now.microsecond // 1000 * 1000))
        await store.insert_spec(conn, spec, info.revision, domain.summarize(spec, threshold), user.user)
        info.status, info.version = "ready", version
        await store.save_app(conn, info)
        await platform.outbox.emit(conn, "app.spec_created", AppSpecCreated(app_id=app_id, version=version, spec=spec),
                                   correlation_id=app_id)
    SPECS_GENERATED.inc()
    return _spec_response(spec.to_wire(), 201)


@router.get("/apps/{app_id}/spec", response_model=AppSpec, summary="The App's spec file: latest, or ?version=")
async def get_spec(app_id: str, _: Reader, platform: PlatformDep,
                   version: Annotated[str | None, Query(max_length=32)] = None) -> JSONResponse:
    async with platform.pool.acquire() as conn:
        spec = await store.spec_file(conn, app_id, version)
        if spec is None:
            await store.app_info(conn, app_id)  # 404 for an unknown app
            raise NotFound(f"app {app_id} has no spec version {version}" if version
                           else f"app {app_id} has no spec yet; POST /apps/{app_id}/spec generates one")
    return JSONResponse(spec)


@router.get("/specs", response_model=Page[SpecSummaryView], tags=["specs"],
            summary="Spec files with task/component counts and the largest component (BL-05)")
async def list_specs(_: Reader, platform: PlatformDep, paging: Paging,
                     app_id: Annotated[str | None, Query(max_length=64)] = None,
                     latest: Annotated[bool, Query(description="only each App's latest version")] = False,
                     ) -> Page[SpecSummaryView]:
    async with platform.snapshot() as conn:
        rows, total = await store.list_specs(conn, app_id, latest, paging.page_size, paging.offset)
    return Page.of([SpecSummaryView(**dict(row)) for row in rows], total, paging)
