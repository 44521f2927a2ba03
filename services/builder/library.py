"""The Builder's client of the component library: one component by id, with the caller's own token.

The Builder asks only when its read model (fed by `component.registered` / `component.updated`) has
not heard of the id yet: the event is still on its way, or the builder's database is new.
"""
from __future__ import annotations

import asyncio
import logging
from urllib.parse import quote

import httpx
from pydantic import ValidationError

from contracts.events import ComponentSnapshot
from services.kit.errors import Invalid, Unavailable
from services.kit.telemetry import inject_headers

log = logging.getLogger(__name__)
ATTEMPTS = 3


class LibraryClient:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def fetch(self, component_id: str, authorization: str | None) -> ComponentSnapshot:
        headers = inject_headers({"Authorization": authorization} if authorization else {})
        for attempt in range(1, ATTEMPTS + 1):
            try:
                response = await self._client.get(f"/components/{quote(component_id, safe='')}", headers=headers)
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
