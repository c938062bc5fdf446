"""Paid checkouts through a stack's NGINX, as a customer makes them: the benchmark's load, the data
the restore test and the backup bench write, the trickle the failover drill keeps up."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import aiohttp
import asyncpg

from devstack.mail import verify_mailbox
from devstack.settings import StackSettings

PASSWORD = "bench password"  # noqa: S105 - a throwaway stack's customers


async def seed_products(config: StackSettings, count: int, sku: str = "BENCH") -> list[str]:
    """Insert products (stock for every checkout) straight into the bench database, their SKUs
    beginning with `sku`; their ids."""
    conn = await asyncpg.connect(config.database_url, server_settings={"search_path": "core"})
    try:
        rows = await conn.fetch(
            """INSERT INTO products (sku, name, description, price_cents, currency, stock, category)
               SELECT $2 || '-' || n, 'Benchmark kettle ' || n, 'A kettle that is read a lot',
                      3999, 'EUR', 1000000000, 'kitchen'
               FROM generate_series(1, $1) AS n RETURNING id""",
            count,
            sku,
        )
    finally:
        await conn.close()
    return [str(row["id"]) for row in rows]


async def new_customer(
    http: aiohttp.ClientSession, base: str, database_url: str | None = None
) -> dict[str, str]:
    """The authorization header of a customer registered for the run (its address verified
    through the outbox of the stack's database at `database_url`, if given: it may pay)."""
    email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
    body = {"email": email, "password": PASSWORD, "name": "Bench"}
    async with http.post(f"{base}/api/auth/register", json=body) as response:
        token = (await response.json())["access_token"]
    if database_url is not None:
        await verify_mailbox(http, base, database_url, email)
    return {"Authorization": f"Bearer {token}"}


class CheckoutFailed(Exception):
    """The API refused or could not complete a checkout (its status and body)."""


@dataclass
class Shop:
    """A verified customer of a stack and products to buy."""

    base: str
    auth: dict[str, str]
    products: list[str]

    @classmethod
    async def open(cls, http: aiohttp.ClientSession, config: StackSettings) -> Shop:
        """A new customer (its address verified) and a few products of the stack's."""
        base = config.public_url
        products = await seed_products(config, 4, f"SHOP-{uuid.uuid4().hex[:8]}")
        return cls(base, await new_customer(http, base, config.database_url), products)

    async def checkout(self, http: aiohttp.ClientSession, number: int, wait: int = 10) -> str:
        """Order product `number` (of the shop's, in turn) and pay for it, waiting up to `wait`
        seconds for the capture; the order's id."""
        body = {
            "items": [{"product_id": self.products[number % len(self.products)], "quantity": 1}]
        }
        async with http.post(f"{self.base}/api/orders", json=body, headers=self.auth) as response:
            if response.status != 201:
                raise CheckoutFailed(f"order: {response.status} {await response.text()}")
            order = await response.json()
        headers = {**self.auth, "Idempotency-Key": uuid.uuid4().hex, "Prefer": f"wait={wait}"}
        async with http.post(
            f"{self.base}/api/orders/{order['id']}/payments",
            json={"payment_method": "tok_visa"},
            headers=headers,
        ) as response:
            payment = await response.json(content_type=None)
        if payment.get("status") != "succeeded":
            raise CheckoutFailed(f"payment: {response.status} {payment}")
        return str(order["id"])
