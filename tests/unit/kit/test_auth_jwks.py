"""Services verifying RS256 tokens against a JWKS (services/kit/jwks.py, services/kit/auth.py), with a
fake fetcher in place of the gateway: the cache's refetch rules and the verification's refusals."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import FastAPI, HTTPException
from jwt.algorithms import RSAAlgorithm

from services.kit.auth import Reader, mint_token, verify_token, verify_token_async
from services.kit.jwks import JwksCache, JwksUnavailable, parse_keys
from services.kit.settings import Settings

URL = "http://gateway.test/api/auth/jwks.json"


def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwk_of(private, kid: str) -> dict:
    return {**RSAAlgorithm.to_jwk(private.public_key(), as_dict=True), "kid": kid, "use": "sig", "alg": "RS256"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_rs256(private, header: dict, claims: dict) -> str:
    """RS256 by hand, for headers PyJWT would not write (a kid that is not a string)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{_b64(private.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256()))}"


def signed(private, kid: str | None, *, sub="kim", role="researcher", issuer="avatar-one", ttl=60, **headers) -> str:
    now = int(time.time())
    header = {"kid": kid, **headers} if kid is not None else headers
    return jwt.encode({"sub": sub, "role": role, "iss": issuer, "iat": now, "exp": now + ttl}, private,
                      algorithm="RS256", headers=header)


