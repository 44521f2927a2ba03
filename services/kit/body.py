"""The request body at the door: size limit (413) and JSON that only Python accepts (422).

Every service mounts `BodyGuard` (in `build_service`). It reads the body (at most `max_bytes`) before the
app runs and replays it, so:
- an oversized body is refused with 413 whether it declares a Content-Length or comes chunked, and whether
  or not the route ever reads its body (counting while the app reads would miss those, and FastAPI turns an
  exception raised while it parses a body into a 400);
- JSON that is not JSON (RFC 8259) but that Python's `json.loads` still accepts is refused with 422 before
  any route sees it: `NaN`, `Infinity`, a number too large for a float (`1e999` → inf) and a lone UTF-16
  surrogate escape (`"\\ud800"`). Let through, those values pass model validation wherever a field is
  unbounded, then fail later as a 500: PostgreSQL refuses them in json/jsonb/text, and the JSON
  response encoder refuses them too (even in a 422 that merely echoes the input back).
The JSON check costs one regex scan of the body; only a body the scan flags is parsed a second time.
"""
from __future__ import annotations

import json
import math
import re
from typing import Any, Callable

from fastapi.responses import JSONResponse

# Cheap pre-scan: bare NaN/Infinity, a 3-digit exponent, a \uD800-\uDFFF escape or a raw UTF-8-encoded
# surrogate (Python decodes JSON bytes with 'surrogatepass'). A match is only a
# suspicion (the text may sit inside a string); the full parse below decides.
_SUSPECT = re.compile(rb"NaN|Infinity|[0-9][eE][+-]?[0-9]{3}|\\[uU][dD][89a-fA-F]|\xed[\xa0-\xbf]")


class _NotJson(ValueError):
    pass


def _constant(name: str) -> float:
    raise _NotJson(f"{name} is not a JSON value")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotJson(f"the number {text[:40]} is too large")
    return value


def _has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
        return False
    except UnicodeEncodeError:
        return True


def json_problem(body: bytes) -> str | None:
    """Why this JSON body must be refused, or None (also for invalid JSON: FastAPI reports that itself)."""
    if not _SUSPECT.search(body):
        return None
    try:
        document = json.loads(body, parse_constant=_constant, parse_float=_finite)
    except _NotJson as exc:
        return f"JSON does not allow it: {exc}"
    except (ValueError, RecursionError):
        return None
    pending: list[Any] = [document]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if _has_lone_surrogate(item):
                return "JSON text holds a lone UTF-16 surrogate (\\ud800-\\udfff): not valid Unicode"
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return None


def _is_json(content_type: bytes | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (media.startswith(b"application/") and media.endswith(b"+json"))


class BodyGuard:
    """ASGI middleware: see the module docstring."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or {})
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await self._too_large(scope, receive, send)
        if (declared is None or declared == b"0") and b"transfer-encoding" not in headers:
            return await self.app(scope, receive, send)  # HTTP/1.1: no length and no chunking means no body
        chunks: list[bytes] = []
        seen = 0
        after: list[dict] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                after.append(message)  # the client went away; the app sees it after the body
                break
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.max_bytes:
                return await self._too_large(scope, receive, send)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if _is_json(headers.get(b"content-type")):
            problem = json_problem(body)
            if problem is not None:
                response = JSONResponse({"detail": [{"type": "json_invalid", "loc": ["body"], "msg": problem}]},
                                        status_code=422)
                return await response(scope, receive, send)
        pending = [{"type": "http.request", "body": body, "more_body": False}, *after]

        async def replay() -> dict:
            return pending.pop(0) if pending else await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: dict, receive: Callable, send: Callable) -> None:
        response = JSONResponse({"detail": f"request body larger than {self.max_bytes} bytes"}, status_code=413,
                                headers={"Connection": "close"})
        await response(scope, receive, send)
