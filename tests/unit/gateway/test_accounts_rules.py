"""The accounts' pure rules: passwords, the last admin, token roles, OIDC ids, session and token refusals."""
from __future__ import annotations

import pytest

from services.gateway import accounts, passwords, sessions
from services.kit.errors import Conflict, Invalid


def test_password_rules():
    accounts.check_password("x" * 12, min_length=12)
    with pytest.raises(Invalid) as short:
        accounts.check_password("x" * 11, min_length=12)
    assert short.value.code == "password_too_short" and "12" in short.value.message
    with pytest.raises(Invalid):
        accounts.check_password("x" * (accounts.MAX_PASSWORD + 1), min_length=12)
    with pytest.raises(Invalid) as same:
        accounts.check_password("Kimberly-Long", min_length=12, user_id="kimberly-long")
    assert same.value.code == "password_is_user"


@pytest.mark.parametrize("admins, user, change, refused", [
    ({"root"}, "root", {"new_role": "viewer"}, True),
    ({"root"}, "root", {"deactivating": True}, True),
    ({"root"}, "root", {"new_role": "admin"}, False),
    ({"root", "ana"}, "root", {"deactivating": True}, False),
    ({"root"}, "kim", {"deactivating": True}, False),      # not an admin: not this rule's business
    (set(), "kim", {"new_role": "viewer"}, False),
])
def test_last_admin(admins, user, change, refused):
    if refused:
        with pytest.raises(Conflict) as conflict:
            accounts.check_keeps_admin(admins, user, **change)
        assert conflict.value.code == "last_admin" and "last active admin" in conflict.value.message
    else:
        accounts.check_keeps_admin(admins, user, **change)


def test_token_role():
    assert accounts.token_role(None, "researcher", "kim") == "researcher"
    assert accounts.token_role("viewer", "researcher", "kim") == "viewer"
    assert accounts.token_role("researcher", "researcher", "kim") == "researcher"
    with pytest.raises(Invalid) as above:
        accounts.token_role("admin", "researcher", "kim")
    assert "'admin'" in above.value.message and "'researcher'" in above.value.message
    assert above.value.extra == {"role": "admin", "owner_role": "researcher"}


def test_oidc_ids():
    assert accounts.oidc_id_base("Ana.Lo@example.org", "sub") == "ana.lo"
    assert accounts.oidc_id_base(None, "  auth0|123\x00 ") == "auth0|123"
    assert accounts.oidc_id_base("@example.org", "\x01") == "user"
    assert len(accounts.oidc_id_base(None, "s" * 400)) <= 255 - 8
    ids = accounts.candidate_ids("ana")
    assert [next(ids) for _ in range(3)] == ["ana", "ana-2", "ana-3"]


def _session(**changes) -> sessions.SessionRecord:
    base = dict(id="ses_1", user="kim", role="viewer", active=True, csrf_hash=sessions.secret_hash("c"),
                expires_at=1000.0, last_seen=500.0, revoked=False)
    return sessions.SessionRecord(**{**base, **changes})


def test_session_refusals():
    assert sessions.session_refusal(_session(), 600.0, 3600) is None
    assert "ended" in sessions.session_refusal(_session(revoked=True), 600.0, 3600)
    assert "expired" in sessions.session_refusal(_session(), 1000.0, 3600)
    assert "inactivity" in sessions.session_refusal(_session(), 900.0, 300)
    assert "deactivated" in sessions.session_refusal(_session(active=False), 600.0, 3600)


def test_token_refusals():
    token = sessions.TokenRecord("tok_1", "kim", "admin", "viewer", True, None, None, False)
    assert sessions.token_refusal(token, 1e12) is None  # no expiry
    assert "revoked" in sessions.token_refusal(token.__class__(**{**token.__dict__, "revoked": True}), 0)
    assert "expired" in sessions.token_refusal(token.__class__(**{**token.__dict__, "expires_at": 10.0}), 10.0)
    assert "deactivated" in sessions.token_refusal(token.__class__(**{**token.__dict__, "active": False}), 0)


def test_csrf_check():
    expected = sessions.secret_hash("the-token")
    assert sessions.csrf_ok("the-token", expected)
    assert not sessions.csrf_ok(None, expected)
    assert not sessions.csrf_ok("", expected)
    assert not sessions.csrf_ok("the-token ", expected)


def test_secrets_are_long_and_prefixed():
    token = sessions.new_secret(sessions.TOKEN_PREFIX)
    assert token.startswith("avt_") and len(token) >= 4 + 43
    assert sessions.new_secret() != sessions.new_secret()


async def test_password_hashing_and_rehash():
    stored = await passwords.hash_password("a long password")
    assert stored.startswith("$argon2id$") and "a long password" not in stored
    assert (await passwords.verify_password(stored, "a long password")) == passwords.Checked(True)
    assert not (await passwords.verify_password(stored, "wrong")).ok
    assert not (await passwords.verify_password(None, "anything")).ok  # the unknown user: a dummy hash
    assert not (await passwords.verify_password("not a hash", "anything")).ok
    from argon2 import PasswordHasher
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash("a long password")
    checked = await passwords.verify_password(weak, "a long password")
    assert checked.ok and checked.new_hash and checked.new_hash.startswith("$argon2id$v=19$m=65536")
