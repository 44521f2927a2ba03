"""Local login, the session cookie and its CSRF token, logout, password change, login throttling."""
from __future__ import annotations

import asyncio
import uuid

from services.gateway.main import create_app
from tests.integration.gateway.conftest import gateway_settings
from tests.integration.gateway.test_accounts_support import PASSWORD, browser, login, make_user
from tests.support.services import running_service



async def test_login_me_logout(gateway):
    await make_user(gateway, "kim", "researcher")
    async with browser(gateway) as client:
        response = await client.post("/api/auth/login", json={"user": "kim", "password": PASSWORD})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["user"] == "kim" and body["role"] == "researcher" and body["display_name"] == "Kim"
        cookies = response.headers.get_list("set-cookie")
        session_cookie = next(c for c in cookies if c.startswith("avatar_session="))
        csrf_cookie = next(c for c in cookies if c.startswith("avatar_csrf="))
        assert "httponly" in session_cookie.lower() and "samesite=lax" in session_cookie.lower()
        assert "path=/" in session_cookie.lower() and "secure" not in session_cookie.lower()  # local over http
        assert "httponly" not in csrf_cookie.lower() and "samesite=strict" in csrf_cookie.lower()
        assert client.cookies["avatar_csrf"] == body["csrf_token"]

        me = await client.get("/api/auth/me")
        assert me.status_code == 200, me.text
        assert me.json() == {"user": "kim", "display_name": "Kim", "email": "kim@example.org", "role": "researcher",
                             "via": "session", "kind": "person"}

        secret = client.cookies["avatar_session"]
        out = await client.post("/api/auth/logout", headers={"X-CSRF-Token": body["csrf_token"]})
        assert out.status_code == 204, out.text
        assert "avatar_session" not in client.cookies
        # the old cookie no longer works even if a copy of it was kept
    async with browser(gateway) as copy:
        copy.cookies.set("avatar_session", secret)
        again = await copy.get("/api/auth/me")
        assert again.status_code == 401 and again.json()["detail"] == "session ended: log in again"
    stored = await gateway.platform.pool.fetch("SELECT secret_hash, csrf_hash, revoked_at FROM sessions")
    assert len(stored) == 1 and stored[0]["revoked_at"] is not None
    assert secret.encode() not in stored[0]["secret_hash"] and len(stored[0]["secret_hash"]) == 32


async def test_secure_cookies_outside_local_http(fresh):
    settings = gateway_settings(fresh, public_url="https://avatar.example.org")
    async with running_service(create_app, settings) as gateway:
        await make_user(gateway, "kim")
        async with browser(gateway) as client:
            response = await client.post("/api/auth/login", json={"user": "kim", "password": PASSWORD})
            assert response.status_code == 200
            assert all("secure" in c.lower() for c in response.headers.get_list("set-cookie"))


async def test_wrong_password_and_unknown_user_get_one_answer(gateway):
    await make_user(gateway, "kim")
    async with browser(gateway) as client:
        wrong = await client.post("/api/auth/login", json={"user": "kim", "password": "not the password"})
        unknown = await client.post("/api/auth/login", json={"user": "nobody", "password": "not the password"})
        assert wrong.status_code == unknown.status_code == 401
        assert wrong.json() == unknown.json() == {"detail": "wrong user or password"}
        assert "set-cookie" not in wrong.headers
        # a service account has no password: it cannot log in with any
        await make_user(gateway, "ci-bot", "viewer", password=None, kind="service")
        bot = await client.post("/api/auth/login", json={"user": "ci-bot", "password": ""})
        assert bot.status_code == 422  # an empty password is not even tried
        bot = await client.post("/api/auth/login", json={"user": "ci-bot", "password": "x"})
        assert bot.status_code == 401 and bot.json() == wrong.json()


async def test_deactivated_user_cannot_log_in(gateway):
    await make_user(gateway, "kim")
    response = await gateway.client.post("/api/users/kim/deactivate", headers=gateway.headers("admin", "root"))
    assert response.status_code == 200, response.text
    async with browser(gateway) as client:
        refused = await client.post("/api/auth/login", json={"user": "kim", "password": PASSWORD})
        assert refused.status_code == 401 and "deactivated" in refused.json()["detail"]
        wrong = await client.post("/api/auth/login", json={"user": "kim", "password": "guess guess guess"})
        assert wrong.json()["detail"] == "wrong user or password"  # deactivation is told only to the right password


