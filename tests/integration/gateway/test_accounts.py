"""The users admin (AU-02): create, list, change, role, deactivate / reactivate, the last admin; the first
admin from the environment and from the CLI."""
from __future__ import annotations

import asyncio
import getpass
import logging
import os
import subprocess
import sys

import pytest

from services.gateway.main import create_app
from services.gateway.settings import GatewaySettings
from tests.integration.gateway.conftest import gateway_settings
from tests.integration.gateway.test_accounts_support import PASSWORD, browser, jwt_admin, login, make_user
from tests.support.services import running_service

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


async def test_create_list_get_and_change_users(gateway):
    admin = jwt_admin(gateway)
    created = await make_user(gateway, "kim", "researcher")
    assert created["active"] and created["login"] == "password" and created["created_by"] == "jwt-admin"
    assert "password" not in created and "password_hash" not in created
    await make_user(gateway, "lee", "viewer", password=None)
    await make_user(gateway, "ci-bot", "researcher", password=None, kind="service")

    duplicate = await gateway.client.post("/api/users", json={"id": "kim", "display_name": "K", "role": "viewer"},
                                          headers=admin)
    assert duplicate.status_code == 409 and "already exists" in duplicate.json()["detail"]["message"]
    bad = await gateway.client.post("/api/users", json={"id": " ", "display_name": "K", "role": "viewer"}, headers=admin)
    assert bad.status_code == 422
    bad = await gateway.client.post("/api/users", json={"id": "x", "display_name": "X", "role": "boss"}, headers=admin)
    assert bad.status_code == 422
    short = await gateway.client.post("/api/users", json={"id": "x", "display_name": "X", "role": "viewer",
                                                          "password": "short"}, headers=admin)
    assert short.status_code == 422 and short.json()["detail"]["code"] == "password_too_short"
    service_pw = await gateway.client.post("/api/users", json={"id": "bot2", "display_name": "B", "role": "viewer",
                                                               "kind": "service", "password": PASSWORD}, headers=admin)
    assert service_pw.status_code == 422 and service_pw.json()["detail"]["code"] == "service_password"

    listed = (await gateway.client.get("/api/users", headers=admin)).json()
    assert listed["total"] == 3 and [u["id"] for u in listed["items"]] == ["ci-bot", "kim", "lee"]
    viewers = (await gateway.client.get("/api/users?role=viewer", headers=admin)).json()
    assert [u["id"] for u in viewers["items"]] == ["lee"]
    found = (await gateway.client.get("/api/users?q=KI", headers=admin)).json()
    assert [u["id"] for u in found["items"]] == ["kim"]
    paged = (await gateway.client.get("/api/users?page=2&page_size=2", headers=admin)).json()
    assert [u["id"] for u in paged["items"]] == ["lee"] and paged["total"] == 3

    patched = await gateway.client.patch("/api/users/kim", json={"display_name": "Kim Lo", "email": None}, headers=admin)
    assert patched.status_code == 200 and patched.json()["display_name"] == "Kim Lo" and patched.json()["email"] is None
    assert patched.json()["updated_by"] == "jwt-admin"
    missing = await gateway.client.patch("/api/users/nobody", json={"display_name": "N"}, headers=admin)
    assert missing.status_code == 404 and missing.json()["detail"] == "user 'nobody' not found"
    null_name = await gateway.client.patch("/api/users/kim", json={"display_name": None}, headers=admin)
    assert null_name.status_code == 422


async def test_self_service_and_viewer_refused(gateway):
    await make_user(gateway, "kim", "viewer")
    await make_user(gateway, "lee", "viewer")
    async with browser(gateway) as client:
        await login(client, "kim")
        assert (await client.get("/api/users/kim")).status_code == 200
        assert (await client.patch("/api/users/kim", json={"email": "k@example.org"})).status_code == 200
        assert (await client.get("/api/users/lee")).status_code == 403
        assert (await client.patch("/api/users/lee", json={"display_name": "Pwned"})).status_code == 403
        refused = await client.post("/api/users", json={"id": "eve", "display_name": "Eve", "role": "admin"})
        assert refused.status_code == 403, refused.text
        assert (await client.get("/api/users")).status_code == 403
        assert (await client.put("/api/users/kim/role", json={"role": "admin"})).status_code == 403
        assert (await client.post("/api/users/lee/deactivate")).status_code == 403


