"""Composition root of the approval service: the only place its real adapters are built."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import AsyncIterator

from fastapi import FastAPI

from services import approval
from services.approval import api, handlers
from services.approval.settings import ApprovalSettings
from services.approval.unit_of_work import ApprovalUnitOfWork
from services.kit import errors
from services.kit.service import Platform, build_service
from services.kit.settings import Settings, settings_for

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings_for(ApprovalSettings, settings)

    @contextlib.asynccontextmanager
    async def setup(platform: Platform, app: FastAPI) -> AsyncIterator[None]:
        bus = platform.message_bus(app, platform.units(ApprovalUnitOfWork), commands=handlers.COMMANDS,
                                   events=handlers.EVENTS, dependencies={"settings": settings})
        if platform.handles_events:
            platform.spawn(handlers.sweep_overdue_tests(bus, settings.loop_test_timeout_seconds,
                                                        settings.loop_test_sweep_seconds), "approval-loop-test-sweep")
        yield

    app = build_service("approval", settings, routers=[api.router], migrations=MIGRATIONS, setup=setup,
                        description=approval.__doc__ or "")
    return errors.install(app)