async def test_csrf_needed_for_state_changes_only(gateway):
    await make_user(gateway, "kim")
    async with browser(gateway) as client:
        csrf = await login(client, "kim")
        del client.headers["X-CSRF-Token"]
        assert (await client.get("/api/auth/me")).status_code == 200  # GET needs no CSRF token
        for headers in ({}, {"X-CSRF-Token": "wrong"}, {"X-CSRF-Token": ""}):
            refused = await client.patch("/api/users/kim", json={"display_name": "Kim K"}, headers=headers)
            assert refused.status_code == 403, refused.text
            assert refused.json()["detail"] == "CSRF token missing or wrong"
        accepted = await client.patch("/api/users/kim", json={"display_name": "Kim K"}, headers={"X-CSRF-Token": csrf})
        assert accepted.status_code == 200, accepted.text
        assert accepted.json()["display_name"] == "Kim K"
        # a bearer token is not sent by a browser on its own: no CSRF token for it
        token = await client.post("/api/tokens", json={"name": "script"}, headers={"X-CSRF-Token": csrf})
        assert token.status_code == 201
        async with browser(gateway) as script:
            bearer = {"Authorization": f"Bearer {token.json()['token']}"}
            assert (await script.patch("/api/users/kim", json={"email": None}, headers=bearer)).status_code == 200


async def test_change_my_password(gateway):
    await make_user(gateway, "kim")
    async with browser(gateway) as client, browser(gateway) as other:
        await login(client, "kim")
        await login(other, "kim")
        wrong = await client.put("/api/auth/me/password", json={"current": "not it at all", "new": "a new long password"})
        assert wrong.status_code == 401
        short = await client.put("/api/auth/me/password", json={"current": PASSWORD, "new": "short"})
        assert short.status_code == 422 and short.json()["detail"]["code"] == "password_too_short"
        done = await client.put("/api/auth/me/password", json={"current": PASSWORD, "new": "a new long password"})
        assert done.status_code == 204, done.text
        assert (await client.get("/api/auth/me")).status_code == 200  # this session goes on
        assert (await other.get("/api/auth/me")).status_code == 401   # the others end
    async with browser(gateway) as client:
        assert (await client.post("/api/auth/login", json={"user": "kim", "password": PASSWORD})).status_code == 401
        await login(client, "kim", "a new long password")


async def test_session_idle_and_absolute_expiry(gateway):
    await make_user(gateway, "kim")
    async with browser(gateway) as client:
        await login(client, "kim")
        pool = gateway.platform.pool
        await pool.execute("UPDATE sessions SET last_seen_at = now() - interval '3 hours'")
        gateway.app.state.identity.forget_user("kim")
        idle = await client.get("/api/auth/me")
        assert idle.status_code == 401 and "inactivity" in idle.json()["detail"]
    async with browser(gateway) as client:
        await login(client, "kim")
        await pool.execute("UPDATE sessions SET expires_at = now() - interval '1 second' WHERE revoked_at IS NULL"
                           " AND last_seen_at > now() - interval '1 minute'")
        gateway.app.state.identity.forget_user("kim")
        expired = await client.get("/api/auth/me")
        assert expired.status_code == 401 and "expired" in expired.json()["detail"]


async def test_last_seen_written_at_most_once_a_minute(gateway):
    await make_user(gateway, "kim")
    async with browser(gateway) as client:
        await login(client, "kim")
        pool = gateway.platform.pool
        await pool.execute("UPDATE sessions SET last_seen_at = now() - interval '5 minutes'")
        gateway.app.state.identity.forget_user("kim")
        assert (await client.get("/api/auth/me")).status_code == 200
        first = await pool.fetchval("SELECT last_seen_at FROM sessions")
        assert (await client.get("/api/auth/me")).status_code == 200
        assert await pool.fetchval("SELECT last_seen_at FROM sessions") == first
        assert await pool.fetchval("SELECT now() - last_seen_at < interval '10 seconds' FROM sessions")


async def test_throttled_per_user_with_retry_after(fresh):
    settings = gateway_settings(fresh, login_max_failures_per_user=3, login_max_failures_per_address=100,
                                login_failure_window_seconds=60)
    async with running_service(create_app, settings) as gateway:
        await make_user(gateway, "kim")
        for n in range(3):  # from three addresses: the user's own count pauses them
            async with browser(gateway, f"10.0.0.{n + 1}") as client:
                wrong = await client.post("/api/auth/login", json={"user": "kim", "password": "guess guess"})
                assert wrong.status_code == 401
        async with browser(gateway, "10.0.0.9") as client:
            paused = await client.post("/api/auth/login", json={"user": "kim", "password": PASSWORD})
            assert paused.status_code == 429, paused.text
            # until the oldest of the three failures, a moment ago, leaves the 60 s window
            assert 50 <= int(paused.headers["Retry-After"]) <= 60
            assert "user" in paused.json()["detail"]
            # another user from the same address is not paused
            await make_user(gateway, "lee")
            await login(client, "lee")


