"""Composition root of the builder service: the only place its real adapters are built."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import AsyncIterator

import httpx
from fastapi import FastAPI

from services import builder
from services.builder import api, handlers, task_api
from services.builder.commands import SealSecretEnvVars
from services.builder.library import LibraryClient
from services.builder.settings import BuilderSettings
from services.builder.unit_of_work import BuilderUnitOfWork
from services.kit import errors, secrets
from services.kit.service import Platform, build_service
from services.kit.settings import Settings, settings_for

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: Settings | None = None, *,
               library_transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    """`library_transport` lets tests route library lookups to an in-process library app."""
    settings = settings_for(BuilderSettings, settings)

    @contextlib.asynccontextmanager
    async def setup(platform: Platform, app: FastAPI) -> AsyncIterator[None]:
        async with httpx.AsyncClient(base_url=settings.library_url, transport=library_transport,
                                     timeout=settings.library_timeout_seconds) as client:
            bus = platform.message_bus(app, platform.units(BuilderUnitOfWork), commands=handlers.COMMANDS,
                                 events=handlers.EVENTS,
                                 dependencies={"library": LibraryClient(client), "threshold": settings.threshold,
                                               "cipher": app.state.secret_cipher})
            if settings.serves_api:  # values written before secrets existed: encrypted before any GET
                await bus.handle(SealSecretEnvVars())
            yield

    app = build_service("builder", settings, routers=[api.router, task_api.router, secrets.resolve_router()],
                        migrations=MIGRATIONS, setup=setup, description=builder.__doc__ or "")
    # the API side stores and resolves secret values; an events-only process never needs the key
    app.state.secret_cipher = secrets.cipher_for(settings) if settings.serves_api else None
    return errors.install(app)