async def test_role_change_and_deactivation_reach_open_sessions(gateway):
    admin = jwt_admin(gateway)
    await make_user(gateway, "kim", "researcher")
    async with browser(gateway) as client:
        await login(client, "kim")
        demoted = await gateway.client.put("/api/users/kim/role", json={"role": "viewer"}, headers=admin)
        assert demoted.status_code == 200 and demoted.json()["role"] == "viewer"
        assert (await client.get("/api/auth/me")).json()["role"] == "viewer"  # this process forgot at once

        off = await gateway.client.post("/api/users/kim/deactivate", headers=admin)
        assert off.status_code == 200, off.text
        assert off.json()["active"] is False and off.json()["deactivated_by"] == "jwt-admin"
        refused = await client.get("/api/auth/me")
        assert refused.status_code == 401
        again = await gateway.client.post("/api/users/kim/deactivate", headers=admin)
        assert again.status_code == 409 and again.json()["detail"]["code"] == "already_deactivated"
        # a JWT of the deactivated user is refused too
        jwt = await gateway.client.get("/api/auth/me", headers=gateway.headers("viewer", "kim"))
        assert jwt.status_code == 401 and "deactivated" in jwt.json()["detail"]

        on = await gateway.client.post("/api/users/kim/reactivate", headers=admin)
        assert on.status_code == 200 and on.json()["active"] is True and on.json()["deactivated_at"] is None
        assert (await client.get("/api/auth/me")).status_code == 401  # deactivation ended the session for good
        await login(client, "kim")
        assert (await client.get("/api/auth/me")).status_code == 200
        assert (await gateway.client.post("/api/users/kim/reactivate", headers=admin)).status_code == 409


async def test_last_active_admin_is_protected(gateway):
    await make_user(gateway, "root", "admin")
    async with browser(gateway) as client:
        await login(client, "root")
        demote = await client.put("/api/users/root/role", json={"role": "researcher"})
        assert demote.status_code == 409, demote.text
        assert demote.json()["detail"]["code"] == "last_admin" and "last active admin" in demote.json()["detail"]["message"]
        off = await client.post("/api/users/root/deactivate")
        assert off.status_code == 409 and off.json()["detail"]["code"] == "last_admin"

        await make_user(gateway, "ana", "admin")
        # a deactivated admin does not count
        assert (await client.post("/api/users/ana/deactivate")).status_code == 200
        assert (await client.put("/api/users/root/role", json={"role": "viewer"})).status_code == 409
        assert (await client.post("/api/users/ana/reactivate")).status_code == 200
        assert (await client.put("/api/users/root/role", json={"role": "viewer"})).status_code == 200
        assert (await client.get("/api/auth/me")).json()["role"] == "viewer"
        assert (await client.get("/api/users")).status_code == 403


async def test_admin_sets_a_password_and_the_users_sessions_end(gateway):
    await make_user(gateway, "kim")
    async with browser(gateway) as client:
        await login(client, "kim")
        done = await gateway.client.put("/api/users/kim/password", json={"password": "set by the admin"},
                                        headers=jwt_admin(gateway))
        assert done.status_code == 204
        assert (await client.get("/api/auth/me")).status_code == 401
        await login(client, "kim", "set by the admin")
    missing = await gateway.client.put("/api/users/nobody/password", json={"password": "set by the admin"},
                                       headers=jwt_admin(gateway))
    assert missing.status_code == 404


