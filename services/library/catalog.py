"""Registering components, from a request or from the seed catalog on first start (CL-01)."""
from __future__ import annotations

import logging
from pathlib import Path

import asyncpg
from pydantic import TypeAdapter

from contracts.events import ComponentChanged, ComponentSnapshot
from services.kit.outbox import Outbox
from services.library import domain, store
from services.library.schemas import ComponentRegistration

log = logging.getLogger(__name__)
SEED_USER = "library-seed"
_SEED_LOCK = 0x1B5EED  # one replica seeds; the others find the catalog no longer empty


async def register(conn: asyncpg.Connection, outbox: Outbox, body: ComponentRegistration,
                   user: str) -> ComponentSnapshot:
    number = await store.next_number(conn)
    component = ComponentSnapshot(component_id=domain.component_id(number), **body.model_dump())
    await store.insert(conn, number, component, user)
    await outbox.emit(conn, "component.registered", ComponentChanged(component=component),
                      correlation_id=component.component_id)
    return component


def read_catalog(path: Path) -> list[ComponentRegistration]:
    """A broken seed file is a deployment error: it stops the start with the reason."""
    return TypeAdapter(list[ComponentRegistration]).validate_json(path.read_bytes())


async def seed(pool: asyncpg.Pool, outbox: Outbox, source: str) -> int:
    """Register the catalog's components if the library is empty; returns how many."""
    if not source:
        return 0
    path = Path(source)
    if not path.is_file():
        log.warning("seed catalog %s not found; the library starts empty", path)
        return 0
    entries = read_catalog(path)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _SEED_LOCK)
        if await store.any_component(conn):
            return 0
        for entry in entries:
            await register(conn, outbox, entry, SEED_USER)
    log.info("seeded the library with %d components from %s", len(entries), path)
    return len(entries)
