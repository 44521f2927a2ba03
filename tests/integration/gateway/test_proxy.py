"""The gateway's proxy: what reaches a service, what comes back, streamed, and the merged OpenAPI document."""
from __future__ import annotations

import asyncio
import gzip
import json

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from services.gateway import proxy
from services.gateway.main import create_app
from services.kit.auth import verify_token_async
from services.kit.jwks import JwksCache, http_fetcher
from services.library.main import create_app as create_library
from tests.integration.gateway.conftest import gateway_settings
from tests.integration.library.support import component_body
from tests.support.http_server import serving
from tests.support.infra import free_port
from tests.support.services import auth, running_service


class Echo:
    """A peer service that answers with what it received, and streams on demand."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started_streaming = asyncio.Event()

    async def echo(self, request: Request) -> Response:
        return JSONResponse({"method": request.method, "path": request.scope["raw_path"].decode(),
                             "query": request.scope["query_string"].decode(),
                             "headers": dict(request.headers), "body": (await request.body()).decode()},
                            headers={"set-cookie": "upstream=1", "x-upstream": "yes"})

    async def slow(self, request: Request) -> Response:
        async def body():
            yield b"first chunk\n"
            self.started_streaming.set()
            await self.release.wait()
            yield b"last chunk\n"
        return StreamingResponse(body(), media_type="text/plain")

    async def moved(self, request: Request) -> Response:
        base = f"{request.url.scheme}://{request.headers['host']}"
        return Response(status_code=307, headers={"location": f"{base}/apps?page=2"})

    async def quiet(self, request: Request) -> Response:
        async def body():
            for _ in range(3):
                yield b"tick\n"
                await asyncio.sleep(1.5)
        return StreamingResponse(body(), media_type="text/plain")

    async def ticking(self, request: Request) -> Response:
        async def body():
            for _ in range(40):
                yield b"tick\n"
                await asyncio.sleep(0.1)
        return StreamingResponse(body(), media_type="text/plain")

    async def zipped(self, request: Request) -> Response:
        return Response(gzip.compress(b"x" * 10_000), headers={"content-encoding": "gzip", "content-type": "text/plain"})

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/slow", self.slow), Route("/zipped", self.zipped), Route("/moved", self.moved),
                                 Route("/quiet", self.quiet), Route("/ticking", self.ticking),
                                 Route("/{rest:path}", self.echo, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])])


@pytest.fixture
async def proxied(fresh):
    """The gateway on a real port in front of an echoing peer (as the builder) and a real library service,
    which verifies the gateway's tokens against its JWKS; the trainer's port answers nothing."""
    echo, gateway_port = Echo(), free_port()
    jwks_url = f"http://127.0.0.1:{gateway_port}/api/auth/jwks.json"
    async with serving(echo.app(), lifespan="off") as echo_url, \
            running_service(create_library, fresh.settings(jwt_jwks_url=jwks_url)) as library:
        async with serving(library.app, lifespan="off") as library_url:
            settings = gateway_settings(fresh, upstream_urls={"builder": echo_url, "library": library_url,
                                                              "trainer": f"http://127.0.0.1:{free_port()}"},
                                        upstream_timeout_seconds=1.0)
            async with running_service(create_app, settings) as gateway, \
                    serving(gateway.app, port=gateway_port, lifespan="off"):
                gateway.jwks_url = jwks_url
                yield gateway, echo, library


async def test_the_service_sees_the_gateways_token_and_none_of_the_clients_identity_claims(proxied):
    gateway, _, _ = proxied
    headers = {**auth(gateway.settings, "researcher", "kim"), "Cookie": "avatar_session=stolen",
               "X-Forwarded-User": "admin", "X-Avatar-User": "admin", "X-Remote-User": "admin",
               "X-Forwarded-For": "10.9.9.9", "X-Request-ID": "req-123", "Accept": "application/json"}
    response = await gateway.client.get("/api/builder/apps/A%2FB/x?q=a%20b&q=c", headers=headers)
    assert response.status_code == 200, response.text
    seen = response.json()
    assert seen["path"] == "/apps/A%2FB/x" and seen["query"] == "q=a%20b&q=c"
    sent = seen["headers"]
    for claim in ("cookie", "x-forwarded-user", "x-avatar-user", "x-remote-user"):
        assert claim not in sent
    assert sent["x-forwarded-for"] != "10.9.9.9"
    assert sent["accept"] == "application/json"
    principal = await verify_token_async(gateway.settings.model_copy(update={"jwt_jwks_url": gateway.jwks_url}),
                                         sent["authorization"].removeprefix("Bearer "),
                                         JwksCache(http_fetcher(gateway.jwks_url)))
    assert (principal.user, principal.role) == ("kim", "researcher")
    assert sent["authorization"] != headers["Authorization"]
    # the gateway names the request itself (audit rows are joined by it), whatever the client sent
    assert sent["x-request-id"] == response.headers["x-request-id"] != "req-123"
    assert "traceparent" in sent
    assert response.headers["x-upstream"] == "yes"
    assert "set-cookie" not in response.headers  # a service never sets the browser's cookies


async def test_a_request_body_reaches_the_service_unchanged(proxied):
    gateway, _, _ = proxied
    body = json.dumps({"name": "한국어 ✓", "n": 1})
    response = await gateway.client.post("/api/builder/apps", content=body.encode(),
                                         headers={**auth(gateway.settings), "Content-Type": "application/json"})
    assert response.json()["body"] == body and response.json()["method"] == "POST"


async def test_an_answer_streams_through_before_the_service_finished_it(proxied):
    gateway, echo, _ = proxied
    # over a real socket: httpx's in-process ASGI transport hands back a body only once it is complete
    async with serving(gateway.app, lifespan="off") as url, httpx.AsyncClient(base_url=url, timeout=10) as client, \
            client.stream("GET", "/api/builder/slow", headers=auth(gateway.settings)) as response:
        chunks = response.aiter_bytes()
        first = await asyncio.wait_for(chunks.__anext__(), 5)
        assert first.startswith(b"first chunk")
        assert echo.started_streaming.is_set() and not echo.release.is_set()
        echo.release.set()
        rest = b"".join([chunk async for chunk in chunks])
    assert rest.endswith(b"last chunk\n")


async def test_a_stream_quieter_than_the_answer_timeout_is_not_cut(proxied):
    """The timeout bounds the wait for the answer's head (1 s here), not the pauses of a log tail."""
    gateway, _, _ = proxied
    async with serving(gateway.app, lifespan="off") as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        response = await client.get("/api/builder/quiet", headers=auth(gateway.settings))
    assert response.status_code == 200 and response.text == "tick\n" * 3


