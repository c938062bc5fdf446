"""Registration, login, refresh rotation, logout and the per-account login throttle."""

from __future__ import annotations

import asyncio

import pytest

from tests.factories import PASSWORD, login, register, unique_email

PROBLEM = "application/problem+json"


async def test_register_returns_user_and_tokens(client):
    email = unique_email()
    response = await client.post(
        "/api/auth/register", json={"email": email, "password": PASSWORD, "name": "Ada"}
    )
    assert response.status == 201
    body = await response.json()
    assert body["user"]["email"] == email
    assert body["user"]["role"] == "customer"
    assert set(body["user"]) == {
        "id",
        "email",
        "name",
        "role",
        "created_at",
        "email_verified",
        "two_factor_enabled",
    }
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    me = await client.get(
        "/api/users/me", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert me.status == 200
    assert (await me.json())["id"] == body["user"]["id"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"email": "not-an-email", "password": PASSWORD, "name": "A"}, "email"),
        ({"email": "a@example.com", "password": "short", "name": "A"}, "password"),
        ({"email": "a@example.com", "password": "x" * 1025, "name": "A"}, "password"),
        ({"email": "a@example.com", "name": "A"}, "password"),
        ({"password": PASSWORD, "name": "A"}, "email"),
        ({"email": "a@example.com", "password": PASSWORD}, "name"),
        ({"email": "a@example.com", "password": PASSWORD, "name": "A", "role": "admin"}, "role"),
    ],
)
async def test_register_rejects_invalid_fields(client, db, payload, field):
    before = await db.fetchval("SELECT count(*) FROM users")
    response = await client.post("/api/auth/register", json=payload)
    assert response.status == 422
    assert response.content_type == PROBLEM
    body = await response.json()
    assert field in {error["field"] for error in body["errors"]}
    assert await db.fetchval("SELECT count(*) FROM users") == before


async def test_register_accepts_1024_character_password(client):
    await register(client, password="p" * 1024)


async def test_register_rejects_malformed_json_and_wrong_media_type(client):
    response = await client.post(
        "/api/auth/register", data=b'{"email": ', headers={"Content-Type": "application/json"}
    )
    assert response.status == 400
    assert response.content_type == PROBLEM
    response = await client.post(
        "/api/auth/register", data=b"email=a", headers={"Content-Type": "text/plain"}
    )
    assert response.status == 415
    assert response.content_type == PROBLEM


async def test_duplicate_email_is_case_insensitive(client):
    email = unique_email()
    await register(client, email=email)
    response = await client.post(
        "/api/auth/register", json={"email": email.upper(), "password": PASSWORD, "name": "Twin"}
    )
    assert response.status == 409
    assert (await response.json())["status"] == 409


async def test_concurrent_duplicate_registrations_create_one_account(client, db):
    email = unique_email()
    payload = {"email": email, "password": PASSWORD, "name": "Racer"}
    responses = await asyncio.gather(
        *(client.post("/api/auth/register", json=payload) for _ in range(5))
    )
    assert sorted(r.status for r in responses) == [201, 409, 409, 409, 409]
    assert await db.fetchval("SELECT count(*) FROM users WHERE lower(email) = $1", email) == 1


async def test_login_with_any_case_email(client):
    account = await register(client)
    assert (await login(client, account.email.upper())).id == account.id


async def test_wrong_password_and_unknown_email_answer_alike(client):
    account = await register(client)
    wrong = await client.post(
        "/api/auth/login", json={"email": account.email, "password": "wrong password"}
    )
    unknown = await client.post(
        "/api/auth/login", json={"email": unique_email(), "password": "wrong password"}
    )
    assert wrong.status == unknown.status == 401
    wrong_body, unknown_body = await wrong.json(), await unknown.json()
    for body in (wrong_body, unknown_body):
        body.pop("request_id")
    assert wrong_body == unknown_body


