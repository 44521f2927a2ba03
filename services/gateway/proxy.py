"""`/api/<service>/...` forwarded to the service, streamed back, as the caller the gateway resolved.

The client's own credentials and identity headers never reach a service: the gateway sends instead a
short-lived RS256 token it signed for the caller (services/gateway/signing.py), a request id and the
trace context. The answer streams back chunk by chunk (a model download or a log tail is never held in
the gateway's memory), compressed bytes passed through as they are.
"""
from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable

import aiohttp
from fastapi import APIRouter, HTTPException
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client import Counter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from yarl import URL

from services.gateway.audit import AuditRecorder, header_value
from services.gateway.identity import current_caller
from services.gateway.ratelimit import AddressLimit, address_of
from services.gateway.settings import UPSTREAMS, GatewaySettings
from services.kit.body import BodyGuard
from services.kit.request_timer import RequestTimer

log = logging.getLogger(__name__)
CHUNK = 64 * 1024
# an answer this short with its length known is sent without a task watching for the client to leave: it is
# over in one or two writes, and that task group is a tenth of the gateway's CPU per request
SMALL_ANSWER = 1024 * 1024
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


router = APIRouter()  # last of the gateway's routers: /api/<anything else>/... answers 404 naming the services
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
        self.bases = {service: settings.upstream(service) for service in UPSTREAMS}

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
        return URL(f"{self.bases[service]}/{path}" + (f"?{query}" if query else ""), encoded=True)


@router.api_route("/api/{service}/{path:path}", methods=METHODS, include_in_schema=False)
async def unknown_service(service: str, path: str) -> None:
    raise HTTPException(404, f"no such service {service!r}; the gateway routes /api/<service>/... for "
                             f"{', '.join(UPSTREAMS)}")


def proxied_service(path: str) -> str | None:
    """The service `/api/<service>/...` names, or None for every other path (the gateway's own routes)."""
    if not path.startswith("/api/"):
        return None
    service, slash, _ = path[5:].partition("/")
    return service if slash and service in UPSTREAMS else None


@dataclass(frozen=True)
class RouteTemplate:
    """What a proxied request's route is called in the request metrics and the audit log (their `route`)."""
    path: str


def door(app: Any) -> ASGIApp:
    """The pipeline a proxied request takes instead of FastAPI's: its server span, its audit row, the
    address limit, the request timer and the body bound, around the proxy itself. A proxied request is
    most of the gateway's traffic; FastAPI's routing, dependency injection and exception middleware
    would cost it more CPU than the forwarding does."""
    settings = app.state.settings
    inner = BodyGuard(Proxy(app.state, app.exception_handlers), max_bytes=settings.max_body_bytes)
    inner = RequestTimer(inner, service="gateway")
    inner = AddressLimit(inner, limiter_of=lambda: getattr(app.state, "limiter", None))
    inner = AuditRecorder(inner, state=app.state)
    return ServerSpan(inner)


class ServerSpan:
    """The request's SERVER span, parented on the caller's trace context when it sent one; the context
    the proxy forwards to the service is this span's. Unsampled spans cost no recording
    (services/kit/telemetry.py), yet carry the trace id the audit row and the service's logs share."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.tracer = trace.get_tracer("avatar.gateway")  # after the service set its tracer provider
        # the headers the configured propagators read (OTEL_PROPAGATORS: W3C by default, or b3, jaeger...)
        self.trace_headers = frozenset(name.lower().encode("latin-1")
                                       for name in propagate.get_global_textmap().fields)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        carrier = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]
                   if name in self.trace_headers}
        parent = propagate.extract(carrier) if carrier else None
        with self.tracer.start_as_current_span(f"{scope['method']} /api/{proxied_service(scope['path'])}",
                                               context=parent, kind=SpanKind.SERVER,
                                               record_exception=False, set_status_on_exception=False) as span:
            recording = span.is_recording()
            if recording:
                span.set_attributes({"http.request.method": scope["method"], "url.path": scope["path"],
                                     "url.scheme": scope.get("scheme", "http")})

            async def send_noting_status(message: Message) -> None:
                if recording and message["type"] == "http.response.start":
                    status = message["status"]
                    span.set_attribute("http.response.status_code", status)
                    if route := scope.get("route"):
                        span.update_name(f"{scope['method']} {route.path}")
                        span.set_attribute("http.route", route.path)
                    if status >= 500:
                        span.set_status(Status(StatusCode.ERROR))
                await send(message)

            try:
                await self.app(scope, receive, send_noting_status)
            except Exception as exc:
                if recording:
                    span.record_exception(exc)
                    span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                raise


class Proxy:
    """Pure ASGI: the caller resolved, the request forwarded to its service as that caller, the answer
    streamed back. An exception is answered by the app's own handler for it (a refusal `{"detail": ...}`,
    PostgreSQL away a 503 naming it), as on the gateway's own routes."""

    def __init__(self, state: Any, exception_handlers: dict[Any, Callable[..., Any]]) -> None:
        self.state = state  # the app's state: the upstreams, signer and identity exist once the lifespan ran
        self.exception_handlers = exception_handlers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            response: Response = await self.forward(request)
        except Exception as exc:
            response = await self._answer(request, exc)
        await response(scope, receive, send)

    async def _answer(self, request: Request, exc: Exception) -> Response:
        handler = next((self.exception_handlers[kind] for kind in type(exc).__mro__
                        if kind in self.exception_handlers), None)
        if handler is not None:
            try:
                answer = handler(request, exc)
                return await answer if inspect.isawaitable(answer) else answer
            except Exception as unhandled:  # the handler's way of saying it is not one it answers
                exc = unhandled
        log.error("proxied %s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": "internal error"}, status_code=500)

    async def forward(self, request: Request) -> Response:
        scope, state = request.scope, self.state
        path = scope["path"]
        service = path[5:].split("/", 1)[0]
        rest = path[len(service) + 6:]
        scope["route"] = RouteTemplate(f"/api/{service}/{{path}}")
        caller = await current_caller(request)
        matched = state.openapi_merger.match(service, scope["method"], "/" + rest)
        if matched is not None:
            scope["route"] = RouteTemplate(f"/api/{service}{matched[0]}")
            request.state.route_template, request.state.target_ids = scope["route"].path, matched[1]
        headers = upstream_headers(scope["headers"])
        # the gateway names each request itself: audit rows joined by it must not be joinable by a client's choice
        request_id = uuid.uuid4().hex
        request.state.request_id = request_id
        headers["authorization"] = f"Bearer {state.signer.access_token(caller.user, caller.role)}"
        headers["x-request-id"] = request_id
        headers["x-forwarded-for"] = address_of(scope)
        headers["x-forwarded-proto"] = scope.get("scheme", "http")
        if host := header_value(scope["headers"], b"host"):
            headers["x-forwarded-host"] = host
        propagate.inject(headers)
        body = await request.body() if scope["method"] not in ("GET", "HEAD", "OPTIONS") else None
        upstreams: Upstreams = state.upstreams
        assert upstreams.session is not None
        settings = state.settings
        # the service sees the path as the client encoded it (an id with %2F stays one segment)
        raw_path = scope.get("raw_path", b"").decode("latin-1").split("?", 1)[0]
        raw_rest = raw_path.split("/", 3)[3] if raw_path.count("/") >= 3 else rest
        try:
            upstream = await asyncio.wait_for(upstreams.session.request(
                scope["method"], upstreams.url(service, raw_rest, scope.get("query_string", b"").decode("latin-1")),
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
        base = upstreams.bases[service]
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
