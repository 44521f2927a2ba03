"""Composition root of the library service: the only place its real adapters are built."""
from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.kit.service import build_service
from services.kit.settings import Settings
from services.library import api

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: Settings | None = None) -> FastAPI:
    return build_service("library", settings or Settings(), routers=[api.router], migrations=MIGRATIONS,
                         description=__doc__ or "")
