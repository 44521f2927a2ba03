"""The kit's RequestTimer: one duration sample per HTTP request, by route template (not URL), method and the
code the client got, including refusals at the door, unknown paths and a route that raised."""
from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY

from services.kit import errors
from services.kit.body import BodyGuard
from services.kit.request_timer import UNMATCHED, RequestTimer


def make_app(service: str) -> FastAPI:
    app = FastAPI()
    app.add_middleware(BodyGuard, max_bytes=64)
    app.add_middleware(RequestTimer, service=service)
    errors.install(app)

    @app.get("/things/{thing_id}")
    async def thing(thing_id: str) -> dict:
        await asyncio.sleep(0.03)
        return {"thing_id": thing_id}

    @app.post("/things")
    async def create(body: dict) -> dict:
        return body

    @app.get("/broken")
    async def broken() -> dict:
        raise RuntimeError("a bug")

    return app


def sample(service: str, suffix: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(f"avatar_http_request_duration_seconds{suffix}", {"service": service, **labels})


@pytest.fixture
def service() -> str:
    return f"timer-{uuid.uuid4().hex[:8]}"  # the registry is process-wide: each test its own series


async def test_each_request_is_one_sample_under_its_route_template(service):
    transport = httpx.ASGITransport(app=make_app(service), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for thing_id in ("a", "b", "c"):
            assert (await client.get(f"/things/{thing_id}")).status_code == 200
        assert (await client.post("/things", json={"name": "x"})).status_code == 200
        assert (await client.post("/things", content=b"{" + b" " * 100 + b"}",
                                  headers={"content-type": "application/json"})).status_code == 413
        assert (await client.get("/nowhere/1")).status_code == 404
        assert (await client.get("/broken")).status_code == 500
        assert (await client.request("BREW", "/things/a")).status_code == 405

    route = {"method": "GET", "route": "/things/{thing_id}", "code": "200"}
    assert sample(service, "_count", **route) == 3  # three URLs, one series
    assert sample(service, "_sum", **route) >= 3 * 0.03  # the route's own time is inside
    assert sample(service, "_bucket", le="0.025", **route) == 0
    assert sample(service, "_count", method="POST", route="/things", code="200") == 1
    assert sample(service, "_count", method="POST", route=UNMATCHED, code="413") == 1  # refused at the door
    assert sample(service, "_count", method="GET", route=UNMATCHED, code="404") == 1
    assert sample(service, "_count", method="GET", route="/broken", code="500") == 1
    assert sample(service, "_count", method="other", route="/things/{thing_id}", code="405") == 1
