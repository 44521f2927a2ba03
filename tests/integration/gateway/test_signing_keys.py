"""The gateway's signing keys: stored encrypted, one active however many gateways start, published without
private parts, rotated by an admin (audited) or the CLI, followed by the other replicas."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import jwt
import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from jwt.algorithms import RSAAlgorithm

from services.gateway import signing
from services.gateway.signing import PRIVATE_MEMBERS, Signer, renew_at, thumbprint

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def test_kid_is_the_rfc7638_thumbprint():
    # RFC 7638 §3.1's example key and its thumbprint
    n = ("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV"
         "4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0"
         "zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-c"
         "sFCur-kEgU8awapJzKnqDKgw")
    assert thumbprint({"kty": "RSA", "n": n, "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"}) == \
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_a_cached_token_is_renewed_once_less_than_a_third_of_its_life_is_left():
    assert renew_at(1000, 300) == 1200


async def test_the_jwks_is_public_cacheable_and_holds_no_private_member(gateway):
    response = await gateway.client.get("/api/auth/jwks.json")  # no credentials at all
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=60"
    keys = response.json()["keys"]
    assert len(keys) == 1
    key = keys[0]
    assert not PRIVATE_MEMBERS & set(key)
    assert key["kty"] == "RSA" and key["alg"] == "RS256" and key["use"] == "sig"
    assert key["kid"] == thumbprint(key) == gateway.app.state.signer.active_kid
    assert RSAAlgorithm.from_jwk(key).key_size == 2048
    token = gateway.app.state.signer.access_token("kim", "viewer")
    claims = jwt.decode(token, RSAAlgorithm.from_jwk(key), algorithms=["RS256"], issuer="avatar-one")
    assert claims["sub"] == "kim" and claims["role"] == "viewer"


async def test_private_keys_are_stored_encrypted_under_the_secrets_key(gateway):
    async with gateway.platform.pool.acquire() as conn:
        rows = await conn.fetch("SELECT kid, private_key, public_jwk FROM signing_keys")
    assert len(rows) == 1
    stored = rows[0]["private_key"]
    assert "PRIVATE KEY" not in stored and "MII" not in stored
    pem = Fernet(gateway.settings.secrets_key.encode()).decrypt(stored.encode())
    private = serialization.load_pem_private_key(pem, password=None)
    assert RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)["n"] == rows[0]["public_jwk"]["n"]
    assert not PRIVATE_MEMBERS & set(rows[0]["public_jwk"])


async def test_a_key_that_does_not_decrypt_stops_the_start_with_a_clear_message(gateway):
    wrong = gateway.settings.model_copy(update={"secrets_key": Fernet.generate_key().decode()})
    with pytest.raises(RuntimeError, match="does not decrypt under AVATAR_SECRETS_KEY"):
        await Signer(gateway.platform.pool, wrong).start()


async def test_gateways_starting_together_make_exactly_one_active_key(gateway):
    pool = gateway.platform.pool
    async with pool.acquire() as conn:
        await conn.execute("DELETE FROM signing_keys")
    signers = [Signer(pool, gateway.settings) for _ in range(5)]
    try:
        await asyncio.gather(*(signer.start() for signer in signers))
        async with pool.acquire() as conn:
            active = await conn.fetch("SELECT kid FROM signing_keys "
                                      "WHERE activated_at IS NOT NULL AND retired_at IS NULL")
            total = await conn.fetchval("SELECT count(*) FROM signing_keys")
        assert len(active) == 1 and total == 1
        assert {signer.active_kid for signer in signers} == {active[0]["kid"]}
    finally:
        await asyncio.gather(*(signer.aclose() for signer in signers))


async def test_an_admin_rotates_audited_and_another_replica_follows(gateway, monkeypatch):
    recorded = []
    original = gateway.app.state.audit.decision

    async def decision(**fields):
        recorded.append(fields)
        return await original(**fields)

    monkeypatch.setattr(gateway.app.state.audit, "decision", decision)
    monkeypatch.setattr(signing, "RELOAD_SECONDS", 0.2)  # the replica's refresher period (30 s in earnest)
    replica = Signer(gateway.platform.pool, gateway.settings)
    await replica.start()
    try:
        old = gateway.app.state.signer.active_kid
        assert replica.active_kid == old
        before = replica.access_token("kim", "viewer")

        response = await gateway.client.post("/api/auth/keys/rotate", headers=gateway.headers("admin", "root"))
        assert response.status_code == 201, response.text
        new = response.json()["kid"]
        assert response.json() == {"kid": new, "retired_kid": old}
        assert [(r["action"], r["target_type"], r["target_id"], r["before"], r["after"], r["outcome"])
                for r in recorded] == [("signing_key.rotate", "signing_key", new, {"kid": old}, {"kid": new}, "ok")]
        assert recorded[0]["actor"].user == "root" and recorded[0]["conn"] is not None
        async with gateway.platform.pool.acquire() as conn:
            rows = await conn.fetch("SELECT actor, before, after FROM audit_log WHERE kind = 'decision' "
                                    "AND action = 'signing_key.rotate'")
        assert [(r["actor"], r["before"], r["after"]) for r in rows] == [("root", {"kid": old}, {"kid": new})]

        for _ in range(200):  # until its refresher's next round
            if replica.active_kid == new:
                break
            await asyncio.sleep(0.05)
        assert replica.active_kid == new
        after = replica.access_token("kim", "viewer")
        assert after != before and jwt.get_unverified_header(after)["kid"] == new  # its cached token dropped

        listed = await gateway.client.get("/api/auth/keys", headers=gateway.headers("admin"))
        assert listed.status_code == 200
        states = {key["kid"]: (key["state"], key["published"]) for key in listed.json()}
        assert states == {new: ("active", True), old: ("retired", True)}
        for key in listed.json():
            assert set(key) == {"kid", "state", "published", "public_jwk", "created_at", "activated_at", "retired_at"}
            assert not PRIVATE_MEMBERS & set(key["public_jwk"])
        assert "private" not in listed.text.lower()
    finally:
        await replica.aclose()


@pytest.mark.parametrize("role", ["viewer", "researcher"])
async def test_only_an_admin_may_rotate_or_list_keys(gateway, role):
    kid = gateway.app.state.signer.active_kid
    refused = await gateway.client.post("/api/auth/keys/rotate", headers=gateway.headers(role))
    assert refused.status_code == 403
    assert (await gateway.client.get("/api/auth/keys", headers=gateway.headers(role))).status_code == 403
    assert (await gateway.client.get("/api/auth/keys")).status_code == 401
    assert gateway.app.state.signer.active_kid == kid


async def test_a_token_is_re_signed_when_two_thirds_of_its_life_are_gone(gateway, monkeypatch):
    signer = gateway.app.state.signer
    now = [1_900_000_000.0]
    monkeypatch.setattr(signing.time, "time", lambda: now[0])
    first = signer.access_token("kim", "admin")
    now[0] += signer._ttl * 2 / 3 - 1
    assert signer.access_token("kim", "admin") is first
    now[0] += 2
    second = signer.access_token("kim", "admin")
    assert second != first
    assert jwt.decode(second, options={"verify_signature": False})["iat"] == int(now[0])


async def test_the_cli_rotates(gateway):
    old = gateway.app.state.signer.active_kid
    env = {**os.environ, **{f"AVATAR_{k.upper()}": str(v) for k, v in gateway.settings.model_dump().items()
                            if v is not None and isinstance(v, (str, int, float, bool)) and k != "service"}}
    env["AVATAR_POSTGRES_ADMIN_URL"] = gateway.settings.postgres_admin_url
    done = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "services.gateway.signing", "rotate"],
                                   cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"retired {old}" in done.stdout
    await gateway.app.state.signer.reload()
    new = gateway.app.state.signer.active_kid
    assert new != old and f"active signing key: {new}" in done.stdout
    async with gateway.platform.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT actor, target_id, before FROM audit_log WHERE action = 'signing_key.rotate'")
    assert row["actor"].startswith("cli:") and row["target_id"] == new and row["before"] == {"kid": old}