async def test_login_throttled_per_account_and_address_after_five_failures(client):
    account = await register(client)
    attacker = {"X-Real-IP": "198.51.100.66"}
    bad = {"email": account.email, "password": "wrong password"}
    for _ in range(5):
        assert (await client.post("/api/auth/login", json=bad, headers=attacker)).status == 401
    good = {"email": account.email, "password": PASSWORD}
    throttled = await client.post("/api/auth/login", json=good, headers=attacker)
    assert throttled.status == 429
    assert int(throttled.headers["Retry-After"]) > 0
    assert throttled.content_type == PROBLEM
    # the owner, from an address that has not failed, still gets in: no lockout as a weapon
    owner = await client.post("/api/auth/login", json=good, headers={"X-Real-IP": "203.0.113.9"})
    assert owner.status == 200
    other = await register(client)
    assert (await login(client, other.email)).id == other.id


async def test_failures_from_many_addresses_back_off_the_account(make_client):
    client = await make_client(login_account_failure_limit="12/hour")
    account = await register(client)
    bad = {"email": account.email, "password": "wrong password"}
    for address in range(12):  # a distributed guesser: few tries per address
        headers = {"X-Real-IP": f"198.51.100.{address}"}
        assert (await client.post("/api/auth/login", json=bad, headers=headers)).status == 401
    good = {"email": account.email, "password": PASSWORD}
    fresh = await client.post("/api/auth/login", json=good, headers={"X-Real-IP": "203.0.113.1"})
    assert fresh.status == 429
    assert fresh.content_type == PROBLEM and int(fresh.headers["Retry-After"]) > 0
    other = await register(client)  # other accounts are not affected
    assert (await login(client, other.email)).id == other.id


async def test_success_resets_failure_count(client):
    account = await register(client)
    bad = {"email": account.email, "password": "wrong password"}
    for _ in range(4):
        assert (await client.post("/api/auth/login", json=bad)).status == 401
    await login(client, account.email)
    for _ in range(4):
        assert (await client.post("/api/auth/login", json=bad)).status == 401
    await login(client, account.email)


async def test_refresh_rotates_and_spent_token_revokes_family(client):
    account = await register(client)
    first = await client.post("/api/auth/refresh", json={"refresh_token": account.refresh_token})
    assert first.status == 200
    rotated = await first.json()
    assert rotated["refresh_token"] != account.refresh_token
    new_auth = {"Authorization": f"Bearer {rotated['access_token']}"}
    assert (await client.get("/api/users/me", headers=new_auth)).status == 200

    replay = await client.post("/api/auth/refresh", json={"refresh_token": account.refresh_token})
    assert replay.status == 401
    # the whole family is gone: the newest access and refresh tokens too
    assert (await client.get("/api/users/me", headers=new_auth)).status == 401
    assert (await client.get("/api/users/me", headers=account.auth)).status == 401
    again = await client.post("/api/auth/refresh", json={"refresh_token": rotated["refresh_token"]})
    assert again.status == 401


async def test_refresh_family_does_not_touch_other_logins(client):
    account = await register(client)
    other_login = await login(client, account.email)
    await client.post("/api/auth/refresh", json={"refresh_token": account.refresh_token})
    await client.post("/api/auth/refresh", json={"refresh_token": account.refresh_token})
    assert (await client.get("/api/users/me", headers=other_login.auth)).status == 200


async def test_refresh_rejects_access_token(client):
    account = await register(client)
    response = await client.post("/api/auth/refresh", json={"refresh_token": account.access_token})
    assert response.status == 401


async def test_logout_revokes_access_and_refresh_on_every_instance(make_client):
    first, second = await make_client(), await make_client()
    account = await register(first)
    assert (await second.get("/api/users/me", headers=account.auth)).status == 200
    response = await first.post(
        "/api/auth/logout", json={"refresh_token": account.refresh_token}, headers=account.auth
    )
    assert response.status == 204
    for instance in (first, second):
        assert (await instance.get("/api/users/me", headers=account.auth)).status == 401
    refreshed = await second.post(
        "/api/auth/refresh", json={"refresh_token": account.refresh_token}
    )
    assert refreshed.status == 401


async def test_logout_without_body_and_without_token(client):
    account = await register(client)
    assert (await client.post("/api/auth/logout", headers=account.auth)).status == 204
    assert (await client.post("/api/auth/logout")).status == 401


async def test_passwords_stored_as_argon2id(client, db):
    account = await register(client)
    stored = await db.fetchval("SELECT password_hash FROM users WHERE id = $1::uuid", account.id)
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert PASSWORD not in stored