async def test_a_deactivated_user_stops_receiving_an_open_stream(proxied, monkeypatch):
    gateway, _, _ = proxied
    monkeypatch.setattr(proxy, "REVALIDATE_SECONDS", 0.3)
    admin = auth(gateway.settings, "admin", "root")
    created = await gateway.client.post("/api/users", headers=admin, json={
        "id": "streamer", "display_name": "Streamer", "role": "viewer", "kind": "person", "email": "s@avatar.local"})
    assert created.status_code == 201, created.text
    received = b""
    async with serving(gateway.app, lifespan="off") as url, httpx.AsyncClient(base_url=url, timeout=10) as client, \
            client.stream("GET", "/api/builder/ticking", headers=auth(gateway.settings, "viewer", "streamer")) as response:
        assert response.status_code == 200
        try:
            async for chunk in response.aiter_bytes():
                received += chunk
                if received.count(b"tick") == 3:
                    deactivated = await gateway.client.post("/api/users/streamer/deactivate", headers=admin)
                    assert deactivated.status_code == 200, deactivated.text
        except httpx.HTTPError:
            pass  # the gateway cut the body short: the client may see it as a broken transfer
    assert 3 <= received.count(b"tick") < 40


async def test_a_services_redirect_points_back_through_the_gateway(proxied):
    gateway, _, _ = proxied
    response = await gateway.client.get("/api/builder/moved", headers=auth(gateway.settings))
    assert response.status_code == 307 and response.headers["location"] == "/api/builder/apps?page=2"