async def test_changes_are_audited_without_secrets(fresh):
    recorded: list[dict] = []
    async with running_service(create_app, gateway_settings(fresh)) as gateway:
        real = gateway.app.state.audit.decision

        async def spy(**fields):
            recorded.append(fields)
            return await real(**fields)

        gateway.app.state.audit.decision = spy
        await make_user(gateway, "kim")
        await gateway.client.put("/api/users/kim/role", json={"role": "viewer"}, headers=jwt_admin(gateway))
        await gateway.client.post("/api/users/kim/deactivate", headers=jwt_admin(gateway))
        async with browser(gateway) as client:
            await client.post("/api/auth/login", json={"user": "nobody", "password": "guess guess"})
    actions = [(r["action"], r["outcome"]) for r in recorded]
    assert actions == [("user.create", "ok"), ("user.role", "ok"), ("user.deactivate", "ok"),
                       ("auth.login", "refused")]
    create, role, deactivate, failed = recorded
    assert create["before"] is None and create["after"]["role"] == "researcher" and create["conn"] is not None
    assert role["before"]["role"] == "researcher" and role["after"]["role"] == "viewer"
    assert deactivate["before"]["active"] is True and deactivate["after"]["active"] is False
    assert failed["actor"] is None and failed["actor_user"] == "nobody"
    assert PASSWORD not in repr(recorded) and "argon2" not in repr(recorded)


async def test_bootstrap_admin_from_the_environment(fresh):
    settings = gateway_settings(fresh, bootstrap_admin="root", bootstrap_admin_password="a bootstrap password")
    async with running_service(create_app, settings) as gateway:
        async with browser(gateway) as client:
            await login(client, "root", "a bootstrap password")
            assert (await client.get("/api/auth/me")).json()["role"] == "admin"
            # a later start with another password does not touch the existing admin
    settings = gateway_settings(fresh, bootstrap_admin="root", bootstrap_admin_password="another password here")
    async with running_service(create_app, settings) as gateway:
        async with browser(gateway) as client:
            await login(client, "root", "a bootstrap password")
        # the creation is audited once, by "bootstrap", without the password
        created = await gateway.platform.pool.fetch(
            "SELECT * FROM audit_log WHERE kind = 'decision' AND action = 'user.create' ORDER BY id")
        assert [(r["actor"], r["target_type"], r["target_id"], r["outcome"]) for r in created] == [
            ("bootstrap", "user", "root", "ok")]
        assert created[0]["before"] is None and created[0]["after"]["role"] == "admin"
        assert "bootstrap password" not in repr(dict(created[0])) and "argon2" not in repr(dict(created[0]))


class _Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


async def test_bootstrap_admin_generated_password_locally(fresh):
    kept, logger = _Kept(), logging.getLogger("services.gateway.sessions")
    logger.addHandler(kept)
    try:
        async with running_service(create_app, gateway_settings(fresh, bootstrap_admin="root")) as gateway:
            message = next(m for m in kept.messages if "generated password" in m)
            password = message.split("generated password ")[1].split(" ")[0]
            async with browser(gateway) as client:
                await login(client, "root", password)
        async with running_service(create_app, gateway_settings(fresh, bootstrap_admin="root")):
            pass
        assert sum("generated password" in m for m in kept.messages) == 1  # logged once, never again
    finally:
        logger.removeHandler(kept)


def test_no_bootstrap_without_password_outside_local():
    with pytest.raises(ValueError, match="AVATAR_BOOTSTRAP_ADMIN_PASSWORD"):
        GatewaySettings(env="prod", jwt_secret="x" * 40, s3_access_key="a", s3_secret_key="b", bootstrap_admin="root")


def _cli(settings: GatewaySettings, *args: str, stdin: str = "", env: dict[str, str] | None = None):
    environ = {**os.environ, "AVATAR_ENV": "local", "AVATAR_POSTGRES_URL": settings.postgres_url,
               "AVATAR_POSTGRES_ADMIN_URL": settings.postgres_admin_url or "", **(env or {})}
    return subprocess.run([sys.executable, "-m", "services.gateway.cli", *args], input=stdin, capture_output=True,
                          text=True, timeout=60, cwd=ROOT, env=environ)


