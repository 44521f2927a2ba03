"""`/api/<service>/...` forwarded to the service, streamed back, as the caller the gateway resolved.

The client's own credentials and identity headers never reach a service: the gateway sends instead a
short-lived RS256 token it signed for the caller (services/gateway/signing.py), a request id and the
trace context. The answer streams back chunk by chunk (a model download or a log tail is never held in
the gateway's memory), compressed bytes passed through as they are.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import Any, AsyncIterator

import aiohttp
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import StreamingResponse
from opentelemetry import propagate
from prometheus_client import Counter
from starlette.convertors import Convertor, register_url_convertor
from yarl import URL

from services.gateway.identity import current_caller
from services.gateway.settings import UPSTREAMS, GatewaySettings

log = logging.getLogger(__name__)
CHUNK = 64 * 1024
# an answer this short with its length known is sent without a task watching for the client to leave: it is
# over in one or two writes, and that task group is a tenth of the gateway's CPU per request
SMALL_ANSWER = 1024 * 1024
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


class _Upstream(Convertor):
    """A path segment naming one of the six services. The proxy's route can then come first, so a proxied
    request is matched at once (by the router and by the tracing middleware, which each try every route in
    order); none of the gateway's own routes starts with a service's name."""

    regex = "|".join(UPSTREAMS)

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("upstream", _Upstream())
fast_router = APIRouter()  # first of the gateway's routers (main.py)
router = APIRouter()       # last: /api/<anything else>/... answers 404 naming the services
UPSTREAM_FAILURES = Counter("avatar_gateway_upstream_failures_total",
                            "Proxied requests the service did not answer", ["service", "reason"])

# RFC 9110 §7.6.1 hop-by-hop fields, plus what the gateway itself decides for the service
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                        "transfer-encoding", "upgrade", "host", "content-length"})
# what a client must not say about itself: the service believes only the gateway's token
IDENTITY = frozenset({"authorization", "cookie", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto",
                      "x-forwarded-user", "x-forwarded-email", "x-forwarded-groups", "x-real-ip", "x-remote-user",
                      "remote-user", "x-user", "x-user-id", "x-auth-request-user", "x-auth-request-email", "forwarded",
                      "x-request-id", "traceparent", "tracestate", "baggage"})
IDENTITY_PREFIXES = ("x-avatar-", "x-auth-", "x-forwarded-")
RESPONSE_DROP = frozenset({"connection", "keep-alive", "transfer-encoding", "set-cookie", "server", "date"})
# an open stream (a download, a log tail) checks again at most this often that its caller may still read
REVALIDATE_SECONDS = 5.0


def upstream_headers(incoming: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """The client's headers a service may see: everything but hop-by-hop fields and identity claims."""
    kept: dict[str, str] = {}
    for raw_name, raw_value in incoming:
        name = raw_name.decode("latin-1").lower()
        if name in HOP_BY_HOP or name in IDENTITY or name.startswith(IDENTITY_PREFIXES):
            continue
        value = raw_value.decode("latin-1")
        kept[name] = f"{kept[name]}, {value}" if name in kept else value
    return kept


def location_for(value: str, service: str, upstream_base: str) -> str:
    """A service's redirect as the client must follow it: through the gateway, under the service's prefix
    (a service builds absolute URLs from the Host it was called with, an address only the gateway reaches)."""
    if value.startswith(upstream_base + "/") or value == upstream_base:
        return f"/api/{service}{value[len(upstream_base):] or '/'}"
    if value.startswith("/") and not value.startswith("//"):
        return f"/api/{service}{value}"
    return value


