"""Models HTTP API: list (MD-02), detail (MD-03), download (MD-04), versions (MD-05), compare (MD-06)."""
from __future__ import annotations

import base64
from typing import Annotated
from urllib.parse import quote

import asyncpg
from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from services.kit.auth import Reader
from services.kit.errors import Conflict, DependencyUnavailable, Invalid, NotFound
from services.kit.objectstore import split_s3_url
from services.kit.paging import Page, Paging
from services.models import metrics, store
from services.models.archive import Member, archive_size, layout
from services.models.domain import RangeNotSatisfiable, StagedArtifact, compare, parse_range
from services.models.downloads import MissingObject, Streamer, StoreUnavailable
from services.models.schemas import AppVersions, Comparison, ModelDetail, ModelFile, ModelSummary, RunLog

router = APIRouter(tags=["models"])


async def _pool(request: Request) -> asyncpg.Pool:
    return request.app.state.platform.pool


async def _streamer(request: Request) -> Streamer:
    return request.app.state.streamer


Pool = Annotated[asyncpg.Pool, Depends(_pool)]
Streams = Annotated[Streamer, Depends(_streamer)]


def _summary(row: asyncpg.Record) -> ModelSummary:
    return ModelSummary(
        model_id=row["model_id"], name=row["name"], app_id=row["app_id"], app_name=row["app_name"],
        version=row["version"], workload_id=row["workload_id"], workload_name=row["workload_name"] or None,
        created_at=row["created_at"], stored_at=row["stored_at"], size_bytes=row["size_bytes"],
        file_count=row["file_count"], status=row["status"], store_attempts=row["attempts"],
        store_error=row["last_error"])


def _not_found(model_id: str) -> NotFound:
    return NotFound(f"model {model_id} not found")


async def _stored_model(pool: asyncpg.Pool, model_id: str) -> asyncpg.Record:
    row = await store.get_model(pool, model_id)
    if row is None:
        raise _not_found(model_id)
    if row["status"] != "stored":
        raise Conflict(f"model {model_id} is not stored yet (status {row['status']}): its artifacts are still "
                       "being copied; try again after model.stored", code="not_stored")
    return row


def _unavailable(exc: StoreUnavailable) -> DependencyUnavailable:
    return DependencyUnavailable("s3", f"cannot download now from S3: {exc}")


def _lost(model_id: str, exc: MissingObject) -> HTTPException:
    # recorded as stored and verified, yet gone: an operator must look (bucket deleted, lifecycle rule)
    return HTTPException(502, f"a stored file of model {model_id} is missing from the object store: {exc}")


@router.get("/models", response_model=Page[ModelSummary], summary="List models (MD-02)")
async def list_models(pool: Pool, _: Reader, paging: Paging,
                      app_id: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
                      q: Annotated[str | None, Query(min_length=1, max_length=128,
                                                     description="search model name, App, workload")] = None,
                      status: Annotated[str | None, Query(pattern="^(pending|stored)$")] = None,
                      ) -> Page[ModelSummary]:
    rows, total = await store.list_models(pool, app_id=app_id, q=q, status=status, limit=paging.page_size,
                                          offset=paging.offset)
    return Page.of([_summary(r) for r in rows], total, paging)


@router.get("/models/compare", response_model=Comparison, summary="Compare the metrics of models (MD-06)")
async def compare_models(pool: Pool, _: Reader,
                         ids: Annotated[str, Query(min_length=1, max_length=300,
                                                   description="comma-separated model ids")]) -> Comparison:
    wanted = list(dict.fromkeys(i.strip() for i in ids.split(",") if i.strip()))
    if not 2 <= len(wanted) <= 10:
        raise Invalid(f"compare needs 2 to 10 distinct model ids, got {len(wanted)}", code="compare_count")
    rows = {row["model_id"]: row for row in await store.get_models(pool, wanted)}
    missing = [i for i in wanted if i not in rows]
    if missing:
        raise NotFound(f"models not found: {', '.join(missing)}")
    ordered = [rows[i] for i in wanted]
    table = compare([{"model_id": r["model_id"], "metrics": r["metrics"]} for r in ordered])
    return Comparison(models=[_summary(r) for r in ordered], metrics=table)


@router.get("/models/{model_id}", response_model=ModelDetail, summary="Model detail (MD-03)")
async def get_model(model_id: str, pool: Pool, request: Request, _: Reader) -> ModelDetail:
    row = await store.get_model(pool, model_id)
    if row is None:
        raise _not_found(model_id)
    files = await store.model_files(pool, model_id)
    workload = row["workload"]
    artifacts = [StagedArtifact(**a) for a in row["artifacts"]]
    base = f"/models/{model_id}/download"
    return ModelDetail(
        **_summary(row).model_dump(),
        spec_version=workload["specVersion"], spec=workload["spec"], training_config=workload["trainingConfig"],
        workload={k: workload.get(k) for k in ("workloadId", "name", "requester", "priority", "submittedAt",
                                               "resources", "isTrainingRequest", "testRunRef")},
        run_logs=[RunLog(component=a.folder, task_id=a.task_id, component_id=a.component_id, url=a.log,
                         download=f"/models/{model_id}/logs/{quote(a.folder)}" if a.log else None)
                  for a in artifacts],
        metrics=row["metrics"],
        files=[ModelFile(path=f["path"], component=f["component"], size_bytes=f["size_bytes"], sha256=f["sha256"],
                         verified_by=f["verified_by"], download=f"{base}?file={quote(f['path'])}") for f in files],
        storage={"bucket": request.app.state.settings.models_bucket,
                 "prefix": f"{row['app_id']}/{row['version']}/"},
        aliases=await store.aliases_of_model(pool, model_id),
        download=base)


