import time

import httpx
import jwt
import pytest
from fastapi import FastAPI, HTTPException
from pydantic import TypeAdapter, ValidationError

from services.kit.auth import Admin, Reader, Subject, mint_token, verify_token
from services.kit.settings import LOCAL_JWT_SECRET, Settings


@pytest.fixture
def settings():
    return Settings(env="local")


@pytest.fixture
def client(settings):
    app = FastAPI()
    app.state.settings = settings

    @app.get("/things")
    async def read(principal: Reader):
        return {"user": principal.user, "role": principal.role}

    @app.post("/things/approve")
    async def approve(principal: Admin):
        return {"approved_by": principal.user}

    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_valid_token_identifies_the_caller(client, settings):
    response = await client.get("/things", headers=bearer(mint_token(settings, "kim", "viewer")))
    assert response.status_code == 200
    assert response.json() == {"user": "kim", "role": "viewer"}


async def test_missing_token_is_401(client):
    response = await client.get("/things")
    assert response.status_code == 401
    assert response.json()["detail"] == "missing bearer token"


async def test_expired_token_is_401(client, settings):
    token = mint_token(settings, "kim", "admin", ttl_seconds=-10)
    response = await client.get("/things", headers=bearer(token))
    assert response.status_code == 401 and response.json()["detail"] == "token expired"


async def test_tampered_token_is_401(client, settings):
    header, payload, signature = mint_token(settings, "kim", "viewer").split(".")
    forged = jwt.encode({"sub": "kim", "role": "admin", "iss": "avatar-one", "exp": int(time.time()) + 60},
                        "not-the-key", algorithm="HS256").split(".")[1]
    response = await client.post("/things/approve", headers=bearer(f"{header}.{forged}.{signature}"))
    assert response.status_code == 401
    assert "invalid token" in response.json()["detail"]


async def test_wrong_role_is_403_with_the_needed_role(client, settings):
    response = await client.post("/things/approve", headers=bearer(mint_token(settings, "lee", "researcher")))
    assert response.status_code == 403
    assert response.json()["detail"] == "role 'researcher' may not do this; requires admin"


async def test_the_whole_subject_is_the_user_so_a_long_common_prefix_is_two_users(client, settings):
    first, second = "u" * 200 + "-first", "u" * 200 + "-second"
    seen = [(await client.get("/things", headers=bearer(mint_token(settings, sub, "viewer")))).json()["user"]
            for sub in (first, second, "u" * 255)]
    assert seen == [first, second, "u" * 255]


@pytest.mark.parametrize("sub,problem", [("", "is empty or only whitespace"), ("   ", "is empty or only whitespace"),
                                         ("\t\n", "is empty or only whitespace"),
                                         ("u" * 256, "is longer than 255 characters"),
                                         ("kim\x00", "contains control characters")])
async def test_a_subject_that_cannot_name_one_user_is_401(client, settings, sub, problem):
    response = await client.get("/things", headers=bearer(mint_token(settings, sub, "admin")))
    assert response.status_code == 401
    assert response.json()["detail"] == f"invalid token: the subject (sub) {problem}"


@pytest.mark.parametrize("name,accepted", [("kim", True), (" kim ", True), ("김", True), ("u" * 255, True),
                                           ("", False), ("   ", False), ("\t", False), ("u" * 256, False),
                                           ("kim\x00", False), ("k\x01m", False)])
def test_a_user_named_in_a_request_is_what_a_token_subject_may_be(name, accepted, settings):
    """`Subject` (a new owner, an ?owner= filter) accepts exactly the subjects verify_token accepts."""
    try:
        TypeAdapter(Subject).validate_python(name)
        valid = True
    except ValidationError:
        valid = False
    try:
        verify_token(settings, mint_token(settings, name, "viewer"))
        verified = True
    except HTTPException:
        verified = False
    assert valid is verified is accepted


async def test_rs256_tokens_verify_with_the_public_key(client):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    settings = Settings(env="local", jwt_public_key=public)
    app = FastAPI()
    app.state.settings = settings

    @app.get("/me")
    async def me(principal: Reader):
        return principal.model_dump()

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as rs_client:
        ok = await rs_client.get("/me", headers=bearer(mint_token(settings, "park", "admin", private_key=private)))
        hs = await rs_client.get("/me", headers=bearer(mint_token(Settings(env="local"), "park", "admin")))
    assert ok.json() == {"user": "park", "role": "admin"}
    assert hs.status_code == 401


def test_default_secrets_are_refused_outside_local(monkeypatch):
    with pytest.raises(ValueError, match="AVATAR_JWT_SECRET"):
        Settings(env="prod")
    prod = Settings(env="prod", jwt_secret="s" * 32, s3_access_key="k", s3_secret_key="v")
    assert prod.jwt_secret != LOCAL_JWT_SECRET


def test_token_cli_mints_a_verifiable_token(capsys):
    from services.kit.auth import verify_token
    from services.kit.token import main

    assert main(["--user", "kim", "--role", "admin"]) == 0
    token = capsys.readouterr().out.strip()
    assert verify_token(Settings(), token).user == "kim"
