"""Composition root of the models service: the only place its real adapters are built."""
from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import AsyncIterator

from fastapi import FastAPI

from services.kit import errors
from services.kit.objectstore import check_bucket
from services.kit.service import Platform, build_service
from services.kit.settings import Settings, settings_for
from services.models import alias_api, api, handlers
from services.models.settings import ModelsSettings
from services.models.downloads import Streamer
from services.models.objects import ObjectStore, build_client
from services.models.unit_of_work import ModelsUnitOfWork
from services.models.worker import StoreWorker

MIGRATIONS = Path(__file__).parent / "migrations"
log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    app = build_service("models", settings_for(ModelsSettings, settings), routers=[api.router, alias_api.router],
                        migrations=MIGRATIONS, setup=_setup, description=__doc__ or "")
    return errors.install(app)


@contextlib.asynccontextmanager
async def _setup(platform: Platform, app: FastAPI) -> AsyncIterator[None]:
    settings: ModelsSettings = platform.settings  # type: ignore[assignment]
    client = build_client(settings)
    objects = ObjectStore(client, settings)
    copy_threads = ThreadPoolExecutor(settings.models_store_concurrency, thread_name_prefix="model-copy")
    read_threads = ThreadPoolExecutor(settings.models_download_threads, thread_name_prefix="model-read")
    bus = platform.message_bus(app, platform.units(ModelsUnitOfWork), commands=handlers.COMMANDS,
                               events=handlers.EVENTS, locks=handlers.LOCKS)
    worker = StoreWorker(platform.pool, platform.wakeups, objects, settings, bus=bus, executor=copy_threads)
    app.state.objects = objects
    app.state.streamer = Streamer(objects, settings.models_bucket, read_threads, settings.models_download_chunk)
    app.state.models_worker = worker
    platform.checks["s3"] = lambda: check_bucket(client, settings.models_bucket)
    try:
        await asyncio.wait_for(asyncio.to_thread(objects.ensure_bucket, settings.models_bucket), 10)
    except Exception as exc:  # the store may be down at start: the worker creates the bucket once it is back
        log.warning("models bucket %s not ready yet: %s", settings.models_bucket, exc)
    if platform.handles_events:
        platform.spawn(worker.run(), "models-store-worker")
    try:
        yield
    finally:
        copy_threads.shutdown(wait=False, cancel_futures=True)
        read_threads.shutdown(wait=False, cancel_futures=True)
