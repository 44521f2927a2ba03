"""Composition root of the trainer service: the only place its real adapters are built."""
from __future__ import annotations

import contextlib
import functools
from pathlib import Path
from typing import AsyncIterator

from fastapi import FastAPI

from services import trainer
from services.kit import errors, secrets
from services.kit.service import Platform, build_service
from services.kit.settings import Settings
from services.trainer import api, handlers
from services.trainer.specs import ReadySpecs
from services.trainer.unit_of_work import TrainerUnitOfWork

MIGRATIONS = Path(__file__).parent / "migrations"


@contextlib.asynccontextmanager
async def _setup(platform: Platform, app: FastAPI) -> AsyncIterator[None]:
    platform.message_bus(app, platform.units(functools.partial(TrainerUnitOfWork, specs=ReadySpecs())),
                         commands=handlers.COMMANDS, events=handlers.EVENTS, locks=handlers.LOCKS,
                         together=handlers.TOGETHER, dependencies={"cipher": app.state.secret_cipher})
    yield


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    app = build_service("trainer", settings, routers=[api.router, secrets.resolve_router()],
                        migrations=MIGRATIONS, setup=_setup, description=trainer.__doc__ or "")
    # the API side stores and resolves secret values; an events-only process never needs the key
    app.state.secret_cipher = secrets.cipher_for(settings) if settings.serves_api else None
    return errors.install(app)
