"""One OpenAPI document for the whole platform (`/api/openapi.json`) and Swagger UI over it (`/api/docs`).

Each service's paths appear under its prefix (`/api/trainer/...`), its schemas renamed `<service>.<Name>`
so that two services' `Workload` never collide, next to the gateway's own routes. The same path
templates let the proxy name the route a request took (for the audit log) without a second parser.
"""
from __future__ import annotations

import asyncio
import copy
import logging
import re
import time
from pathlib import Path
from typing import Any

import aiohttp
import swagger_ui_bundle
from fastapi import APIRouter, HTTPException, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

from services.gateway.settings import UPSTREAMS, GatewaySettings

log = logging.getLogger(__name__)
router = APIRouter()
REFRESH_SECONDS = 60.0
MISSING_RETRY_SECONDS = 3.0
FETCH_TIMEOUT = aiohttp.ClientTimeout(total=5)
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_PARAM = re.compile(r"\{([^}/]+)\}")
SCHEMA_REF = "#/components/schemas/"


def template_pattern(template: str) -> re.Pattern[str]:
    """`/training-requests/{workload_id}` as a regex naming its parameters (one path segment each)."""
    parts, last = [], 0
    for match in _PARAM.finditer(template):
        parts.append(re.escape(template[last:match.start()]))
        name = match.group(1)
        parts.append(f"(?P<{name}>[^/]+)" if name.isidentifier() else "[^/]+")
        last = match.end()
    parts.append(re.escape(template[last:]))
    return re.compile("^" + "".join(parts) + "$")


class Routes:
    """A service's path templates by method, literal ones first (`/queue/order` before `/queue/{id}`)."""

    def __init__(self, document: dict[str, Any]) -> None:
        self._by_method: dict[str, list[tuple[str, re.Pattern[str]]]] = {}
        templates = sorted(document.get("paths", {}), key=lambda t: (t.count("{"), -len(t)))
        for template in templates:
            for method in document["paths"][template]:
                if method in METHODS:
                    self._by_method.setdefault(method.upper(), []).append((template, template_pattern(template)))

    def match(self, method: str, path: str) -> tuple[str, dict[str, str]] | None:
        for template, pattern in self._by_method.get("GET" if method == "HEAD" else method, ()):
            found = pattern.match(path)
            if found:
                return template, found.groupdict()
        return None


def _renamed(node: Any, service: str) -> Any:
    """A copy of `node` with every schema reference pointing at the service's renamed schema."""
    if isinstance(node, dict):
        return {key: (SCHEMA_REF + f"{service}.{value[len(SCHEMA_REF):]}"
                      if key == "$ref" and isinstance(value, str) and value.startswith(SCHEMA_REF)
                      else _renamed(value, service)) for key, value in node.items()}
    if isinstance(node, list):
        return [_renamed(item, service) for item in node]
    return node


def merge(own: dict[str, Any], services: dict[str, dict[str, Any]], missing: list[str]) -> dict[str, Any]:
    """The gateway's document with each service's paths under `/api/<service>` and its schemas renamed."""
    merged = copy.deepcopy(own)
    merged["info"] = {"title": "AVATAR OnE API", "version": own.get("info", {}).get("version", "1.0.0"),
                      "description": "Every service of the platform through the gateway: `/api/<service>/...`. "
                                     "Log in (`POST /api/auth/login`, a session cookie plus the `X-CSRF-Token` "
                                     "header on changes) or send `Authorization: Bearer <API token>`."}
    if missing:
        merged["info"]["x-unavailable"] = missing
    paths = merged.setdefault("paths", {})
    schemas = merged.setdefault("components", {}).setdefault("schemas", {})
    tags = {tag["name"]: tag for tag in merged.get("tags", [])}
    for service, document in services.items():
        for template, operations in document.get("paths", {}).items():
            if template in ("/healthz", "/readyz", "/metrics"):
                continue  # each service's own; the gateway has its own
            operations = _renamed(operations, service)
            for method, operation in operations.items():
                if method in METHODS and isinstance(operation, dict):
                    operation["tags"] = [service] + [f"{service}: {tag}" for tag in operation.get("tags", [])]
                    if "operationId" in operation:
                        operation["operationId"] = f"{service}__{operation['operationId']}"
            paths[f"/api/{service}{template}"] = operations
        for name, schema in document.get("components", {}).get("schemas", {}).items():
            schemas[f"{service}.{name}"] = _renamed(schema, service)
        tags.setdefault(service, {"name": service, "description": f"the {service} service"})
    merged["tags"] = list(tags.values())
    merged.setdefault("components", {})["securitySchemes"] = {
        "session": {"type": "apiKey", "in": "cookie", "name": "avatar_session"},
        "bearer": {"type": "http", "scheme": "bearer", "description": "an API token (avt_...) or a platform JWT"},
    }
    merged["security"] = [{"session": []}, {"bearer": []}]
    return merged


