"""Composition root of the library service: the only place its real adapters are built."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import AsyncIterator

from fastapi import FastAPI

from services import library
from services.kit import errors
from services.kit.service import Platform, build_service
from services.kit.settings import Settings, settings_for
from services.library import api, catalog, handlers
from services.library.commands import SeedCatalog
from services.library.settings import LibrarySettings
from services.library.unit_of_work import LibraryUnitOfWork

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings_for(LibrarySettings, settings)

    @contextlib.asynccontextmanager
    async def setup(platform: Platform, app: FastAPI) -> AsyncIterator[None]:
        bus = platform.message_bus(app, platform.units(LibraryUnitOfWork), commands=handlers.COMMANDS,
                                   events=handlers.EVENTS)
        seed = settings.library_seed_catalog
        await bus.handle(SeedCatalog(catalog.seed_entries(seed), source=str(seed)))
        yield

    app = build_service("library", settings, routers=[api.router], migrations=MIGRATIONS,
                        setup=setup, description=library.__doc__ or "")
    return errors.install(app)
