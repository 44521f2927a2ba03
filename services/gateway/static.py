"""The console's built files at `/`: hashed assets cached for good, `index.html` revalidated every time.

Any path that is not a file and not under /api/ answers index.html, so the console's own routes
(`/queue`, `/apps/APP-1/tasks/T-1`) load the app on a reload or a shared link.
"""
from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, Response

from services.gateway.settings import GatewaySettings

IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
RESERVED = ("api/", "healthz", "readyz", "metrics")


def cache_control(relative: str) -> str:
    """Vite puts content-hashed files under assets/: they never change; everything else may."""
    return IMMUTABLE if relative.startswith("assets/") else REVALIDATE


def resolve(root: Path, relative: str) -> Path | None:
    """The file under `root` a request path names, never one outside it."""
    candidate = (root / relative).resolve()
    if candidate.is_file() and candidate.is_relative_to(root):
        return candidate
    return None


def install(app: FastAPI, settings: GatewaySettings) -> None:
    root = settings.console_dir.resolve()

    @app.api_route("/{relative:path}", methods=["GET", "HEAD"], include_in_schema=False)
    async def console(relative: str, request: Request) -> Response:
        if relative.startswith(RESERVED) or relative == "api":
            raise HTTPException(404, f"no route {request.url.path}")
        index = root / "index.html"
        if not index.is_file():
            raise HTTPException(404, "the console is not built here (cd console && npm ci && npm run build); "
                                     "the API is at /api/docs")
        found = resolve(root, relative) if relative else None
        if found is None:
            if "." in relative.rsplit("/", 1)[-1]:
                raise HTTPException(404, f"no file {relative!r}")  # a missing asset is an error, not the app
            found, relative = index, "index.html"
        return FileResponse(found, headers={"Cache-Control": cache_control(relative)})