async def test_compressed_answers_pass_through_as_sent(proxied):
    gateway, _, _ = proxied
    async with gateway.client.stream("GET", "/api/builder/zipped", headers=auth(gateway.settings)) as response:
        raw = b"".join([chunk async for chunk in response.aiter_raw()])
    assert response.headers["content-encoding"] == "gzip" and gzip.decompress(raw) == b"x" * 10_000


async def test_refusals_at_the_door(proxied):
    gateway, _, _ = proxied
    assert (await gateway.client.get("/api/builder/apps")).status_code == 401
    unknown = await gateway.client.get("/api/nosuch/things", headers=auth(gateway.settings))
    assert unknown.status_code == 404 and "builder" in unknown.json()["detail"]
    down = await gateway.client.get("/api/trainer/training-requests", headers=auth(gateway.settings))
    assert down.status_code == 503 and down.json()["detail"]["dependency"] == "trainer"
    assert int(down.headers["retry-after"]) >= 1


async def test_a_proxied_request_is_bounded_and_answered_like_the_gateways_own_routes(proxied):
    gateway, _, _ = proxied
    headers = auth(gateway.settings)
    too_big = await gateway.client.post("/api/builder/apps", content=b"x" * (gateway.settings.max_body_bytes + 1),
                                        headers=headers)
    assert too_big.status_code == 413 and "detail" in too_big.json()
    odd = await gateway.client.request("PROPFIND", "/api/builder/apps", headers=headers)
    assert odd.status_code == 405  # only the methods the services take are forwarded


async def test_postgresql_away_is_a_503_naming_it_on_a_proxied_request(proxied, monkeypatch):
    gateway, _, _ = proxied
    identity = gateway.app.state.identity
    away = await asyncpg.create_pool(f"postgresql://avatar@127.0.0.1:{free_port()}/avatar", min_size=0)
    monkeypatch.setattr(identity, "pool", away)  # every lookup the caller needs meets a refused connection
    try:
        answer = await gateway.client.get("/api/builder/apps", headers=auth(gateway.settings, "viewer", "nobody-cached"))
    finally:
        await away.close()
    assert answer.status_code == 503, answer.text
    assert answer.json()["detail"]["dependency"] == "postgresql"
    assert int(answer.headers["retry-after"]) >= 1


async def test_a_real_service_through_the_gateway_acts_as_the_caller(proxied):
    gateway, _, library = proxied
    component = component_body("proxy-probe")
    created = await gateway.client.post("/api/library/components", json=component,
                                        headers=auth(gateway.settings, "researcher", "lee"))
    assert created.status_code in (200, 201), created.text
    direct = await library.client.get(f"/components/{created.json()['component_id']}", headers=library.headers())
    assert direct.json()["owner"] == "lee"
    through = await gateway.client.get(f"/api/library/components/{created.json()['component_id']}",
                                       headers=auth(gateway.settings, "viewer", "park"))
    assert through.status_code == 200 and through.json() == direct.json()


async def test_one_openapi_document_for_the_platform(proxied):
    gateway, _, _ = proxied
    document = (await gateway.client.get("/api/openapi.json")).json()
    assert "/api/library/components" in document["paths"]
    assert "/api/library/healthz" not in document["paths"]
    schemas = document["components"]["schemas"]
    assert any(name.startswith("library.") for name in schemas)
    refs = [value for value in _refs(document["paths"]["/api/library/components"])]
    assert refs and all(ref.startswith("#/components/schemas/library.") for ref in refs)
    assert all(ref.removeprefix("#/components/schemas/") in schemas for ref in refs)
    assert "trainer" in document["info"]["x-unavailable"]  # the trainer is down in this test
    docs = await gateway.client.get("/api/docs")
    assert docs.status_code == 200 and "/api/openapi.json" in docs.text
    asset = await gateway.client.get("/api/docs/assets/swagger-ui-bundle.js")
    assert asset.status_code == 200 and len(asset.content) > 100_000
    assert (await gateway.client.get("/api/docs/assets/..%2Fsettings.py")).status_code == 404


