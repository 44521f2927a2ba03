"""How long each HTTP request took inside the service, by route: the server's half of every latency.

A client's figure also holds the time before the process read the request (the socket, the loop busy
with something else, the process waiting for a core; `avatar_event_loop_lag_seconds` shows that part)
and after it wrote the answer. Comparing the two says whether a slow request was slow here or waited.
"""
from __future__ import annotations

import time
from typing import Any, Awaitable, Callable

from services.kit import metrics

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

UNMATCHED = "unmatched"  # no route took the request (a 404 or a refusal at the door): one series, not one per path
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})  # any other counts as "other"


def route_of(scope: Scope) -> str:
    """The route's path template (`/training-requests/{workload_id}`), so a series is a route, not a URL."""
    return getattr(scope.get("route"), "path", None) or UNMATCHED


class RequestTimer:
    """ASGI middleware: observes `avatar_http_request_duration_seconds{service,method,route,code}` from the
    moment the app is called until the response's last byte was handed to the server."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        code = 500  # the app raised before answering: the server answers 500

        async def send_noting_code(message: Message) -> None:
            nonlocal code
            if message["type"] == "http.response.start":
                code = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_code)
        finally:
            method = scope["method"] if scope["method"] in METHODS else "other"
            metrics.HTTP_REQUEST_SECONDS.labels(self.service, method, route_of(scope), str(code)).observe(
                time.perf_counter() - started)
