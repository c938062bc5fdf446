"""`make admin`: create or promote, idempotently."""

from __future__ import annotations

import asyncpg

from services.core.admin import ensure_admin
from services.core.auth.service import Passwords
from tests.factories import login, register, unique_email


async def test_ensure_admin_creates_and_is_idempotent(client, settings, database_url):
    pool = await asyncpg.create_pool(
        database_url, min_size=1, max_size=2, server_settings={"search_path": "core"}
    )
    passwords = Passwords(settings)
    email = unique_email()
    try:
        first = await ensure_admin(
            pool=pool, passwords=passwords, email=email, password="admin password", name="Boss"
        )
        again = await ensure_admin(
            pool=pool,
            passwords=passwords,
            email=email.upper(),
            password="admin password",
            name="Boss",
        )
        assert first["id"] == again["id"] and again["role"] == "admin"
        assert await pool.fetchval("SELECT count(*) FROM users WHERE lower(email) = $1", email) == 1
        account = await login(client, email, "admin password")
        assert (await client.get("/api/users", headers=account.auth)).status == 200

        customer = await register(client)
        promoted = await ensure_admin(
            pool=pool, passwords=passwords, email=customer.email, password="new password!", name="x"
        )
        assert str(promoted["id"]) == customer.id and promoted["role"] == "admin"
        assert (
            await client.get(
                "/api/users", headers=(await login(client, customer.email, "new password!")).auth
            )
        ).status == 200
    finally:
        await pool.close()


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