async def test_the_proxy_names_the_route_a_request_took(proxied):
    gateway, _, _ = proxied
    await gateway.client.get("/api/openapi.json")  # the templates come with the documents
    merger = gateway.app.state.openapi_merger
    assert merger.match("library", "GET", "/components/CL-1") == ("/components/{component_id}", {"component_id": "CL-1"}) \
        or merger.match("library", "GET", "/components/CL-1")[0].startswith("/components/{")


async def test_a_proxied_request_continues_the_callers_trace_and_is_timed_and_audited_by_its_route(proxied):
    gateway, _, library = proxied
    trace_id, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    traced = {**auth(gateway.settings, "researcher", "kim"), "traceparent": f"00-{trace_id}-{parent}-00"}
    seen = (await gateway.client.post("/api/builder/apps", json={"name": "x"}, headers=traced)).json()["headers"]
    version, forwarded_trace, forwarded_parent, _ = seen["traceparent"].split("-")
    assert (version, forwarded_trace) == ("00", trace_id)
    assert forwarded_parent != parent  # the gateway's own server span sits between the caller and the service
    await gateway.app.state.audit.flush()
    row = await gateway.platform.pool.fetchrow("SELECT * FROM audit_log WHERE path = '/api/builder/apps'")
    assert (row["trace_id"], row["request_id"], row["route"]) == (trace_id, seen["x-request-id"], "/api/builder/{path}")

    created = await gateway.client.post("/api/library/components", json=component_body("timed-probe"),
                                        headers=auth(gateway.settings, "researcher", "lee"))
    component_id = created.json()["component_id"]
    assert (await gateway.client.get(f"/api/library/components/{component_id}",
                                     headers=auth(gateway.settings))).status_code == 200
    exposed = (await gateway.client.get("/metrics")).text
    # a series per route template, never per URL: the builder's echo publishes no OpenAPI document
    assert 'route="/api/library/components/{component_id}"' in exposed
    assert f'route="/api/library/components/{component_id}"' not in exposed
    assert 'method="POST",route="/api/builder/{path}"' in exposed
    await gateway.app.state.audit.flush()
    created_row = await gateway.platform.pool.fetchrow("SELECT * FROM audit_log WHERE path = '/api/library/components'")
    assert (created_row["route"], created_row["status"]) == ("/api/library/components", created.status_code)


def _refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


async def test_the_console_files_and_their_caching(fresh, tmp_path):
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text("<!doctype html><div id=root></div>")
    (tmp_path / "assets" / "index-3f2a.js").write_text("console.log(1)")
    async with running_service(create_app, gateway_settings(fresh, console_dir=tmp_path)) as gateway:
        index = await gateway.client.get("/")
        assert index.status_code == 200 and "root" in index.text and index.headers["cache-control"] == "no-cache"
        asset = await gateway.client.get("/assets/index-3f2a.js")
        assert "immutable" in asset.headers["cache-control"]
        deep = await gateway.client.get("/apps/APP-1/tasks/T-1")
        assert deep.status_code == 200 and "root" in deep.text  # the console's own route
        assert (await gateway.client.get("/assets/missing-1.js")).status_code == 404
        assert (await gateway.client.get("/api/nothing")).status_code in (401, 404)
        outside = await gateway.client.get("/..%2F..%2Fetc/passwd")
        assert "root:" not in outside.text  # never a file outside the console's folder
        assert (await gateway.client.get("/healthz")).json()["service"] == "gateway"
