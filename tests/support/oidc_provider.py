"""A real OpenID Connect provider for tests: `oidc-provider-mock` (PyPI) in its own process on a free port.

It accepts any client id and secret, and any redirect URI; users are whatever `set_user` registered (their
claims, `groups` among them, go into the ID token and the userinfo answer). Its authorize page is a form: a
POST of `sub=<user>` to the same authorize URL picks the user and redirects back with a code.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Iterator

import httpx

from services.kit.stack import free_port


@dataclass
class OidcProvider:
    issuer: str
    process: subprocess.Popen

    def set_user(self, sub: str, **claims: object) -> None:
        """Register `sub` (or replace their claims: a changed group shows on their next login)."""
        response = httpx.put(f"{self.issuer}/users/{sub}", json=claims, timeout=5)
        response.raise_for_status()

    async def authorize(self, authorize_url: str, sub: str) -> str:
        """Log `sub` in at the provider's authorize page; returns where the provider redirects the browser
        (the client's redirect_uri with code and state, or with error=...)."""
        async with httpx.AsyncClient(timeout=10) as client:
            page = await client.get(authorize_url)
            page.raise_for_status()  # the client parameters were valid: the user picker is shown
            answer = await client.post(authorize_url, data={"sub": sub})
        assert answer.status_code in (302, 303), (answer.status_code, answer.text[:500])
        return answer.headers["location"]

    async def deny(self, authorize_url: str) -> str:
        async with httpx.AsyncClient(timeout=10) as client:
            answer = await client.post(authorize_url, data={"action": "deny"})
        assert answer.status_code in (302, 303), (answer.status_code, answer.text[:500])
        return answer.headers["location"]


def _discovery_answers(issuer: str) -> bool:
    try:
        return httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def running_oidc_provider(*, require_nonce: bool = True, token_max_age: int = 300,
                          timeout: float = 30.0) -> Iterator[OidcProvider]:
    """Start the provider process, wait until its discovery document answers, stop it afterwards."""
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "oidc_provider_mock", "--host", "127.0.0.1", "--port", str(port),
               "--token-max-age", str(token_max_age)]
    if require_nonce:
        command.append("--require-nonce")
    # its log goes to a file, not a pipe: it logs every request, and a full pipe would stall it
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log, env={**os.environ, "NO_COLOR": "1"})
    try:
        deadline = time.monotonic() + timeout
        while not _discovery_answers(issuer):
            if process.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"oidc-provider-mock exited with {process.returncode}: "
                                   f"{log.read().decode(errors='replace')[-2000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"oidc-provider-mock did not answer at {issuer} within {timeout} s")
            time.sleep(0.1)
        yield OidcProvider(issuer, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()
