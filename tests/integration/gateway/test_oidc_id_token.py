"""The gateway's check of an ID token (services/gateway/oidc.py), with tokens signed here.

The provider process in test_oidc_login.py only issues good tokens for the client that asks (and its
codes only to that client), so the tokens it never issues — another audience, another issuer, expired, an
HS256 token made with the client secret — are made here with joserfc and a key of the test's own.
"""
from __future__ import annotations

import base64
import hashlib
import json
import time

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, OctKey, RSAKey

from services.gateway.oidc import LoginRefused, OidcLogin
from services.gateway.settings import GatewaySettings

ISSUER = "https://idp.example"
CLIENT_ID = "avatar-gateway"
CLIENT_SECRET = "the-client-secret-the-gateway-and-the-idp-share"
NONCE = "n-0S6_WzA2Mj"
ACCESS_TOKEN = "the-access-token"
METADATA = {"issuer": ISSUER, "id_token_signing_alg_values_supported": ["RS256", "HS256", "none"]}

KEY = RSAKey.generate_key(2048, parameters={"kid": "idp-key-1"}, private=True)
OTHER_KEY = RSAKey.generate_key(2048, parameters={"kid": "idp-key-1"}, private=True)  # same kid, not the IdP's


def at_hash(access_token: str) -> str:
    digest = hashlib.sha256(access_token.encode()).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


def claims(**changes) -> dict:
    now = int(time.time())
    values = {"iss": ISSUER, "sub": "kim", "aud": CLIENT_ID, "exp": now + 300, "iat": now, "nonce": NONCE,
              "at_hash": at_hash(ACCESS_TOKEN), "email": "kim@example.org", "groups": ["ml-team"]}
    values.update(changes)
    return {key: value for key, value in values.items() if value is not None}


def signed(payload: dict, key=KEY, alg: str = "RS256") -> dict:
    return {"id_token": jwt.encode({"alg": alg, "kid": "idp-key-1"}, payload, key), "access_token": ACCESS_TOKEN}


@pytest.fixture
def login() -> OidcLogin:
    oidc = OidcLogin(GatewaySettings(oidc_issuer=ISSUER, oidc_client_id=CLIENT_ID, oidc_client_secret=CLIENT_SECRET))

    async def key_set(*, refresh: bool = False) -> KeySet:  # the IdP's JWKS, without the HTTP
        return KeySet([RSAKey.import_key(KEY.as_dict(private=False))])

    oidc._key_set = key_set
    return oidc


async def check(login: OidcLogin, token: dict, nonce: str = NONCE) -> dict:
    return await login._validated_id_token(token, nonce, METADATA)


async def test_a_good_id_token_is_accepted(login):
    got = await check(login, signed(claims()))
    assert got["sub"] == "kim" and got["groups"] == ["ml-team"]
    # an audience list naming this client, with azp = this client, is good too (OIDC Core §2)
    assert (await check(login, signed(claims(aud=[CLIENT_ID, "api"], azp=CLIENT_ID))))["sub"] == "kim"


@pytest.mark.parametrize("changes, why", [
    ({"aud": "another-app"}, "aud"),
    ({"aud": ["another-app", "api"]}, "aud"),
    ({"aud": [CLIENT_ID, "api"]}, "azp"),                    # several audiences and no azp
    ({"aud": [CLIENT_ID], "azp": "another-app"}, "azp"),
    ({"aud": None}, "aud"),
    ({"iss": "https://evil.example"}, "iss"),
    ({"iss": None}, "iss"),
    ({"exp": int(time.time()) - 600}, "exp"),               # expired beyond the leeway
    ({"exp": None}, "exp"),
    ({"iat": int(time.time()) + 3600}, "future"),
    ({"nonce": "another-nonce"}, "nonce"),
    ({"nonce": None}, "nonce"),
    ({"at_hash": at_hash("another-access-token")}, "at_hash"),
    ({"sub": None}, "sub"),
])
async def test_an_id_token_not_for_this_login_is_refused(login, changes, why):
    with pytest.raises(LoginRefused) as refused:
        await check(login, signed(claims(**changes)))
    assert refused.value.status == 401
    assert why in refused.value.detail


async def test_the_issuer_is_compared_as_the_idp_spells_it(login):
    # an IdP whose issuer ends with "/" (configured here without it) signs tokens with that exact issuer
    metadata = {**METADATA, "issuer": ISSUER + "/"}
    assert (await login._validated_id_token(signed(claims(iss=ISSUER + "/")), NONCE, metadata))["sub"] == "kim"
    with pytest.raises(LoginRefused):
        await login._validated_id_token(signed(claims(iss=ISSUER)), NONCE, metadata)


async def test_an_id_token_signed_by_another_key_is_refused(login):
    with pytest.raises(LoginRefused) as refused:
        await check(login, signed(claims(), key=OTHER_KEY))
    assert refused.value.status == 401


async def test_an_hs256_id_token_made_with_the_client_secret_is_refused(login):
    # the IdP's discovery even lists HS256: a token anyone with the client secret could make is still refused
    with pytest.raises(LoginRefused) as refused:
        await check(login, signed(claims(), key=OctKey.import_key(CLIENT_SECRET), alg="HS256"))
    assert refused.value.status == 401


async def test_an_unsigned_id_token_is_refused(login):
    header = base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode()
    body = base64.urlsafe_b64encode(json.dumps(claims()).encode()).rstrip(b"=").decode()
    with pytest.raises(LoginRefused) as refused:
        await check(login, {"id_token": f"{header}.{body}.", "access_token": ACCESS_TOKEN})
    assert refused.value.status == 401


async def test_no_id_token_is_refused(login):
    with pytest.raises(LoginRefused) as refused:
        await check(login, {"access_token": ACCESS_TOKEN})
    assert refused.value.status == 401 and "openid" in refused.value.detail


def test_an_http_issuer_is_refused_outside_local():
    with pytest.raises(ValueError, match="https"):
        OidcLogin(GatewaySettings(env="dev", oidc_issuer="http://idp.example", oidc_client_id=CLIENT_ID,
                                  jwt_secret="x" * 40))