@router.get("/models/{model_id}/download", summary="Download a model (MD-04)",
            response_class=StreamingResponse,
            responses={200: {"content": {"application/x-tar": {}, "application/octet-stream": {}}},
                       206: {"description": "the requested byte range of `file`"},
                       409: {"description": "the model is not stored yet"},
                       416: {"description": "the range lies outside the file"}})
async def download(model_id: str, pool: Pool, streams: Streams, _: Reader,
                   file: Annotated[str | None, Query(min_length=1, max_length=1024,
                                                     description="one file of the model (its path)")] = None,
                   range_header: Annotated[str | None, Header(alias="range")] = None,
                   if_range: Annotated[str | None, Header(alias="if-range")] = None) -> StreamingResponse:
    row = await _stored_model(pool, model_id)
    files = await store.model_files(pool, model_id)
    if file is not None:
        return await _download_file(row, files, file, streams, range_header, if_range)
    entries, trailer = layout([Member(f["path"], f["size_bytes"], f["object_key"]) for f in files],
                              row["stored_at"].timestamp())
    try:
        first = await streams.open(entries[0].member.object_key) if entries else None
    except MissingObject as exc:
        raise _lost(model_id, exc) from exc
    except StoreUnavailable as exc:
        raise _unavailable(exc) from exc
    metrics.DOWNLOADS.labels("archive").inc()
    return StreamingResponse(streams.archive(entries, trailer, first), media_type="application/x-tar", headers={
        "Content-Length": str(archive_size(entries, trailer)), "Accept-Ranges": "none",
        "Content-Disposition": _attachment(f"{row['name']}.tar")})


async def _download_file(row: asyncpg.Record, files: list[asyncpg.Record], path: str, streams: Streamer,
                         range_header: str | None, if_range: str | None) -> StreamingResponse:
    found = next((f for f in files if f["path"] == path), None)
    if found is None:
        raise NotFound(f"model {row['model_id']} has no file {path!r}")
    size, etag = found["size_bytes"], f'"{found["sha256"]}"'
    headers = {"Accept-Ranges": "bytes", "ETag": etag,
               "Repr-Digest": f"sha-256=:{base64.b64encode(bytes.fromhex(found['sha256'])).decode()}:",
               "Content-Disposition": _attachment(path.rsplit("/", 1)[-1])}
    if if_range is not None and if_range.strip() != etag:
        range_header = None  # the client's partial copy is of another version: send it whole
    try:
        wanted = parse_range(range_header, size)
    except RangeNotSatisfiable as exc:
        return JSONResponse({"detail": str(exc)}, status_code=416, headers={"Content-Range": f"bytes */{size}"})
    offset, length = (wanted.start, wanted.length) if wanted else (0, size)
    try:
        # an empty file has nothing to fetch; length 0 would mean "to the end" to the S3 client anyway
        response = await streams.open(found["object_key"], offset, length) if size else None
    except MissingObject as exc:
        raise _lost(row["model_id"], exc) from exc
    except StoreUnavailable as exc:
        raise _unavailable(exc) from exc
    metrics.DOWNLOADS.labels("range" if wanted else "file").inc()
    headers["Content-Length"] = str(length)
    if wanted:
        headers["Content-Range"] = wanted.content_range(size)
    body = streams.body(response, length) if response is not None else _empty()
    return StreamingResponse(body, status_code=206 if wanted else 200, media_type="application/octet-stream",
                             headers=headers)


async def _empty():
    return
    yield b""  # noqa: unreachable — makes this an (empty) async generator


def _attachment(filename: str) -> str:
    ascii_name = filename.encode("ascii", "replace").decode().replace('"', "_")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"


@router.get("/models/{model_id}/logs/{component}", summary="A component's run log (MD-03, ST-04)",
            response_class=StreamingResponse, responses={200: {"content": {"text/plain": {}}}})
async def run_log(model_id: str, component: str, pool: Pool, streams: Streams, _: Reader) -> StreamingResponse:
    row = await store.get_model(pool, model_id)
    if row is None:
        raise _not_found(model_id)
    artifact = next((StagedArtifact(**a) for a in row["artifacts"] if a["folder"] == component), None)
    if artifact is None or artifact.log is None:
        raise NotFound(f"model {model_id} has no run log for component {component!r}")
    bucket, key = split_s3_url(artifact.log)
    try:
        size, response = await streams.open_whole(key, bucket=bucket)
    except MissingObject as exc:
        raise NotFound(f"the run log of {component} in model {model_id} is gone: {exc}") from exc
    except StoreUnavailable as exc:
        raise _unavailable(exc) from exc
    return StreamingResponse(streams.body(response, size), media_type="text/plain; charset=utf-8",
                             headers={"Content-Length": str(size)})


@router.get("/apps/{app_id}/models", response_model=AppVersions, summary="Model versions of an App (MD-05)")
async def app_versions(app_id: str, pool: Pool, _: Reader) -> AppVersions:
    rows = await store.app_models(pool, app_id)
    return AppVersions(app_id=app_id, versions=[_summary(r) for r in rows])