class Clock:
    """Fake monotonic time; `sleep` moves it on (every sleeper waking at its own deadline)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        deadline = self.now + seconds
        await asyncio.sleep(0)
        self.now = max(self.now, deadline)


class FakeGateway:
    """The JWKS the fetcher answers; `fail` makes it unreachable; `calls` counts fetches."""

    def __init__(self, *keys: tuple[object, str]) -> None:
        self.keys = list(keys)
        self.fail = False
        self.calls = 0
        self.delay = 0.0

    async def __call__(self) -> dict:
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail:
            raise httpx.ConnectError("connection refused")
        return {"keys": [jwk_of(private, kid) for private, kid in self.keys]}


@pytest.fixture(scope="module")
def key_a():
    return rsa_key()


@pytest.fixture(scope="module")
def key_b():
    return rsa_key()


# ---------------------------------------------------------------- the cache

async def test_a_known_kid_is_served_from_the_cache_until_the_ttl(key_a):
    gateway, clock = FakeGateway((key_a, "a")), Clock()
    cache = JwksCache(gateway, ttl=300, min_refetch_seconds=5, clock=clock)
    for _ in range(100):
        assert await cache.key("a") is not None
    assert gateway.calls == 1
    clock.now += 301
    await cache.key("a")
    assert gateway.calls == 2


async def test_a_flood_of_unknown_kids_costs_one_fetch_per_interval(key_a):
    gateway, clock = FakeGateway((key_a, "a")), Clock()
    cache = JwksCache(gateway, ttl=300, min_refetch_seconds=5, clock=clock, sleep=clock.sleep)
    await cache.key("a")
    clock.now += 1
    found = await asyncio.gather(*(cache.key(f"bogus-{n}") for n in range(200)))  # made-up kids at once
    assert found == [None] * 200
    assert gateway.calls == 2  # they waited out the interval and shared one refetch
    assert clock.now == 1005
    started = clock.now
    for n in range(100):  # one after another, for a while
        assert await cache.key(f"bogus-again-{n}") is None
    assert gateway.calls - 2 <= (clock.now - started) / 5 + 1
    assert await cache.key("a") is not None


async def test_a_kid_rotated_in_just_after_a_fetch_waits_for_the_next_one_instead_of_failing(key_a, key_b):
    gateway, clock = FakeGateway((key_a, "a")), Clock()
    cache = JwksCache(gateway, min_refetch_seconds=5, clock=clock, sleep=clock.sleep)
    await cache.key("a")
    gateway.keys.append((key_b, "b"))  # the gateway rotated 0.1 s after the service fetched
    clock.now += 0.1
    assert await cache.key("b") is not None
    assert gateway.calls == 2 and clock.slept == [pytest.approx(4.9)]


async def test_concurrent_lookups_of_an_unknown_kid_share_one_fetch(key_a):
    gateway = FakeGateway((key_a, "a"))
    gateway.delay = 0.05
    cache = JwksCache(gateway, min_refetch_seconds=5)
    found = await asyncio.gather(*(cache.key("a") for _ in range(50)))
    assert all(key is not None for key in found)
    assert gateway.calls == 1


async def test_a_failed_refetch_keeps_the_last_set_for_a_while_then_gives_up(key_a):
    gateway, clock = FakeGateway((key_a, "a")), Clock()
    cache = JwksCache(gateway, ttl=300, min_refetch_seconds=5, max_stale=600, clock=clock, sleep=clock.sleep)
    await cache.key("a")
    gateway.fail = True
    clock.now += 301
    assert await cache.key("a") is not None  # stale but usable: a gateway restart locks no one out
    clock.now += 600
    with pytest.raises(JwksUnavailable):
        await cache.key("a")
    gateway.fail = False
    clock.now += 5
    assert await cache.key("a") is not None


async def test_no_set_at_all_is_unavailable_not_unknown():
    gateway = FakeGateway()
    gateway.fail = True
    with pytest.raises(JwksUnavailable):
        await JwksCache(gateway).key("a")


def test_only_rsa_signing_keys_with_a_sane_kid_are_kept(key_a):
    ec_public = ec.generate_private_key(ec.SECP256R1()).public_key()
    from jwt.algorithms import ECAlgorithm
    document = {"keys": [
        jwk_of(key_a, "good"),
        {**jwk_of(key_a, "enc"), "use": "enc"},
        {**jwk_of(key_a, "hs"), "alg": "HS256"},
        {**ECAlgorithm.to_jwk(ec_public, as_dict=True), "kid": "ec"},
        {**jwk_of(key_a, "x" * 129)},
        {"kty": "RSA", "kid": "broken", "n": "AA", "e": "AQAB"},
        {**jwk_of(key_a, "none")} | {"kid": None},
        "not a key",
    ]}
    assert set(parse_keys(document)) == {"good"}
    with pytest.raises(ValueError):
        parse_keys({"nokeys": []})


# ---------------------------------------------------------------- verification

@pytest.fixture
def settings():
    return Settings(env="local", jwt_jwks_url=URL)


@pytest.fixture
def gateway(key_a):
    return FakeGateway((key_a, "a"))


@pytest.fixture
def client(settings, gateway):
    app = FastAPI()
    app.state.settings = settings
    app.state.jwks_cache = JwksCache(gateway, min_refetch_seconds=5)

    @app.get("/me")
    async def me(principal: Reader):
        return principal.model_dump()

    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_token_signed_with_a_published_key_is_accepted(client, key_a):
    response = await client.get("/me", headers=bearer(signed(key_a, "a")))
    assert response.status_code == 200, response.text
    assert response.json() == {"user": "kim", "role": "researcher"}


async def test_the_hs256_local_path_still_works_beside_the_jwks(client, settings, gateway):
    response = await client.get("/me", headers=bearer(mint_token(settings, "lee", "viewer")))
    assert response.json() == {"user": "lee", "role": "viewer"}
    assert gateway.calls == 0  # no kid: the JWKS is not even fetched


async def test_a_foreign_key_under_a_known_kid_is_refused(client, key_b):
    response = await client.get("/me", headers=bearer(signed(key_b, "a")))
    assert response.status_code == 401
    assert "Signature verification failed" in response.json()["detail"]


async def test_an_unpublished_kid_is_refused(client, key_b):
    response = await client.get("/me", headers=bearer(signed(key_b, "b")))
    assert response.status_code == 401
    assert response.json()["detail"] == "invalid token: signing key 'b' is not (or no longer) published"


@pytest.mark.parametrize("kid", ["k" * 129, "", 7, ["a"]])
async def test_a_kid_that_is_not_a_short_string_is_refused_before_any_fetch(client, key_a, gateway, kid):
    now = int(time.time())
    token = raw_rs256(key_a, {"alg": "RS256", "typ": "JWT", "kid": kid},
                      {"sub": "kim", "role": "admin", "iss": "avatar-one", "exp": now + 60})
    response = await client.get("/me", headers=bearer(token))
    assert response.status_code == 401
    assert "kid" in response.json()["detail"].lower() or "key id" in response.json()["detail"].lower()
    assert gateway.calls == 0


async def test_a_jwks_that_cannot_be_fetched_is_503_with_retry_after(client, key_a, gateway):
    gateway.fail = True
    response = await client.get("/me", headers=bearer(signed(key_a, "a")))
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.json()["detail"]["code"] == "signing_keys_unavailable"
    assert "cannot verify token: signing keys unavailable" in response.json()["detail"]["message"]


def _hs256_with(secret: bytes, header: dict, claims: dict) -> str:
    """HS256 by hand: PyJWT itself refuses a PEM public key as an HMAC secret."""
    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()
    signing_input = f"{part(header)}.{part(claims)}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


@pytest.mark.parametrize("with_kid", [True, False])
async def test_the_public_key_as_an_hs256_secret_is_refused(client, key_a, with_kid):
    """Algorithm confusion: the published key, as PEM, used as the HMAC secret of an HS256 token."""
    pem = key_a.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header = {"alg": "HS256", "typ": "JWT", **({"kid": "a"} if with_kid else {})}
    now = int(time.time())
    token = _hs256_with(pem, header, {"sub": "mallory", "role": "admin", "iss": "avatar-one", "exp": now + 60})
    response = await client.get("/me", headers=bearer(token))
    assert response.status_code == 401
    with pytest.raises(jwt.InvalidKeyError):  # and PyJWT would not verify it that way either
        jwt.decode(token, pem, algorithms=["HS256"])


async def test_alg_none_and_a_wrong_issuer_are_refused(client, key_a):
    unsigned = jwt.encode({"sub": "kim", "role": "admin", "iss": "avatar-one", "exp": int(time.time()) + 60},
                          None, algorithm="none", headers={"kid": "a"})
    assert (await client.get("/me", headers=bearer(unsigned))).status_code == 401
    wrong = await client.get("/me", headers=bearer(signed(key_a, "a", issuer="someone-else")))
    assert wrong.status_code == 401 and "issuer" in wrong.json()["detail"].lower()


async def test_an_expired_jwks_token_is_token_expired(client, key_a):
    response = await client.get("/me", headers=bearer(signed(key_a, "a", ttl=-10)))
    assert response.status_code == 401 and response.json()["detail"] == "token expired"


async def test_sync_verify_token_keeps_the_static_keys_and_points_jwks_tokens_to_the_async_path(settings, key_a,
                                                                                                gateway):
    assert verify_token(settings, mint_token(settings, "kim", "admin")).user == "kim"
    with pytest.raises(HTTPException) as refused:
        verify_token(settings, signed(key_a, "a"))
    assert refused.value.status_code == 401 and "async path" in refused.value.detail
    principal = await verify_token_async(settings, signed(key_a, "a"), JwksCache(gateway))
    assert principal.user == "kim" and principal.role == "researcher"


async def test_without_a_jwks_url_a_kid_changes_nothing(key_a):
    """A service configured with a static RS256 key verifies an IdP token that carries a kid as before."""
    public = key_a.public_key().public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    static = Settings(env="local", jwt_public_key=public)
    assert verify_token(static, signed(key_a, "idp-key")).user == "kim"
    assert (await verify_token_async(static, signed(key_a, "idp-key"))).user == "kim"


async def test_outside_local_the_default_hs256_secret_verifies_nothing(key_a):
    """Should a service run outside local with only the JWKS (no AVATAR_JWT_SECRET), a token HMAC-signed with
    the published local default secret must not pass."""
    prod = Settings.model_construct(**{**Settings(env="local").model_dump(), "env": "prod", "jwt_jwks_url": URL})
    with pytest.raises(HTTPException) as refused:
        await verify_token_async(prod, mint_token(Settings(env="local"), "mallory", "admin"),
                                 JwksCache(FakeGateway((key_a, "a"))))
    assert refused.value.status_code == 401 and "HS256 tokens are not accepted" in refused.value.detail
    assert (await verify_token_async(prod, signed(key_a, "a"), JwksCache(FakeGateway((key_a, "a"))))).user == "kim"
