"""Every way a bearer token must be refused."""

from __future__ import annotations

import base64
import datetime
import time
import uuid

import jwt
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.factories import register


def claims(account_id: str, **overrides):
    now = int(time.time())
    base = {
        "iss": "relais",
        "aud": "relais-api",
        "sub": account_id,
        "iat": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
        "typ": "access",
        "fid": uuid.uuid4().hex,
        "role": "admin",
    }
    base.update(overrides)
    return {key: value for key, value in base.items() if value is not None}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def me_status(client, token: str) -> int:
    response = await client.get("/api/users/me", headers={"Authorization": f"Bearer {token}"})
    if response.status == 401:
        assert response.content_type == "application/problem+json"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    return response.status


async def test_valid_forged_with_our_key_passes(client, key_pair):
    account = await register(client)
    token = jwt.encode(claims(account.id), key_pair[0], algorithm="EdDSA")
    assert await me_status(client, token) == 200


async def test_alg_none_is_refused(client):
    account = await register(client)
    header = b64(orjson.dumps({"alg": "none", "typ": "JWT"}))
    token = f"{header}.{b64(orjson.dumps(claims(account.id)))}."
    assert await me_status(client, token) == 401


async def test_other_algorithm_is_refused(client):
    account = await register(client)
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert (
        await me_status(client, jwt.encode(claims(account.id), rsa_key, algorithm="RS256")) == 401
    )
    hmac_token = jwt.encode(
        claims(account.id), "shared-secret-of-at-least-32-bytes!!", algorithm="HS256"
    )
    assert await me_status(client, hmac_token) == 401


async def test_bad_signature_is_refused(client):
    account = await register(client)
    stranger = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert (
        await me_status(client, jwt.encode(claims(account.id), stranger, algorithm="EdDSA")) == 401
    )
    head, body, signature = account.access_token.split(".")
    tampered = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1]
    assert await me_status(client, f"{head}.{tampered}.{signature}") == 401


@pytest.mark.parametrize(
    "override",
    [
        {"exp": int(time.time()) - 60},
        {"exp": None},
        {"iat": None},
        {"jti": None},
        {"sub": None},
        {"typ": None},
        {"aud": "someone-else"},
        {"iss": "https://evil.example"},
        {"aud": None},
        {"iss": None},
        {"typ": "refresh"},
        {"typ": "id"},
    ],
    ids=lambda o: ",".join(f"{k}={'missing' if v is None else v}" for k, v in o.items()),
)
async def test_bad_claims_are_refused(client, key_pair, override):
    account = await register(client)
    token = jwt.encode(claims(account.id, **override), key_pair[0], algorithm="EdDSA")
    assert await me_status(client, token) == 401


async def test_refresh_token_is_not_an_access_token(client):
    account = await register(client)
    assert await me_status(client, account.refresh_token) == 401


async def test_revoked_token_is_refused(client):
    account = await register(client)
    assert (await client.post("/api/auth/logout", headers=account.auth)).status == 204
    assert await me_status(client, account.access_token) == 401


@pytest.mark.parametrize(
    "header", ["", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer not.a.jwt"]
)
async def test_missing_or_garbled_header_is_refused(client, header):
    response = await client.get(
        "/api/users/me", headers={"Authorization": header} if header else {}
    )
    assert response.status == 401


async def test_a_token_accepted_once_is_refused_once_it_expires(client, key_pair, monkeypatch):
    account = await register(client)
    now = time.time()
    token = jwt.encode(claims(account.id, exp=int(now) + 60), key_pair[0], algorithm="EdDSA")
    assert await me_status(client, token) == 200
    assert await me_status(client, token) == 200  # the second time from the verified cache
    later = now + 60 + 6  # past `exp` and the clock leeway, on both clocks that judge it

    class Later(datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.datetime.fromtimestamp(later, tz)

    monkeypatch.setattr(time, "time", lambda: later)
    monkeypatch.setattr(jwt.api_jwt, "datetime", Later)
    assert await me_status(client, token) == 401
