"""Test data, made through the API the way a client would make it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from chassis.data import DB_POOL
from devstack import mail

PASSWORD = "correct horse battery"


@dataclass
class Account:
    """A registered user and its current tokens."""

    id: str
    email: str
    access_token: str
    refresh_token: str

    @property
    def auth(self) -> dict[str, str]:
        """The Authorization header of this account."""
        return {"Authorization": f"Bearer {self.access_token}"}


def unique_email() -> str:
    """An email no other test uses."""
    return f"user-{uuid.uuid4().hex[:12]}@example.com"


def _database(client: Any, db: Any) -> Any:
    """`db`, else the in-process app's pool (a stack's client has none: pass its database)."""
    return db if db is not None else client.server.app[DB_POOL]


async def mailed_token(db: Any, email: str, subject: str) -> str:
    """The token of the newest message of `subject` the development outbox holds for `email`."""
    token = await mail.mailed_token(db, email, subject)
    assert token is not None, f"no {subject!r} message with a token to {email}"
    return token


async def verify_email(client: Any, email: str, db: Any = None) -> None:
    """Open the verification link mailed to `email` (the development outbox's)."""
    token = await mailed_token(_database(client, db), email, mail.VERIFICATION_SUBJECT)
    response = await client.post("/api/auth/verify-email", json={"token": token})
    assert response.status == 200, await response.text()


async def register(
    client: TestClient[Any, Any],
    *,
    email: str | None = None,
    password: str = PASSWORD,
    verified: bool = True,
    db: Any = None,
) -> Account:
    """Register a customer, its address verified through its mailed link unless `verified` is
    False (`db`: the stack's database, for a client of a stack rather than of an app)."""
    email = email or unique_email()
    response = await client.post(
        "/api/auth/register", json={"email": email, "password": password, "name": "Test User"}
    )
    assert response.status == 201, await response.text()
    body = await response.json()
    if verified:
        await verify_email(client, email, db)
    return Account(body["user"]["id"], email, body["access_token"], body["refresh_token"])


async def login(client: TestClient[Any, Any], email: str, password: str = PASSWORD) -> Account:
    """Log in an existing account."""
    response = await client.post("/api/auth/login", json={"email": email, "password": password})
    assert response.status == 200, await response.text()
    body = await response.json()
    return Account(body["user"]["id"], email, body["access_token"], body["refresh_token"])


async def admin(client: TestClient[Any, Any], db: asyncpg.Connection) -> Account:
    """Register an account, promote it in the database, and log in again for an admin token."""
    account = await register(client, db=db)
    await db.execute("UPDATE users SET role = 'admin' WHERE id = $1::uuid", account.id)
    return await login(client, account.email)


def product_fields(**overrides: Any) -> dict[str, Any]:
    """A valid product body with a unique sku."""
    fields: dict[str, Any] = {
        "sku": f"SKU-{uuid.uuid4().hex[:12]}",
        "name": "Espresso cup",
        "description": "Porcelain, 90 ml",
        "price_cents": 1250,
        "currency": "EUR",
        "stock": 10,
        "category": "kitchen",
    }
    fields.update(overrides)
    return fields


async def create_product(
    client: TestClient[Any, Any], admin_account: Account, **overrides: Any
) -> dict[str, Any]:
    """Create a product as an admin."""
    response = await client.post(
        "/api/products", json=product_fields(**overrides), headers=admin_account.auth
    )
    assert response.status == 201, await response.text()
    product: dict[str, Any] = await response.json()
    return product


async def place_order(
    client: TestClient[Any, Any], customer: Account, product: dict[str, Any], quantity: int = 1
) -> dict[str, Any]:
    """Order `quantity` of a product."""
    response = await client.post(
        "/api/orders",
        json={"items": [{"product_id": product["id"], "quantity": quantity}]},
        headers=customer.auth,
    )
    assert response.status == 201, await response.text()
    order: dict[str, Any] = await response.json()
    return order


async def pay(
    client: TestClient[Any, Any],
    customer: Account,
    order_id: str,
    payment_method: str = "tok_visa",
    *,
    key: str | None = None,
    wait: int | None = 10,
) -> tuple[int, dict[str, Any]]:
    """Pay for an order (waiting up to `wait` seconds for the outcome): (status, body)."""
    headers = {**customer.auth, "Idempotency-Key": key or f"pay-{uuid.uuid4()}"}
    if wait is not None:
        headers["Prefer"] = f"wait={wait}"
    response = await client.post(
        f"/api/orders/{order_id}/payments",
        json={"payment_method": payment_method},
        headers=headers,
    )
    body: dict[str, Any] = await response.json()
    return response.status, body
