"""The stack bench_gateway.py measures: the six services and the gateway on free ports, a fresh database,
vhost and Redis prefix (bench_saga.py's bring-up, with the gateway), and the caller's credentials both ways.

Also the stand-in upstream of the download check: a tiny aiohttp server in the bench process that streams
N bytes, and a second gateway process routed to it (AVATAR_UPSTREAM_URLS) so the stack's gateway is left alone.
"""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import httpx
from aiohttp import web

import bench_saga  # bench/ is on the path
from bench_saga import Environment, log, tear_down  # noqa: F401
from services.kit.auth import mint_token
from services.kit.settings import Settings
from services.kit.stack import GATEWAY, SERVICES, Stack
from tests.support.infra import free_port

ROOT = Path(__file__).resolve().parents[1]
BENCH_USER = "kim"  # the researcher both paths act as: the gateway's API token and the direct JWT name the same user


async def bring_up(extra_env: dict[str, str], gateway_env: dict[str, str]) -> Environment:
    """bench_saga's bring-up with the gateway among the processes, `gateway_env` its own settings."""
    return await bench_saga.bring_up(extra_env, with_gateway=True, service_env={GATEWAY: gateway_env},
                                     run_prefix="avatar-bench-gateway-")


def direct_token(user: str = BENCH_USER, role: str = "researcher") -> str:
    """What another system calling a service directly sends: a kit JWT (HS256, the stack's local secret)."""
    return mint_token(Settings(env="local"), user, role)


def gateway_token(stack: Stack, user: str = BENCH_USER) -> tuple[str, str]:
    """(bearer, how it was got) for the gateway: an API token of `user`, made the way an outside script makes
    one (the first admin logs in and creates the user; the user logs in and creates a token). When the
    gateway cannot do that (yet), the kit JWT, which it also accepts."""
    gateway = stack.gateway_url
    password = "bench-" + os.urandom(12).hex()
    try:
        with httpx.Client(timeout=30) as admin:
            login = admin.post(f"{gateway}/api/auth/login", json={"user": "admin", "password": stack.admin_password()})
            login.raise_for_status()
            created = admin.post(f"{gateway}/api/users", headers={"X-CSRF-Token": login.json()["csrf_token"]},
                                 json={"id": user, "display_name": "Bench Researcher", "role": "researcher",
                                       "kind": "person", "email": f"{user}@avatar.local", "password": password})
            if created.status_code not in (201, 409):
                created.raise_for_status()
        with httpx.Client(timeout=30) as person:
            login = person.post(f"{gateway}/api/auth/login", json={"user": user, "password": password})
            login.raise_for_status()
            made = person.post(f"{gateway}/api/tokens", json={"name": "bench_gateway"},
                               headers={"X-CSRF-Token": login.json()["csrf_token"]})
            made.raise_for_status()
            return made.json()["token"], "API token (POST /api/tokens after a local login)"
    except (httpx.HTTPError, KeyError, ValueError) as exc:
        log(f"no API token from the gateway ({exc!r}); using a kit JWT through the gateway too")
        return direct_token(user), "kit JWT (the gateway could not make an API token)"


# ---------------------------------------------------------------- the download check's stand-in upstream

class BytesUpstream:
    """An aiohttp server in this process answering GET /<anything> with `size` bytes, streamed in 1 MiB
    writes without Content-Length (chunked, as a service's streamed download is); /small with a few bytes
    and /openapi.json with a document of one route (the gateway fetches every upstream's)."""

    OPENAPI = {"openapi": "3.1.0", "info": {"title": "stand-in", "version": "1"},
               "paths": {"/blob": {"get": {"summary": "size bytes"}}, "/small": {"get": {"summary": "a few bytes"}}}}

    def __init__(self, size: int, chunk: int = 1 << 20) -> None:
        self.size, self.chunk = size, chunk
        self.port = free_port()
        self.runner: web.AppRunner | None = None
        self._block = os.urandom(chunk)

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        left = self.size
        while left > 0:
            part = self._block if left >= self.chunk else self._block[:left]
            await response.write(part)
            left -= len(part)
        await response.write_eof()
        return response

    async def __aenter__(self) -> "BytesUpstream":
        app = web.Application()
        app.router.add_get("/openapi.json", lambda _: web.json_response(self.OPENAPI))
        app.router.add_get("/small", lambda _: web.Response(body=b"ok"))
        app.router.add_get("/{tail:.*}", self._answer)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class SecondGateway:
    """`python -m services.gateway` (or `argv`) with the stack's settings on a port of its own, its `models`
    upstream pointed at `models_url` (the other five, or all six without it, as the stack has them)."""

    def __init__(self, stack: Stack, models_url: str | None, extra_env: dict[str, str],
                 argv: list[str] | None = None, name: str = "gateway-download") -> None:
        self.stack, self.port, self.name = stack, free_port(), name
        self.argv = argv or [sys.executable, "-m", "services.gateway"]
        upstreams = {name: f"http://127.0.0.1:{stack.ports[name]}" for name in SERVICES}
        if models_url is not None:
            upstreams["models"] = models_url
        self.env = {**os.environ, **stack.environment(), **stack.gateway_environment(), **extra_env,
                    "AVATAR_UPSTREAM_URLS": json.dumps(upstreams), "AVATAR_PORT": str(self.port),
                    "AVATAR_PUBLIC_URL": f"http://127.0.0.1:{self.port}", "AVATAR_ROLE": "all"}
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, timeout: float = 60) -> None:
        self.process = subprocess.Popen(self.argv, cwd=ROOT, env=self.env,
                                        stdout=open(self.stack.logs / f"{self.name}.log", "ab"),
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as http:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"the second gateway exited ({self.process.returncode}); see "
                                       f"{self.stack.logs / (self.name + '.log')}")
                try:
                    async with http.get(f"{self.url}/readyz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("the second gateway was not ready in time")
                await asyncio.sleep(0.3)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
