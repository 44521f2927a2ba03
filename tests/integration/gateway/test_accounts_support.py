"""Helpers for the accounts tests (no tests here): users made through the admin API, clients of their own."""
from __future__ import annotations

import contextlib
from typing import AsyncIterator

import httpx

PASSWORD = "correct horse battery"
BASE_URL = "http://gateway.test"


def jwt_admin(gateway) -> dict[str, str]:
    """A local CLI admin token (no account behind it): how a test makes the first users."""
    return gateway.headers("admin", "jwt-admin")


async def make_user(gateway, user_id: str, role: str = "researcher", *, password: str | None = PASSWORD,
                    kind: str = "person", headers: dict[str, str] | None = None) -> dict:
    body = {"id": user_id, "display_name": user_id.title(), "email": f"{user_id}@example.org", "role": role,
            "kind": kind}
    if password is not None:
        body["password"] = password
    response = await gateway.client.post("/api/users", json=body, headers=headers or jwt_admin(gateway))
    assert response.status_code == 201, response.text
    return response.json()


@contextlib.asynccontextmanager
async def browser(gateway, address: str = "127.0.0.1") -> AsyncIterator[httpx.AsyncClient]:
    """A client with its own cookie jar, calling from `address`."""
    transport = httpx.ASGITransport(app=gateway.app, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        yield client


async def login(client: httpx.AsyncClient, user: str, password: str = PASSWORD) -> str:
    """Log in; the client keeps the cookies and its CSRF header; returns the CSRF token."""
    response = await client.post("/api/auth/login", json={"user": user, "password": password})
    assert response.status_code == 200, response.text
    csrf = response.json()["csrf_token"]
    client.headers["X-CSRF-Token"] = csrf
    return csrf


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