async def test_cli_create_admin_set_password_and_deactivate(fresh):
    settings = gateway_settings(fresh)
    # before the gateway ever ran: the CLI applies the migrations itself
    done = _cli(settings, "create-admin", "--user", "ops", "--display-name", "Operations", stdin="an ops password\n")
    assert done.returncode == 0, done.stderr
    assert "created admin 'ops'" in done.stdout
    again = _cli(settings, "create-admin", "--user", "ops", stdin="an ops password\n")
    assert again.returncode == 1 and "already exists" in again.stderr
    short = _cli(settings, "create-admin", "--user", "ops2", stdin="short\n")
    assert short.returncode == 1 and "at least 12" in short.stderr
    async with running_service(create_app, settings) as gateway:
        async with browser(gateway) as client:
            await login(client, "ops", "an ops password")
            me = (await client.get("/api/auth/me")).json()
            assert me["role"] == "admin" and me["display_name"] == "Operations"
            await make_user(gateway, "kim")
            reset = _cli(settings, "set-password", "--user", "kim", "--password-env", "NEW_PW",
                         env={"NEW_PW": "reset by the cli"})
            assert reset.returncode == 0, reset.stderr
            await login(client, "kim", "reset by the cli")
            last = _cli(settings, "deactivate", "--user", "ops")
            assert last.returncode == 1 and "last active admin" in last.stderr
            off = _cli(settings, "deactivate", "--user", "kim")
            assert off.returncode == 0, off.stderr
            gateway.app.state.identity.forget_user("kim")  # the CLI is another process: no cache to clear here
            assert (await client.get("/api/auth/me")).status_code == 401
        # each change is audited as the OS user who ran the CLI; the refused ones left nothing
        operator = f"cli:{getpass.getuser()}"
        recorded = await gateway.platform.pool.fetch(
            "SELECT * FROM audit_log WHERE kind = 'decision' AND actor = $1 ORDER BY id", operator)
        assert [(r["action"], r["target_id"], r["outcome"]) for r in recorded] == [
            ("user.create", "ops", "ok"), ("user.password_set", "kim", "ok"), ("user.deactivate", "kim", "ok")]
        assert recorded[0]["after"]["role"] == "admin" and recorded[0]["after"]["display_name"] == "Operations"
        assert recorded[1]["after"] == {"password": "set"}
        assert recorded[2]["before"]["active"] is True and recorded[2]["after"]["active"] is False
        assert all(r["request_id"] is None and r["address"] is None for r in recorded)
        assert "reset by the cli" not in repr([dict(r) for r in recorded])


async def test_two_admins_demoting_each_other_at_once_leave_one(gateway):
    admin = jwt_admin(gateway)
    for round_ in range(5):
        a, b = f"a{round_}", f"b{round_}"
        await make_user(gateway, a, "admin", password=None)
        await make_user(gateway, b, "admin", password=None)
        if round_:  # the previous round's survivor steps down first, so a and b are the only admins
            survivors = [u["id"] for u in (await gateway.client.get("/api/users?role=admin", headers=admin)).json()["items"]
                         if u["id"] not in (a, b)]
            for survivor in survivors:
                assert (await gateway.client.put(f"/api/users/{survivor}/role", json={"role": "viewer"},
                                                 headers=admin)).status_code == 200
        answers = await asyncio.gather(
            gateway.client.put(f"/api/users/{a}/role", json={"role": "viewer"}, headers=admin),
            gateway.client.post(f"/api/users/{b}/deactivate", headers=admin))
        assert sorted(r.status_code for r in answers) == [200, 409], [r.text for r in answers]
        left = await gateway.platform.pool.fetchval("SELECT count(*) FROM users WHERE role = 'admin' AND active")
        assert left == 1
