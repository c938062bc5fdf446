"""Paid checkouts through a stack's NGINX, as a customer makes them: the data the restore test
writes and the trickle the failover drill keeps up, each answered checkout recorded."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import aiohttp

from devstack.settings import StackSettings
from scripts.bench import new_customer, seed_products


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

    async def checkout(self, http: aiohttp.ClientSession, number: int) -> str:
        """Order one product and pay for it, waiting for the capture; the order's id."""
        body = {
            "items": [{"product_id": self.products[number % len(self.products)], "quantity": 1}]
        }
        async with http.post(f"{self.base}/api/orders", json=body, headers=self.auth) as response:
            if response.status != 201:
                raise CheckoutFailed(f"order: {response.status} {await response.text()}")
            order = await response.json()
        headers = {**self.auth, "Idempotency-Key": uuid.uuid4().hex, "Prefer": "wait=10"}
        async with http.post(
            f"{self.base}/api/orders/{order['id']}/payments",
            json={"payment_method": "tok_visa"},
            headers=headers,
        ) as response:
            payment = await response.json(content_type=None)
        if payment.get("status") != "succeeded":
            raise CheckoutFailed(f"payment: {response.status} {payment}")
        return str(order["id"])
