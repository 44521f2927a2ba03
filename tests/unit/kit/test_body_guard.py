"""The kit's BodyGuard: 413 above the limit (declared or chunked, read or not by the route), 422 for JSON
only Python accepts (NaN, Infinity, 1e999, lone surrogates) and for JSON nested deeper than any request,
and everything else reaches the route intact."""
from __future__ import annotations

import json

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from services.kit.body import MAX_BODY_DEPTH, BodyGuard, depth_problem, json_problem
from tests.unit.kit.test_bounded_json import nested


class Item(BaseModel):
    name: str
    params: dict = {}


def make_app(limit: int = 1024) -> FastAPI:
    app = FastAPI()
    app.add_middleware(BodyGuard, max_bytes=limit)

    @app.post("/items")
    async def create(item: Item) -> dict:
        return item.model_dump()

    @app.post("/no-body")  # never reads its body
    async def no_body() -> dict:
        return {"ok": True}

    @app.get("/plain")
    async def plain() -> dict:
        return {"ok": True}

    return app


@pytest.fixture
async def client():
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=make_app()), base_url="http://t") as c:
        yield c


def chunked(data: bytes, size: int = 100):
    async def gen():
        for i in range(0, len(data), size):
            yield data[i:i + size]
    return gen()


JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize("path", ["/items", "/no-body"])
async def test_oversized_body_is_413_with_or_without_content_length(client, path):
    big = b'{"name": "' + b"x" * 2000 + b'"}'
    declared = await client.post(path, content=big, headers=JSON)
    streamed = await client.post(path, content=chunked(big), headers=JSON)
    for response in (declared, streamed):
        assert response.status_code == 413
        assert "larger than 1024 bytes" in response.json()["detail"]
    assert "content-length" not in {k.lower() for k in streamed.request.headers}


async def test_bodies_within_the_limit_reach_the_route_whole(client):
    body = b'{"name": "' + "한".encode() * 300 + b'"}'
    declared = await client.post("/items", content=body, headers=JSON)
    streamed = await client.post("/items", content=chunked(body, 7), headers=JSON)
    assert declared.status_code == streamed.status_code == 200
    assert declared.json() == streamed.json() == {"name": "한" * 300, "params": {}}
    assert (await client.get("/plain")).json() == {"ok": True}


@pytest.mark.parametrize("raw", [b'{"name": "a", "params": {"x": NaN}}', b'{"name": "a", "params": {"x": -Infinity}}',
                                 b'{"name": "a", "params": {"x": 1e999}}', b'{"name": "\\ud800"}',
                                 b'{"name": "a", "params": {"\\udc00": 1}}', b'{"name": "\xed\xa0\x80"}'])
async def test_json_only_python_accepts_is_422_with_a_message(client, raw):
    response = await client.post("/items", content=raw, headers=JSON)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["type"] == "json_invalid" and error["msg"]


@pytest.mark.parametrize("raw", [b'{"name": "NaN Infinity \\\\ud800 1e999"}', b'{"name": "a", "params": {"x": 1e300}}',
                                 b'{"name": "\\ud83d\\ude00"}'])
def test_lookalikes_are_fine(raw):
    assert json_problem(raw) is None


@pytest.fixture
async def roomy():
    """A client whose limit lets deep bodies through to the depth check."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=make_app(1 << 20)), base_url="http://t") as c:
        yield c


@pytest.mark.parametrize("levels", [300, 100_000])
async def test_a_body_nested_too_deep_is_422_naming_where(roomy, levels):
    body = json.dumps({"name": "a", "params": {"env_config": nested(levels - 3)}}) if levels < 1000 else (
        '{"name": "a", "params": {"env_config": ' + '{"a": ' * levels + "1" + "}" * levels + "}}")
    response = await roomy.post("/items", content=body, headers=JSON)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["type"] == "json_too_deep"
    assert f"deeper than {MAX_BODY_DEPTH} levels" in error["msg"]
    if levels < 1000:
        assert error["loc"][:3] == ["body", "params", "env_config"]
        assert "(at params.env_config.a.a" in error["msg"]
    else:  # deeper than Python's own parser goes: refused all the same
        assert error["loc"] == ["body"]


async def test_bodies_within_the_depth_limit_pass(roomy):
    deepest = json.dumps({"name": "a", "params": nested(MAX_BODY_DEPTH - 2)})
    assert (await roomy.post("/items", content=deepest, headers=JSON)).status_code == 200
    many = json.dumps({"name": "a", "params": {"items": [[{"a": [1]}] for _ in range(500)]}})  # many brackets, shallow
    assert (await roomy.post("/items", content=many, headers=JSON)).status_code == 200


def test_depth_is_only_measured_for_bodies_with_enough_brackets():
    assert depth_problem(b"[" * MAX_BODY_DEPTH) is None  # cannot be deeper than its bracket count
    assert depth_problem(b'"' + b"[" * 500 + b'"') is None  # inside a string, brackets are text
    assert depth_problem(b"[" * 500) is None  # not JSON: FastAPI reports that
    assert depth_problem(json.dumps(nested(MAX_BODY_DEPTH + 1)).encode())["type"] == "json_too_deep"
