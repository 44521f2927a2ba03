"""Apps, their env vars, training config, imports and spec files (BL-02, BL-04, BL-05, BL-12)."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse

from contracts.spec import AppSpec, TrainingConfig
from services.builder import store
from services.builder.commands import (ChangeApp, CreateApp, DeleteApp, GenerateSpec, ImportApp, RemoveImport,
                                       TransferApp)
from services.builder.deps import ThresholdDep
from services.builder.domain import AppStatus, Threshold
from services.builder.schemas import (AppCreate, AppPatch, AppRef, AppSummary, AppView, EnvVars, ImportBody,
                                      TrainingConfigBody,
                                      SpecSummaryView, app_view, largest_of, summary)
from services.builder.revision import IfMatch
from services.kit.auth import Admin, NewOwner, Reader, Subject, Writer
from services.kit import secrets
from services.kit.errors import NotFound
from services.kit.secrets import SecretChange
from services.kit.paging import Page, Paging
from services.kit.service import MessageBusDep, Platform, PlatformDep

router = APIRouter(tags=["apps"])


async def _view(platform: Platform, app_id: str, threshold: Threshold) -> AppView:
    """The App as committed."""
    async with platform.snapshot() as conn:
        return app_view(await store.load_app(conn, app_id), threshold)


@router.post("/apps", status_code=201, response_model=AppView, summary="Create an App (status draft)")
async def create_app(body: AppCreate, user: Writer, bus: MessageBusDep, platform: PlatformDep,
                     threshold: ThresholdDep, response: Response) -> AppView:
    app_id = await bus.handle(CreateApp(
        name=body.name, version=body.version, user=user.user, description=body.description,
        env_vars=body.env_vars, training_config=body.training_config, storage=body.storage))
    response.headers["Location"] = f"/apps/{app_id}"
    return await _view(platform, app_id, threshold)


@router.get("/apps", response_model=Page[AppSummary], summary="List Apps, newest change first")
async def list_apps(principal: Reader, platform: PlatformDep, paging: Paging,
                    status: Annotated[AppStatus | None, Query()] = None,
                    owner: Annotated[Subject | None, Query(description='only the Apps this user owns; "me": the '
                                                           "caller's own")] = None) -> Page[AppSummary]:
    async with platform.snapshot() as conn:
        infos, total = await store.list_apps(conn, status, principal.user if owner == "me" else owner,
                                             paging.page_size, paging.offset)
        placed = await store.placed_resources(conn, [info.app_id for info in infos])
    return Page.of([summary(info, largest_of(placed[info.app_id])) for info in infos], total, paging)


@router.get("/apps/{app_id}", response_model=AppView, summary="An App with its Tasks, Components and workflows")
async def get_app(app_id: str, _: Reader, platform: PlatformDep, threshold: ThresholdDep) -> AppView:
    return await _view(platform, app_id, threshold)


@router.patch("/apps/{app_id}", response_model=AppView, summary="Change an App's name, description, version, "
              "storage or test run reference (null clears it)")
async def patch_app(app_id: str, body: AppPatch, user: Writer, bus: MessageBusDep, platform: PlatformDep,
                    threshold: ThresholdDep, revision: IfMatch) -> AppView:
    await bus.handle(ChangeApp(app_id=app_id, user=user.user, is_admin=user.is_admin, expected_revision=revision,
                               changes={name: getattr(body, name) for name in body.model_fields_set}))
    return await _view(platform, app_id, threshold)


@router.delete("/apps/{app_id}", status_code=204, summary="Delete an App's working copy (its spec versions stay)")
async def delete_app(app_id: str, user: Writer, bus: MessageBusDep, revision: IfMatch) -> Response:
    await bus.handle(DeleteApp(app_id=app_id, user=user.user, is_admin=user.is_admin, expected_revision=revision))
    return Response(status_code=204)


@router.put("/apps/{app_id}/owner", response_model=AppView,
            summary="Give the App to another owner (admin only); recorded in the transfer trail")
async def transfer_app(app_id: str, body: NewOwner, admin: Admin, bus: MessageBusDep, platform: PlatformDep,
                       threshold: ThresholdDep) -> AppView:
    await bus.handle(TransferApp(app_id=app_id, user=admin.user, is_admin=admin.is_admin, new_owner=body.owner,
                                 role=admin.role))
    return await _view(platform, app_id, threshold)


@router.put("/apps/{app_id}/env-vars", response_model=AppView,
            summary="Replace the App-level environment variables every component shares (BL-02)")
async def put_env_vars(app_id: str, body: EnvVars, user: Writer, bus: MessageBusDep, platform: PlatformDep,
                       threshold: ThresholdDep, revision: IfMatch) -> AppView:
    await bus.handle(ChangeApp(app_id=app_id, user=user.user, is_admin=user.is_admin, changes={"env_vars": body},
                               role=user.role, expected_revision=revision))
    return await _view(platform, app_id, threshold)


@router.get("/apps/{app_id}/env-vars/changes", response_model=list[SecretChange],
            summary="The audit trail of the App's secret env vars: who set or removed which, when (never a value)")
async def secret_changes(app_id: str, _: Reader, platform: PlatformDep) -> list[SecretChange]:
    async with platform.snapshot() as conn:
        await store.app_info(conn, app_id)  # 404 for an unknown App
        return [SecretChange(**row) for row in await secrets.changes(conn, app_id)]


@router.put("/apps/{app_id}/training-config", response_model=AppView,
            summary="Replace the RL training config; omitted fields take the TR-03 defaults")
async def put_training_config(app_id: str, body: TrainingConfigBody, user: Writer, bus: MessageBusDep,
                              platform: PlatformDep, threshold: ThresholdDep, revision: IfMatch) -> AppView:
    await bus.handle(ChangeApp(app_id=app_id, user=user.user, is_admin=user.is_admin,
                               changes={"training_config": body}, expected_revision=revision))
    return await _view(platform, app_id, threshold)


@router.post("/apps/{app_id}/imports", status_code=201, response_model=AppView,
             summary="Import another App: copy its Tasks here with imported_from set (BL-12)")
async def import_app(app_id: str, body: ImportBody, user: Writer, bus: MessageBusDep, platform: PlatformDep,
                     threshold: ThresholdDep, revision: IfMatch) -> AppView:
    await bus.handle(ImportApp(app_id=app_id, user=user.user, is_admin=user.is_admin, app_ref=body.app_ref,
                               expected_revision=revision))
    return await _view(platform, app_id, threshold)


@router.delete("/apps/{app_id}/imports/{app_ref}", response_model=AppView,
               summary="Undo an import: remove it and every Task it brought")
async def remove_import(app_id: str, app_ref: AppRef, user: Writer, bus: MessageBusDep, platform: PlatformDep,
                        threshold: ThresholdDep, revision: IfMatch) -> AppView:
    await bus.handle(RemoveImport(app_id=app_id, user=user.user, is_admin=user.is_admin, app_ref=app_ref,
                                  expected_revision=revision))
    return await _view(platform, app_id, threshold)


def _spec_response(spec: dict, status_code: int) -> JSONResponse:
    return JSONResponse(spec, status_code=status_code, headers={
        "Location": f"/apps/{spec['app_id']}/spec?version={spec['version']}"})


@router.post("/apps/{app_id}/spec", response_model=AppSpec, status_code=201,
             responses={200: {"description": "nothing changed since the latest spec; that spec is returned"},
                        422: {"description": "the App cannot run yet; `detail.problems` lists why"}},
             summary="Generate the App spec file: a new immutable version; the App becomes ready (BL-04)")
async def generate_spec(app_id: str, user: Writer, bus: MessageBusDep) -> JSONResponse:
    answer = await bus.handle(GenerateSpec(app_id=app_id, user=user.user, is_admin=user.is_admin))
    return _spec_response(answer.spec, 201 if answer.created else 200)


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
