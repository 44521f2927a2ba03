"""Personal and service API tokens: shown once, stored hashed, revocable, expiring, capped at the owner's role."""
from __future__ import annotations

import asyncio

from tests.integration.gateway.test_accounts_support import bearer, browser, jwt_admin, login, make_user


async def _token(client, **body) -> dict:
    response = await client.post("/api/tokens", json={"name": "script", **body})
    assert response.status_code == 201, response.text
    return response.json()


async def test_token_shown_once_stored_hashed_and_usable(gateway):
    await make_user(gateway, "kim", "researcher")
    async with browser(gateway) as client:
        await login(client, "kim")
        made = await _token(client, expires_in_days=30)
        assert made["token"].startswith("avt_") and len(made["token"]) >= 4 + 43  # 32 random bytes, url-safe
        assert made["id"].startswith("tok_") and made["role"] == "researcher" and made["user"] == "kim"
        assert made["expires_at"] is not None
        listed = (await client.get("/api/tokens")).json()
        assert [t["id"] for t in listed] == [made["id"]]
        assert "token" not in listed[0] and made["token"] not in str(listed)
    rows = await gateway.platform.pool.fetch("SELECT * FROM api_tokens")
    assert len(rows) == 1
    assert all(made["token"] not in str(value) and made["token"][4:] not in str(value) for value in rows[0].values())
    assert len(rows[0]["secret_hash"]) == 32
    async with browser(gateway) as script:
        me = await script.get("/api/auth/me", headers=bearer(made["token"]))
        assert me.status_code == 200, me.text
        assert me.json()["via"] == "api_token" and me.json()["user"] == "kim" and me.json()["role"] == "researcher"
        assert (await script.get("/api/auth/me", headers=bearer("avt_" + "x" * 43))).status_code == 401
    assert await gateway.platform.pool.fetchval("SELECT last_used_at IS NOT NULL FROM api_tokens")


async def test_revoked_token_refused(gateway):
    await make_user(gateway, "kim")
    await make_user(gateway, "lee")
    async with browser(gateway) as client, browser(gateway) as other:
        await login(client, "kim")
        await login(other, "lee")
        made = await _token(client)
        assert (await gateway.client.get("/api/auth/me", headers=bearer(made["token"]))).status_code == 200
        # another user may not revoke it, nor learn that it exists
        assert (await other.delete(f"/api/tokens/{made['id']}")).status_code == 404
        revoked = await client.delete(f"/api/tokens/{made['id']}")
        assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
        refused = await gateway.client.get("/api/auth/me", headers=bearer(made["token"]))
        assert refused.status_code == 401 and "revoked" in refused.json()["detail"]
        assert (await client.get("/api/tokens")).json() == []
        assert len((await client.get("/api/tokens?revoked=true")).json()) == 1
        # an admin may revoke anyone's
        second = await _token(client, name="two")
        assert (await gateway.client.delete(f"/api/tokens/{second['id']}", headers=jwt_admin(gateway))).status_code == 200


async def test_revocation_seen_by_another_process_within_the_cache_time(gateway):
    """A revocation made elsewhere (another gateway process) reaches this one within identity_cache_seconds."""
    await make_user(gateway, "kim")
    async with browser(gateway) as client:
        await login(client, "kim")
        made = await _token(client)
    assert (await gateway.client.get("/api/auth/me", headers=bearer(made["token"]))).status_code == 200
    await gateway.platform.pool.execute("UPDATE api_tokens SET revoked_at = now(), revoked_by = 'elsewhere'")
    deadline = asyncio.get_running_loop().time() + gateway.settings.identity_cache_seconds + 1
    while (await gateway.client.get("/api/auth/me", headers=bearer(made["token"]))).status_code == 200:
        assert asyncio.get_running_loop().time() < deadline, "still accepted after identity_cache_seconds + 1"
        await asyncio.sleep(0.1)


async def test_expired_token_refused(gateway):
    await make_user(gateway, "kim")
    async with browser(gateway) as client:
        await login(client, "kim")
        made = await _token(client, expires_in_days=1)
    await gateway.platform.pool.execute("UPDATE api_tokens SET expires_at = now() - interval '1 second'")
    refused = await gateway.client.get("/api/auth/me", headers=bearer(made["token"]))
    assert refused.status_code == 401 and "expired" in refused.json()["detail"]
    assert (await gateway.client.post("/api/tokens", json={"name": "x", "expires_in_days": 0},
                                      headers=jwt_admin(gateway))).status_code == 422


