"""Where the Builder finds a library component to place (BL-01, BL-11).

First its own read model, fed by `component.registered` / `component.updated`; when that has not
heard of the id yet (the event is still on its way, or the builder's database is new), one HTTP
lookup at the library with the caller's own token, remembered in the read model.
"""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone

import asyncpg
import httpx
from pydantic import ValidationError

from contracts.events import ComponentSnapshot
from services.builder import store
from services.kit.errors import DomainError, Invalid, Unavailable
from services.kit.metrics import Counter
from services.kit.telemetry import inject_headers

log = logging.getLogger(__name__)
ATTEMPTS = 3
LOOKUPS = Counter("avatar_builder_library_lookups_total", "Where placed components were found",
                  ["source"])  # read_model | library | unknown_component | unavailable


class ComponentCatalog:
    def __init__(self, pool: asyncpg.Pool, client: httpx.AsyncClient) -> None:
        self._pool = pool
        self._client = client

    async def find(self, component_id: str, authorization: str | None) -> ComponentSnapshot:
        known = await store.library_component(self._pool, component_id)
        if known is not None:
            LOOKUPS.labels("read_model").inc()
            return known
        try:
            snapshot = await self._fetch(component_id, authorization)
        except DomainError as refused:
            LOOKUPS.labels(refused.code).inc()
            raise
        LOOKUPS.labels("library").inc()
        await store.remember_component(self._pool, snapshot, datetime.now(timezone.utc))
        return snapshot

    async def _fetch(self, component_id: str, authorization: str | None) -> ComponentSnapshot:
        headers = inject_headers({"Authorization": authorization} if authorization else {})
        for attempt in range(1, ATTEMPTS + 1):
            try:
                response = await self._client.get(f"/components/{component_id}", headers=headers)
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code == 404:
                    raise Invalid(f"unknown library component {component_id}: the component library has no such id",
                                  code="unknown_component")
                if response.status_code < 500:
                    return self._snapshot(component_id, response)
                problem = f"HTTP {response.status_code}"
            log.warning("library lookup of %s failed (attempt %d): %s", component_id, attempt, problem)
            if attempt < ATTEMPTS:
                await asyncio.sleep(0.2 * 2 ** (attempt - 1))
        raise Unavailable(f"the component library did not answer for {component_id} ({problem}); try again shortly")

    @staticmethod
    def _snapshot(component_id: str, response: httpx.Response) -> ComponentSnapshot:
        if response.status_code != 200:
            raise Unavailable(f"the component library refused the lookup of {component_id} "
                              f"(HTTP {response.status_code}: {response.text[:200]})")
        try:
            body = response.json()
            return ComponentSnapshot.model_validate({k: body[k] for k in ComponentSnapshot.model_fields if k in body})
        except (ValueError, ValidationError) as exc:
            raise Unavailable(f"the component library answered {component_id} with an unreadable body: {exc}") from exc
