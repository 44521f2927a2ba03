"""The request's identity for the audit trail: the gateway's `X-Request-ID` and the request's trace id.

An ASGI middleware keeps both in a context variable for the life of the request, so a decision recorded
deep in a handler (services/kit/audit.py) names the HTTP request that made it, and the gateway's own
record of that request and the service's record of its decision can be joined. The trace id is taken at
the door: inside a handler the current span may belong to the workload's trace (`continue_trace`),
not the request's.
"""
from __future__ import annotations

import contextvars
import re
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from opentelemetry import trace

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

HEADER = b"x-request-id"
MAX_REQUEST_ID = 128
# visible ASCII only: an id is copied into logs and CSV exports, where a control character or a newline
# could forge a line; anything else is dropped rather than cut or cleaned
_PRINTABLE = re.compile(rb"^[!-~]{1,%d}$" % MAX_REQUEST_ID)


@dataclass(frozen=True)
class RequestIdentity:
    request_id: str | None
    trace_id: str | None


current_request: contextvars.ContextVar[RequestIdentity | None] = contextvars.ContextVar(
    "avatar_request_identity", default=None)


def parse_request_id(raw: bytes | None) -> str | None:
    """The header's value when it is a bounded, printable id; None otherwise."""
    if raw is None:
        return None
    raw = raw.strip()
    return raw.decode("ascii") if _PRINTABLE.match(raw) else None


def current_trace_id() -> str | None:
    """The current span's trace id as 32 hex digits, or None outside any trace."""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


def request_identity() -> RequestIdentity:
    """The current HTTP request's ids; outside a request, no request id and the current span's trace."""
    identity = current_request.get()
    return identity if identity is not None else RequestIdentity(None, current_trace_id())


class RequestId:
    """ASGI middleware: binds the request's `X-Request-ID` and trace id for the handlers below it."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = next((value for name, value in scope.get("headers", ()) if name == HEADER), None)
        token = current_request.set(RequestIdentity(parse_request_id(raw), current_trace_id()))
        try:
            await self.app(scope, receive, send)
        finally:
            current_request.reset(token)