async def test_role_capped_at_the_owners(gateway):
    admin = jwt_admin(gateway)
    await make_user(gateway, "kim", "researcher")
    async with browser(gateway) as client:
        await login(client, "kim")
        above = await client.post("/api/tokens", json={"name": "x", "role": "admin"})
        assert above.status_code == 422, above.text
        detail = above.json()["detail"]
        assert detail["code"] == "role_above_owner" and "'admin'" in detail["message"] and "'researcher'" in detail["message"]
        viewer = await _token(client, role="viewer")
        full = await _token(client)
    me = await gateway.client.get("/api/auth/me", headers=bearer(viewer["token"]))
    assert me.json()["role"] == "viewer"
    # a viewer JWT makes no researcher token for its owner
    assert (await gateway.client.post("/api/tokens", json={"name": "y", "role": "researcher"},
                                      headers=gateway.headers("viewer", "kim"))).status_code == 422
    # the owner demoted: the researcher token acts as a viewer, and their JWT makes viewer tokens only
    assert (await gateway.client.put("/api/users/kim/role", json={"role": "viewer"}, headers=admin)).status_code == 200
    assert (await gateway.client.get("/api/auth/me", headers=bearer(full["token"]))).json()["role"] == "viewer"
    assert (await gateway.client.post("/api/tokens", json={"name": "z"},
                                      headers=gateway.headers("researcher", "kim"))).json()["role"] == "viewer"
    # promoted back: the token is worth its own role again, never more
    await gateway.client.put("/api/users/kim/role", json={"role": "admin"}, headers=admin)
    assert (await gateway.client.get("/api/auth/me", headers=bearer(full["token"]))).json()["role"] == "researcher"


async def test_service_account_tokens_by_an_admin(gateway):
    admin = jwt_admin(gateway)
    await make_user(gateway, "ci-bot", "researcher", password=None, kind="service")
    await make_user(gateway, "kim", "researcher")
    await make_user(gateway, "root", "admin")
    made = await gateway.client.post("/api/tokens", json={"name": "ci", "user": "ci-bot", "expires_in_days": 90},
                                     headers=admin)
    assert made.status_code == 201, made.text
    assert made.json()["user"] == "ci-bot" and made.json()["role"] == "researcher"
    me = await gateway.client.get("/api/auth/me", headers=bearer(made.json()["token"]))
    assert me.json() == {"user": "ci-bot", "display_name": "Ci-Bot", "email": "ci-bot@example.org",
                         "role": "researcher", "via": "api_token", "kind": "service"}
    above = await gateway.client.post("/api/tokens", json={"name": "x", "user": "ci-bot", "role": "admin"}, headers=admin)
    assert above.status_code == 422
    person = await gateway.client.post("/api/tokens", json={"name": "x", "user": "kim"}, headers=admin)
    assert person.status_code == 403 and "person" in person.json()["detail"]
    missing = await gateway.client.post("/api/tokens", json={"name": "x", "user": "ghost"}, headers=admin)
    assert missing.status_code == 404
    listed = await gateway.client.get("/api/tokens?user=ci-bot", headers=admin)
    assert [t["id"] for t in listed.json()] == [made.json()["id"]]
    async with browser(gateway) as client:
        await login(client, "kim")
        refused = await client.post("/api/tokens", json={"name": "x", "user": "ci-bot"})
        assert refused.status_code == 403
        assert (await client.get("/api/tokens?user=ci-bot")).status_code == 403
        assert (await client.delete(f"/api/tokens/{made.json()['id']}")).status_code == 404
    # a JWT caller without an account has no tokens to make
    no_account = await gateway.client.post("/api/tokens", json={"name": "x"}, headers=gateway.headers("viewer", "who"))
    assert no_account.status_code == 422 and no_account.json()["detail"]["code"] == "no_account"


async def test_an_api_token_cannot_create_api_tokens(gateway):
    """A 1-day token must not mint a never-expiring child (which its revocation would not stop): only a
    logged-in person or a platform JWT makes tokens."""
    await make_user(gateway, "kim", "researcher")
    await make_user(gateway, "ci-bot", "researcher", password=None, kind="service")
    await make_user(gateway, "root", "admin")
    async with browser(gateway) as client:
        await login(client, "kim")
        parent = await _token(client, expires_in_days=1)
    for body in ({"name": "child"}, {"name": "child", "expires_in_days": 1}):
        refused = await gateway.client.post("/api/tokens", json=body, headers=bearer(parent["token"]))
        assert refused.status_code == 403, refused.text
        assert refused.json()["detail"] == "an API token cannot create API tokens: log in to make one"
    # an admin's token does not make a service account's either
    async with browser(gateway) as client:
        await login(client, "root")
        admin_token = await _token(client)
    refused = await gateway.client.post("/api/tokens", json={"name": "ci", "user": "ci-bot"},
                                        headers=bearer(admin_token["token"]))
    assert refused.status_code == 403
    rows = await gateway.platform.pool.fetch("SELECT user_id FROM api_tokens ORDER BY created_at")
    assert [row["user_id"] for row in rows] == ["kim", "root"]
    # a JWT caller (the local CLI) with an account still makes one
    by_jwt = await gateway.client.post("/api/tokens", json={"name": "cli"}, headers=gateway.headers("researcher", "kim"))
    assert by_jwt.status_code == 201, by_jwt.text


async def test_expiry_optional_for_a_person_but_capped(gateway):
    await make_user(gateway, "kim")
    async with browser(gateway) as client:
        await login(client, "kim")
        forever = await _token(client)
        assert forever["expires_at"] is None  # documented: the expiry is optional
        longest = await _token(client, expires_in_days=3650)
        assert longest["expires_at"] is not None
        over = await client.post("/api/tokens", json={"name": "x", "expires_in_days": 3651})
        assert over.status_code == 422