async def test_throttled_per_address_with_retry_after(fresh):
    settings = gateway_settings(fresh, login_max_failures_per_user=100, login_max_failures_per_address=3,
                                login_failure_window_seconds=2)
    async with running_service(create_app, settings) as gateway:
        await make_user(gateway, "kim")
        async with browser(gateway, "10.1.1.1") as client:
            for name in ("a", "b", "c"):  # guessing three different users
                assert (await client.post("/api/auth/login", json={"user": name, "password": "x"})).status_code == 401
            paused = await client.post("/api/auth/login", json={"user": "kim", "password": PASSWORD})
            assert paused.status_code == 429
            assert paused.headers["Retry-After"] in {"1", "2"}
            assert "address" in paused.json()["detail"]
        async with browser(gateway, "10.1.1.2") as elsewhere:
            await login(elsewhere, "kim")  # the same user from another address is fine
        await asyncio.sleep(int(paused.headers["Retry-After"]) + 0.2)
        async with browser(gateway, "10.1.1.1") as client:
            await login(client, "kim")  # the window moved on


async def test_success_resets_the_users_count(fresh):
    settings = gateway_settings(fresh, login_max_failures_per_user=2, login_failure_window_seconds=60)
    async with running_service(create_app, settings) as gateway:
        await make_user(gateway, "kim")
        async with browser(gateway) as client:
            assert (await client.post("/api/auth/login", json={"user": "kim", "password": "nope nope"})).status_code == 401
            await login(client, "kim")
            assert (await client.post("/api/auth/login", json={"user": "kim", "password": "nope nope"})).status_code == 401
            await login(client, "kim")


async def test_login_rehashes_an_old_hash(gateway):
    from argon2 import PasswordHasher

    await make_user(gateway, "kim")
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    await gateway.platform.pool.execute("UPDATE users SET password_hash = $1 WHERE id = 'kim'", weak)
    async with browser(gateway) as client:
        await login(client, "kim")
    stored = await gateway.platform.pool.fetchval("SELECT password_hash FROM users WHERE id = 'kim'")
    assert stored != weak and stored.startswith("$argon2id$v=19$m=65536")
    async with browser(gateway) as client:
        await login(client, "kim")


async def test_concurrent_wrong_logins_cannot_pass_the_limit(fresh, monkeypatch):
    """Each attempt is reserved before argon2 runs: 25 guesses at once for one user reach the password
    check at most `limit` times; the others are refused with 429."""
    from services.gateway import passwords

    settings = gateway_settings(fresh, login_max_failures_per_user=5, login_max_failures_per_address=1000,
                                login_failure_window_seconds=60, redis_prefix=f"lt-{uuid.uuid4().hex[:8]}:")
    async with running_service(create_app, settings) as gateway:
        await make_user(gateway, "kim")
        verified, real = [], passwords.verify_password

        async def counting(stored, password):
            verified.append(password)
            return await real(stored, password)

        monkeypatch.setattr(passwords, "verify_password", counting)

        async def guess(n: int) -> int:
            async with browser(gateway, f"10.2.0.{n + 1}") as client:
                return (await client.post("/api/auth/login", json={"user": "kim", "password": f"guess {n} guess"})).status_code

        answers = await asyncio.gather(*(guess(n) for n in range(25)))
        assert len(verified) <= 5
        assert answers.count(401) == len(verified) and answers.count(429) == 25 - len(verified), answers
        async with browser(gateway, "10.2.1.1") as client:  # the right password too waits now
            assert (await client.post("/api/auth/login", json={"user": "kim", "password": PASSWORD})).status_code == 429


async def test_a_right_password_takes_its_attempt_back(fresh):
    settings = gateway_settings(fresh, login_max_failures_per_user=2, login_max_failures_per_address=2,
                                login_failure_window_seconds=60, redis_prefix=f"lt-{uuid.uuid4().hex[:8]}:")
    async with running_service(create_app, settings) as gateway:
        for user in ("kim", "lee", "max"):
            await make_user(gateway, user)
        async with browser(gateway, "10.3.0.1") as client:
            for _ in range(2):  # logins from one address are not failures of that address
                for user in ("kim", "lee", "max"):
                    await login(client, user)
            # so are changes of one's password with the right current one
            for n in range(3):
                changed = await client.put("/api/auth/me/password", json={"current": PASSWORD, "new": PASSWORD})
                assert changed.status_code == 204, changed.text
            wrong = await client.put("/api/auth/me/password", json={"current": "not it at all", "new": PASSWORD})
            assert wrong.status_code == 401
            assert (await client.post("/api/auth/login", json={"user": "kim", "password": "nope nope"})).status_code == 401
            paused = await client.post("/api/auth/login", json={"user": "lee", "password": PASSWORD})
            assert paused.status_code == 429 and "address" in paused.json()["detail"]