class Merger:
    """Fetches the services' documents (at most every REFRESH_SECONDS) and keeps their route templates."""

    def __init__(self, settings: GatewaySettings, upstreams: Any) -> None:
        self.settings = settings
        self.upstreams = upstreams  # proxy.Upstreams: its pooled client session
        self._documents: dict[str, dict[str, Any]] = {}
        self._routes: dict[str, Routes] = {}
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()
        self._refreshing: asyncio.Task | None = None

    def match(self, service: str, method: str, path: str) -> tuple[str, dict[str, str]] | None:
        """The route template a request to `service` takes, and its path parameters; None until that
        service's document was fetched once (the first proxied requests start the fetch)."""
        routes = self._routes.get(service)
        age = time.monotonic() - self._fetched_at
        stale = age > REFRESH_SECONDS or (routes is None and age > MISSING_RETRY_SECONDS)
        if stale and self._refreshing is None:
            self._refreshing = asyncio.get_running_loop().create_task(self._refresh_in_background())
        return routes.match(method, path) if routes is not None else None

    async def _refresh_in_background(self) -> None:
        try:
            await self.refresh()
        except Exception as exc:  # the next request tries again
            log.warning("could not fetch the services' OpenAPI documents: %s", exc)
        finally:
            self._refreshing = None

    async def refresh(self) -> list[str]:
        """Fetch every service's document; returns the services that did not answer."""
        async with self._lock:
            session = self.upstreams.session
            results = await asyncio.gather(*(self._fetch(session, service) for service in UPSTREAMS),
                                           return_exceptions=True)
            missing = []
            for service, result in zip(UPSTREAMS, results):
                if isinstance(result, BaseException):
                    missing.append(service)
                    log.info("OpenAPI of %s unavailable: %r", service, result)
                else:
                    self._documents[service] = result
                    self._routes[service] = Routes(result)
            self._fetched_at = time.monotonic()
            return missing

    async def _fetch(self, session: Any, service: str) -> dict[str, Any]:
        async with session.get(f"{self.settings.upstream(service)}/openapi.json", timeout=FETCH_TIMEOUT) as response:
            response.raise_for_status()
            return await response.json(content_type=None)

    async def document(self, own: dict[str, Any]) -> dict[str, Any]:
        """The merged document; the services are asked again only when the copy is old or lacks one of
        them (and then at most every few seconds), so the public route costs no upstream calls."""
        age = time.monotonic() - self._fetched_at
        missing = [service for service in UPSTREAMS if service not in self._documents]
        if age > REFRESH_SECONDS or (missing and age > MISSING_RETRY_SECONDS):
            missing = await self.refresh()
        return merge(own, {s: d for s, d in self._documents.items() if s not in missing}, missing)


@router.get("/api/openapi.json", include_in_schema=False)
async def merged_openapi(request: Request) -> JSONResponse:
    merger: Merger = request.app.state.openapi_merger
    document = await merger.document(request.app.openapi())
    return JSONResponse(document, headers={"Cache-Control": "no-cache"})


@router.get("/api/docs", include_in_schema=False)
async def swagger_ui() -> HTMLResponse:
    return get_swagger_ui_html(openapi_url="/api/openapi.json", title="AVATAR OnE API",
                               swagger_js_url="/api/docs/assets/swagger-ui-bundle.js",
                               swagger_css_url="/api/docs/assets/swagger-ui.css",
                               swagger_favicon_url="/api/docs/assets/favicon-32x32.png")


@router.get("/api/docs/assets/{name}", include_in_schema=False)
async def swagger_asset(name: str) -> FileResponse:
    folder = Path(swagger_ui_bundle.swagger_ui_path)
    path = folder / name
    if "/" in name or name.startswith(".") or not path.is_file():
        raise HTTPException(404, f"no such Swagger UI file {name!r}")
    return FileResponse(path, headers={"Cache-Control": "public, max-age=86400"})