class Upstreams(contextlib.AbstractAsyncContextManager):
    """One pooled HTTP client to the six services, for the proxy and the OpenAPI merger."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> "Upstreams":
        connector = aiohttp.TCPConnector(limit=self.settings.upstream_connections, keepalive_timeout=30,
                                         ttl_dns_cache=60)
        # no read timeout on the body: a log tail may be quiet for minutes; the wait for the answer's head is
        # bounded in `forward` instead
        timeout = aiohttp.ClientTimeout(total=None, connect=5, sock_read=None)
        # bytes pass through as the service sent them: no decompression, no cookies kept between callers
        self.session = aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False,
                                             cookie_jar=aiohttp.DummyCookieJar(),
                                             skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"))
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    def url(self, service: str, path: str, query: str) -> URL:
        return URL(f"{self.settings.upstream(service)}/{path}" + (f"?{query}" if query else ""), encoded=True)


@router.api_route("/api/{service}/{path:path}", methods=METHODS, include_in_schema=False)
async def unknown_service(service: str, path: str) -> None:
    raise HTTPException(404, f"no such service {service!r}; the gateway routes /api/<service>/... for "
                             f"{', '.join(UPSTREAMS)}")


@fast_router.api_route("/api/{service:upstream}/{path:path}", methods=METHODS, include_in_schema=False)
async def forward(service: str, path: str, request: Request) -> StreamingResponse:
    caller = await current_caller(request)
    upstreams: Upstreams = request.app.state.upstreams
    merger = request.app.state.openapi_merger
    raw_path = request.scope.get("raw_path", b"").decode("latin-1").split("?", 1)[0]
    rest = raw_path.split("/", 3)[3] if raw_path.count("/") >= 3 else path
    matched = merger.match(service, request.method, "/" + path)
    if matched is not None:
        request.state.route_template, request.state.target_ids = f"/api/{service}{matched[0]}", matched[1]
    headers = upstream_headers(request.scope["headers"])
    # the gateway names each request itself: audit rows joined by it must not be joinable by a client's choice
    request_id = uuid.uuid4().hex
    request.state.request_id = request_id
    headers["authorization"] = f"Bearer {request.app.state.signer.access_token(caller.user, caller.role)}"
    headers["x-request-id"] = request_id
    headers["x-forwarded-for"] = (request.client.host if request.client else "unknown")
    headers["x-forwarded-proto"] = request.url.scheme
    if host := request.headers.get("host"):
        headers["x-forwarded-host"] = host
    propagate.inject(headers)
    body = await request.body() if request.method not in ("GET", "HEAD", "OPTIONS") else None
    assert upstreams.session is not None
    settings = request.app.state.settings
    try:
        upstream = await asyncio.wait_for(upstreams.session.request(
            request.method, upstreams.url(service, rest, request.scope.get("query_string", b"").decode("latin-1")),
            headers=headers, data=body, allow_redirects=False), settings.upstream_timeout_seconds)
    except asyncio.TimeoutError:
        UPSTREAM_FAILURES.labels(service, "timeout").inc()
        raise HTTPException(504, f"the {service} service did not answer in time") from None
    except aiohttp.ClientError as exc:
        UPSTREAM_FAILURES.labels(service, "unreachable").inc()
        log.warning("upstream %s unreachable: %s", service, exc)
        raise HTTPException(503, {"error": "dependency_unavailable", "dependency": service,
                                  "message": f"the {service} service does not answer; try again shortly"},
                            headers={"Retry-After": str(settings.dependency_retry_after_seconds)}
                            ) from None
    base = settings.upstream(service)
    response_headers = [(name, location_for(value, service, base) if name.lower() == "location" else value)
                        for name, value in upstream.headers.items() if name.lower() not in RESPONSE_DROP]
    response_headers.append(("x-request-id", request_id))
    return _Streamed(upstream, response_headers, request)


class _Streamed(StreamingResponse):
    """The service's answer as it arrives; the upstream connection goes back to the pool (or is closed,
    when the client went away mid-stream) once the body is done."""

    def __init__(self, upstream: aiohttp.ClientResponse, headers: list[tuple[str, str]], request: Request) -> None:
        super().__init__(self._body(upstream, request), status_code=upstream.status)
        self.raw_headers = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]
        self.upstream = upstream

    @staticmethod
    async def _body(upstream: aiohttp.ClientResponse, request: Request) -> AsyncIterator[bytes]:
        checked = time.monotonic()
        try:
            async for chunk in upstream.content.iter_chunked(CHUNK):
                if time.monotonic() - checked > REVALIDATE_SECONDS:
                    # a deactivated user or a revoked token stops receiving, even mid-download
                    try:
                        await request.app.state.identity.resolve(request)
                    except HTTPException as refused:
                        log.info("stream to %s stopped: %s", getattr(request.state, "caller", None), refused.detail)
                        upstream.close()
                        return
                    checked = time.monotonic()
                yield chunk
        finally:
            upstream.release()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            length = self.upstream.content_length
            if length is not None and length <= SMALL_ANSWER:
                body = await self.upstream.read()  # over in one write
                await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
                await send({"type": "http.response.body", "body": body, "more_body": False})
            else:  # a download or a tail: stop reading the service once the client went away
                await super().__call__(scope, receive, send)
        finally:
            if self.upstream.content.at_eof():
                self.upstream.release()
            else:
                self.upstream.close()
