"""`make admin`: create, or promote only when asked; a changed role or password revokes tokens."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import asyncpg
import pytest
from redis.asyncio import Redis

from chassis.http import Revocations
from services.core.admin import RefusedPromotion, ensure_admin
from services.core.auth.service import Passwords
from tests.conftest import REDIS_URL
from tests.factories import PASSWORD, login, register, unique_email, verify_email


@pytest.fixture
async def admin_tool(settings, database_url) -> AsyncIterator[dict]:
    """What `make admin` works with: the database, the password hasher and the revocations."""
    pool = await asyncpg.create_pool(
        database_url, min_size=1, max_size=2, server_settings={"search_path": "core"}
    )
    redis = Redis.from_url(REDIS_URL)
    yield {
        "pool": pool,
        "passwords": Passwords(settings),
        "revocations": Revocations(
            redis, prefix=settings.redis_key_prefix, refresh_token_ttl=settings.refresh_token_ttl
        ),
    }
    await pool.close()
    await redis.aclose()


async def test_ensure_admin_creates_and_is_idempotent(client, admin_tool):
    email = unique_email()
    first = await ensure_admin(**admin_tool, email=email, password="admin password", name="Boss")
    account = await login(client, email, "admin password")
    again = await ensure_admin(
        **admin_tool, email=email.upper(), password="admin password", name="Boss"
    )
    assert first["id"] == again["id"] and again["role"] == "admin"
    pool = admin_tool["pool"]
    assert await pool.fetchval("SELECT count(*) FROM users WHERE lower(email) = $1", email) == 1
    # nothing changed, so the admin's tokens still work
    assert (await client.get("/api/users", headers=account.auth)).status == 200


async def test_a_squatted_address_is_not_promoted_without_being_asked(client, admin_tool):
    squatter = await register(client)  # registered the operator's address first
    with pytest.raises(RefusedPromotion):
        await ensure_admin(
            **admin_tool, email=squatter.email, password="operator password", name="Ops"
        )
    pool = admin_tool["pool"]
    assert await pool.fetchval("SELECT role FROM users WHERE id = $1::uuid", squatter.id) == (
        "customer"
    )
    # the squatter's tokens still work, and still carry no admin role
    assert (await client.get("/api/users", headers=squatter.auth)).status == 403
    assert (await client.get("/api/users/me", headers=squatter.auth)).status == 200


async def test_promoting_revokes_every_token_the_account_held(client, admin_tool):
    holder = await register(client)
    other_login = await login(client, holder.email)
    # The registrant's password is not the operator's: promoting alone is refused, changes
    # nothing, and says how to set it.
    with pytest.raises(RefusedPromotion, match="RESET_PASSWORD=1"):
        await ensure_admin(
            **admin_tool, email=holder.email, password="operator password", name="Ops", promote=True
        )
    assert (await client.get("/api/users/me", headers=holder.auth)).status == 200
    promoted = await ensure_admin(
        **admin_tool,
        email=holder.email,
        password="operator password",
        name="Ops",
        promote=True,
        reset_password=True,
    )
    assert promoted["role"] == "admin"
    # at once, not at the next login: access tokens and refresh tokens of every login
    for account in (holder, other_login):
        assert (await client.get("/api/users/me", headers=account.auth)).status == 401
        refreshed = await client.post(
            "/api/auth/refresh", json={"refresh_token": account.refresh_token}
        )
        assert refreshed.status == 401
    admin = await login(client, holder.email, "operator password")
    assert (await client.get("/api/users", headers=admin.auth)).status == 200


async def test_a_new_admin_password_revokes_the_old_tokens(client, admin_tool):
    email = unique_email()
    await ensure_admin(**admin_tool, email=email, password="first password", name="Boss")
    before = await login(client, email, "first password")
    # Never without being asked: the password stays, the tokens keep working.
    with pytest.raises(RefusedPromotion, match="RESET_PASSWORD=1"):
        await ensure_admin(**admin_tool, email=email, password="second password", name="Boss")
    assert (await client.get("/api/users", headers=before.auth)).status == 200
    await login(client, email, "first password")
    await ensure_admin(
        **admin_tool, email=email, password="second password", name="Boss", reset_password=True
    )
    assert (await client.get("/api/users", headers=before.auth)).status == 401
    refreshed = await client.post("/api/auth/refresh", json={"refresh_token": before.refresh_token})
    assert refreshed.status == 401
    after = await login(client, email, "second password")
    assert (await client.get("/api/users", headers=after.auth)).status == 200


async def test_refresh_checks_the_database_even_when_redis_forgot_the_cut_off(
    client, admin_tool, settings
):
    holder = await register(client)
    await ensure_admin(
        **admin_tool,
        email=holder.email,
        password="operator password",
        name="Ops",
        promote=True,
        reset_password=True,
    )
    redis = Redis.from_url(REDIS_URL)
    try:
        await redis.delete(f"{settings.redis_key_prefix}auth:version:{holder.id}")
    finally:
        await redis.aclose()
    refreshed = await client.post("/api/auth/refresh", json={"refresh_token": holder.refresh_token})
    assert refreshed.status == 401


async def test_users_listing_admin_only_and_paginated(client, db):
    from tests.factories import admin

    boss = await admin(client, db)
    customer = await register(client)
    assert (await client.get("/api/users", headers=customer.auth)).status == 403
    assert (await client.get("/api/users")).status == 401
    seen, cursor = [], None
    while True:
        params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        page = await (await client.get("/api/users", params=params, headers=boss.auth)).json()
        seen += [user["id"] for user in page["items"]]
        assert all("password_hash" not in user for user in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == await db.fetchval("SELECT count(*) FROM users")
    assert customer.id in seen
    assert (
        await client.get("/api/users", params={"limit": "500"}, headers=boss.auth)
    ).status == 422


async def test_only_a_verified_address_is_promoted_and_the_promotion_is_audited(
    client, admin_tool, db
):
    holder = await register(client, verified=False)
    with pytest.raises(RefusedPromotion, match="verified"):
        await ensure_admin(
            **admin_tool, email=holder.email, password=PASSWORD, name="Ops", promote=True
        )
    assert await db.fetchval("SELECT role FROM users WHERE id = $1::uuid", holder.id) == "customer"
    await verify_email(client, holder.email)
    await ensure_admin(
        **admin_tool, email=holder.email, password=PASSWORD, name="Ops", promote=True
    )
    entries = await db.fetch(
        "SELECT action, details, address FROM audit_log WHERE subject = $1 ORDER BY created_at",
        holder.email,
    )
    changes = [row for row in entries if row["action"] == "account.role_changed"]
    assert len(changes) == 1
    assert json.loads(changes[0]["details"]) == {
        "from": "customer",
        "to": "admin",
        "sessions_revoked": 1,
    }
    assert changes[0]["address"] == "make admin"
