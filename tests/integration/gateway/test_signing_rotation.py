"""The gateway's RS256 access tokens verified by a real service against the gateway's JWKS over HTTP: a
gateway on a real port (uvicorn), the library in-process with AVATAR_JWT_JWKS_URL pointing at it."""
from __future__ import annotations

import asyncio
import contextlib
import time
from typing import AsyncIterator

import httpx
import jwt
import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa

from services.gateway.main import create_app as create_gateway
from services.kit.auth import mint_token
from services.kit.jwks import JwksCache, http_fetcher
from services.kit.stack import free_port
from services.library.main import create_app as create_library
from services.library.settings import LibrarySettings
from tests.integration.gateway.conftest import gateway_settings
from tests.support.services import auth, running_service


@contextlib.asynccontextmanager
async def gateway_on_port(infra, **overrides) -> AsyncIterator[tuple[str, object]]:
    """A gateway served by uvicorn on a free loopback port: (base url, its app)."""
    port = free_port()
    app = create_gateway(gateway_settings(infra, port=port, **overrides))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()  # the start failed: say why
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        await task


def kid_of(token: str) -> str:
    return jwt.get_unverified_header(token)["kid"]


async def who(library, token: str) -> httpx.Response:
    return await library.client.get("/components", headers={"Authorization": f"Bearer {token}"})


async def test_gateway_tokens_verify_at_a_service_across_a_rotation(fresh):
    overlap = 2.0
    async with gateway_on_port(fresh, signing_key_overlap_seconds=int(overlap)) as (gateway_url, gateway_app):
        jwks_url = f"{gateway_url}/api/auth/jwks.json"
        library_settings = LibrarySettings(**{**fresh.settings(jwt_jwks_url=jwks_url).model_dump(),
                                              "library_seed_catalog": ""})
        async with running_service(create_library, library_settings) as library, \
                httpx.AsyncClient(base_url=gateway_url) as http:
            # the real HTTP fetcher, with a shorter cache life and refetch interval than the defaults
            # (5 min, 5 s) so that the test sees the key leave within seconds
            library.app.state.jwks_cache = cache = JwksCache(http_fetcher(jwks_url), ttl=0.5,
                                                             min_refetch_seconds=0.2)
            signer = gateway_app.state.signer
            first = signer.access_token("kim", "researcher")
            assert jwt.get_unverified_header(first)["alg"] == "RS256"
            claims = jwt.decode(first, options={"verify_signature": False})
            assert claims["sub"] == "kim" and claims["role"] == "researcher" and claims["iss"] == "avatar-one"
            assert claims["exp"] - claims["iat"] == gateway_app.state.settings.access_token_ttl_seconds
            accepted = await who(library, first)
            assert accepted.status_code == 200, accepted.text

            admin = auth(gateway_app.state.settings, "admin", "root")
            rotated = await http.post("/api/auth/keys/rotate", headers=admin)
            assert rotated.status_code == 201, rotated.text
            new_kid, old_kid = rotated.json()["kid"], rotated.json()["retired_kid"]
            assert old_kid == kid_of(first) and new_kid != old_kid

            second = signer.access_token("kim", "researcher")
            assert kid_of(second) == new_kid  # the cached token of the old key is not reused
            fetches = cache.fetches
            assert (await who(library, second)).status_code == 200  # the service refetched for the new kid
            assert cache.fetches == fetches + 1
            published = {key["kid"] for key in (await http.get("/api/auth/jwks.json")).json()["keys"]}
            assert published == {new_kid, old_kid}
            assert (await who(library, first)).status_code == 200  # still inside the overlap

            await asyncio.sleep(overlap + 0.7)  # the overlap, then the service's cache life
            published = {key["kid"] for key in (await http.get("/api/auth/jwks.json")).json()["keys"]}
            assert published == {new_kid}
            refused = await who(library, first)
            assert refused.status_code == 401
            assert refused.json()["detail"] == f"invalid token: signing key {old_kid!r} is not (or no longer) published"
            assert (await who(library, second)).status_code == 200

            foreign = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            now = int(time.time())
            forged = jwt.encode({"sub": "kim", "role": "admin", "iss": "avatar-one", "iat": now, "exp": now + 60},
                                foreign, algorithm="RS256", headers={"kid": new_kid})
            refused = await who(library, forged)
            assert refused.status_code == 401 and "Signature verification failed" in refused.json()["detail"]

            local = mint_token(library.settings, "lee", "viewer")  # the CLI's HS256 token
            assert (await who(library, local)).status_code == 200


async def test_a_service_answers_503_while_the_jwks_cannot_be_fetched(fresh):
    port = free_port()  # nothing listens there
    settings = LibrarySettings(**{**fresh.settings(jwt_jwks_url=f"http://127.0.0.1:{port}/api/auth/jwks.json")
                                  .model_dump(), "library_seed_catalog": ""})
    async with gateway_on_port(fresh) as (_, gateway_app), running_service(create_library, settings) as library:
        token = gateway_app.state.signer.access_token("kim", "viewer")
        response = await who(library, token)
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert response.json()["detail"]["code"] == "signing_keys_unavailable"


@pytest.mark.parametrize("role", ["viewer", "researcher"])
async def test_the_proxy_token_is_cached_per_user_and_role(gateway, role):
    signer = gateway.app.state.signer
    token = signer.access_token("kim", role)
    assert signer.access_token("kim", role) is token
    assert signer.access_token("lee", role) != token
    started = time.perf_counter()
    for _ in range(10_000):
        signer.access_token("kim", role)
    assert (time.perf_counter() - started) / 10_000 < 50e-6  # far inside the proxy's 1 ms
