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
  response encoder refuses them too (even in a 422 that merely echoes the input back);
- JSON nested deeper than `MAX_BODY_DEPTH` levels is refused with 422 naming where (`json_too_deep`, the
  path in `loc`): no request of the platform is that deep (a free-form field may hold 32 levels, see
  contracts/bounded_json.py), FastAPI answers a body deeper than Python's parser goes with a bare 400, and
  a field that forgot its bound would otherwise store what no later read can serialise.
The JSON checks cost one regex scan and two byte counts of the body; only a body they flag is parsed a
second time.
"""
from __future__ import annotations

import json
import math
import re
from typing import Any, Callable

from fastapi.responses import JSONResponse

from contracts.bounded_json import show_path, too_deep

# Cheap pre-scan: bare NaN/Infinity, a 3-digit exponent, a \uD800-\uDFFF escape or a raw UTF-8-encoded
# surrogate (Python decodes JSON bytes with 'surrogatepass'). A match is only a
# suspicion (the text may sit inside a string); the full parse below decides.
_SUSPECT = re.compile(rb"NaN|Infinity|[0-9][eE][+-]?[0-9]{3}|\\[uU][dD][89a-fA-F]|\xed[\xa0-\xbf]")
# A request body's own structure plus a free-form field's 32 levels stays well within this.
MAX_BODY_DEPTH = 64
_KEY_SHOWN = 64  # characters of each key a refusal's `loc` repeats


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


def depth_problem(body: bytes) -> dict[str, Any] | None:
    """The 422 error (type, loc, msg) for a JSON body nested deeper than `MAX_BODY_DEPTH`, or None."""
    if body.count(b"{") + body.count(b"[") <= MAX_BODY_DEPTH:
        return None  # fewer brackets than the limit has levels
    try:
        path = too_deep(json.loads(body), MAX_BODY_DEPTH)
    except RecursionError:
        path = []  # deeper than Python's parser goes: too deep, though where is not known
    except ValueError:
        return None  # not JSON at all: FastAPI reports that itself
    if path is None:
        return None
    where = f" (at {show_path(path)})" if path else ""
    return {"type": "json_too_deep", "msg": f"JSON nested deeper than {MAX_BODY_DEPTH} levels{where}",
            "loc": ["body", *(key[:_KEY_SHOWN] if isinstance(key, str) else key for key in path)]}


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
            error = {"type": "json_invalid", "loc": ["body"], "msg": problem} if problem else depth_problem(body)
            if error is not None:
                return await JSONResponse({"detail": [error]}, status_code=422)(scope, receive, send)
        pending = [{"type": "http.request", "body": body, "more_body": False}, *after]

        async def replay() -> dict:
            return pending.pop(0) if pending else await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: dict, receive: Callable, send: Callable) -> None:
        response = JSONResponse({"detail": f"request body larger than {self.max_bytes} bytes"}, status_code=413,
                                headers={"Connection": "close"})
        await response(scope, receive, send)
