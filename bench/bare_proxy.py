"""The floor under bench_gateway's added latency: a proxy that only forwards, on the gateway's own stack.

    .venv/bin/python bench/bare_proxy.py --port 8099 --upstream http://127.0.0.1:8003 --prefix /api/trainer

uvicorn with the same event loop and HTTP parser as the services (uvloop, httptools), one pooled aiohttp
client, the answer read whole and written back: no identity, no limits, no audit, no span. What it adds
over calling the service directly is what any Python proxy on this machine adds; what the gateway adds
over it is the gateway's own work.
"""
from __future__ import annotations

import argparse
from typing import Any

import aiohttp
import uvicorn

HOP_BY_HOP = {b"connection", b"keep-alive", b"transfer-encoding", b"host", b"content-length"}


def make_app(upstream: str, prefix: str) -> Any:
    session: aiohttp.ClientSession | None = None

    async def app(scope: dict, receive: Any, send: Any) -> None:
        nonlocal session
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100, keepalive_timeout=30),
                                                    auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar())
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    if session is not None:
                        await session.close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        assert session is not None
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path = scope["path"].removeprefix(prefix)
        query = scope["query_string"].decode("latin-1")
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]
                   if name not in HOP_BY_HOP}
        async with session.request(scope["method"], f"{upstream}{path}" + (f"?{query}" if query else ""),
                                   headers=headers, data=body or None, allow_redirects=False) as answer:
            content = await answer.read()
            headers = [(name.lower().encode("latin-1"), value.encode("latin-1"))
                       for name, value in answer.headers.items()]
            await send({"type": "http.response.start", "status": answer.status,
                        "headers": [(name, value) for name, value in headers if name not in HOP_BY_HOP]})
            await send({"type": "http.response.body", "body": content})

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--prefix", default="")
    args = parser.parse_args()
    uvicorn.run(make_app(args.upstream.rstrip("/"), args.prefix), host="127.0.0.1", port=args.port, log_config=None,
                access_log=False, loop="uvloop", http="httptools")


if __name__ == "__main__":
    main()
