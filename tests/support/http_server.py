"""Serve an ASGI app on a real loopback port inside the test's event loop (uvicorn), for peers that must
reach it over TCP: a service fetching the gateway's JWKS, the gateway proxying to a service."""
from __future__ import annotations

import asyncio
import contextlib
from typing import Any, AsyncIterator

import uvicorn

from tests.support.infra import free_port


@contextlib.asynccontextmanager
async def serving(app: Any, *, port: int | None = None, lifespan: str = "on") -> AsyncIterator[str]:
    """`app` listening on 127.0.0.1:<port> (a free one by default) until the block ends; yields its URL."""
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan=lifespan, log_level="warning",
                                           access_log=False))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()  # raises what stopped it
                raise RuntimeError("the server stopped before it started")
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)
