"""The shop's journeys, as Locust users weighted like a shop: anonymous browsers, buyers, AI
users, and listeners that wait for their payment's push on the WebSocket.

Every request says it is synthetic (W3C `baggage: synthetic=true` and `X-Relais-Synthetic: 1`)
so that what reads the stack's traffic can tell the load from real customers. This module
imports nothing of Relais: it speaks HTTP and WebSocket only.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import requests
import websocket
from locust import between, events, task
from locust.contrib.fasthttp import FastHttpUser
from locust.exception import StopUser
from locust.runners import WorkerRunner

log = logging.getLogger("loadtests.journeys")
SYNTHETIC = {"baggage": "synthetic=true", "X-Relais-Synthetic": "1"}
PASSWORD = "load test password"  # noqa: S105 - the load's own throwaway accounts
SEARCHES = [
    "warm boots for winter",
    "something to make coffee",
    "a gift for a cyclist",
    "waterproof jacket",
    "kitchen tools",
]
# The load's own catalog (made by `make_catalog` through the API), read once per worker.
CATEGORY = "loadtest"
PRODUCTS = 20
STOCK = 1_000_000
CATALOG: list[str] = []


def headers(token: str | None = None) -> dict[str, str]:
    """The synthetic marks, and the bearer token if any."""
    found = dict(SYNTHETIC)
    if token:
        found["Authorization"] = f"Bearer {token}"
    return found


class ShopUser(FastHttpUser):
    """What every journey shares: the catalog, and an account when it needs one."""

    abstract = True
    wait_time = between(0.5, 2.0)
    token: str | None = None
    user_id: str | None = None

    def products(self) -> list[str]:
        """The load's catalog's product ids (read once per worker)."""
        if not CATALOG:
            with self.client.get(
                f"/api/products?limit=100&category={CATEGORY}",
                headers=headers(),
                name="setup: catalog",
                catch_response=True,
            ) as response:
                CATALOG.extend(item["id"] for item in response.json()["items"])
                if not CATALOG:
                    response.failure("the load's catalog is empty")
                    raise StopUser  # the master's setup failed: it stops the run
        return CATALOG

    def register(self, *, verified: bool = False) -> None:
        """A fresh customer account, logged in; its address vouched for by the load's admin if
        it will pay (an unverified account cannot)."""
        email = f"load-{uuid.uuid4().hex[:12]}@example.com"
        body = {"email": email, "password": PASSWORD, "name": "Load Test"}
        with self.client.post(
            "/api/auth/register",
            json=body,
            headers=headers(),
            name="account: register",
            catch_response=True,
        ) as response:
            if response.status_code != 201:
                response.failure(f"register: {response.status_code}")
                return
            account = response.json()
        self.token, self.user_id = account["access_token"], account["user"]["id"]
        if verified:
            with self.client.post(
                f"/api/users/{self.user_id}/email-verification",
                headers=headers(ADMIN.token(self.host)),
                name="setup: verify e-mail",
                catch_response=True,
            ) as response:
                if response.status_code != 200:
                    response.failure(f"verify: {response.status_code}")
                    self.token = None

    def order_and_pay(self, journey: str) -> dict[str, Any] | None:
        """Order one product and pay with `Prefer: wait`: the payment, or None."""
        product = random.choice(self.products())  # noqa: S311 - a load test's draw
        with self.client.post(
            "/api/orders",
            json={"items": [{"product_id": product, "quantity": 1}]},
            headers=headers(self.token),
            name=f"{journey}: order",
            catch_response=True,
        ) as response:
            if response.status_code != 201:
                # out of stock is the shop's answer, not the stack's failure
                if response.status_code == 409:
                    response.success()
                else:
                    response.failure(f"order: {response.status_code}")
                return None
            order = response.json()
        with self.client.post(
            f"/api/orders/{order['id']}/payments",
            json={"payment_method": "tok_visa"},
            headers={
                **headers(self.token),
                "Idempotency-Key": str(uuid.uuid4()),
                "Prefer": "wait=10",
            },
            name=f"{journey}: pay",
            catch_response=True,
        ) as response:
            if response.status_code not in (200, 201, 202):
                response.failure(f"pay: {response.status_code}")
                return None
            payment: dict[str, Any] = response.json()
        payment["order_id"] = order["id"]
        return payment


class Browser(ShopUser):
    """Anonymous: lists, searches by name, views products (mostly cached)."""

    weight = 6

    @task(4)
    def view(self) -> None:
        product = random.choice(self.products())  # noqa: S311
        self.client.get(f"/api/products/{product}", headers=headers(), name="browse: product")

    @task(2)
    def list_page(self) -> None:
        self.client.get("/api/products?limit=20", headers=headers(), name="browse: list")

    @task(1)
    def by_category(self) -> None:
        self.client.get(
            f"/api/products?limit=20&category={CATEGORY}",
            headers=headers(),
            name="browse: category",
        )


class Buyer(ShopUser):
    """Registers once, then orders, pays and checks the order."""

    weight = 2

    def on_start(self) -> None:
        self.register(verified=True)

    @task
    def checkout(self) -> None:
        if self.token is None:
            return
        payment = self.order_and_pay("checkout")
        if payment is not None:
            self.client.get(
                f"/api/orders/{payment['order_id']}",
                headers=headers(self.token),
                name="checkout: order status",
            )


class AiUser(ShopUser):
    """Searches by meaning, analyses a review, takes a turn with the assistant."""

    weight = 1

    def on_start(self) -> None:
        self.register()

    @task(3)
    def search(self) -> None:
        query = random.choice(SEARCHES)  # noqa: S311
        self.client.get(
            "/api/ai/search",
            params={"q": query, "limit": "5"},
            headers=headers(self.token),
            name="ai: search",
        )

    @task(2)
    def analyse(self) -> None:
        review = "I really love this teapot: it pours well and keeps the tea warm for an hour."
        self.client.post(
            "/api/ai/text/analyze",
            json={"text": review},
            headers=headers(self.token),
            name="ai: text",
        )

    @task(1)
    def chat(self) -> None:
        self.client.post(
            "/api/ai/chat",
            json={"message": random.choice(SEARCHES)},  # noqa: S311
            headers=headers(self.token),
            name="ai: chat",
        )


class Listener(ShopUser):
    """Holds a WebSocket, pays, and reports how long its payment's push took to arrive."""

    weight = 1
    socket: websocket.WebSocket | None = None

    def on_start(self) -> None:
        self.register(verified=True)
        if self.token is None:
            return
        url = self.host.replace("http", "ws", 1) + "/ws"
        started = time.perf_counter()
        try:
            self.socket = websocket.create_connection(
                url,
                header=[f"{name}: {value}" for name, value in headers(self.token).items()],
                timeout=10,
            )
        except Exception as exc:  # reported as the journey's failure
            self._report("push: connect", (time.perf_counter() - started) * 1000, exc)
            return
        self._report("push: connect", (time.perf_counter() - started) * 1000, None)

    def on_stop(self) -> None:
        if self.socket is not None:
            self.socket.close()

    @task
    def pay_and_wait(self) -> None:
        if self.socket is None:
            return
        payment = self.order_and_pay("push")
        if payment is None:
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                frame = self.socket.recv()
                message = json.loads(frame)
            except Exception as exc:
                self._report("push: payment.succeeded", 0.0, exc)
                return
            data = message.get("data", {})
            if (
                message.get("type") == "payment.succeeded"
                and data.get("payment_id") == payment["id"]
            ):
                occurred = datetime.fromisoformat(message["occurred_at"]).timestamp()
                latency_ms = max(0.0, (time.time() - occurred) * 1000)
                self._report("push: payment.succeeded", latency_ms, None, len(frame))
                return
        self._report("push: payment.succeeded", 10_000.0, TimeoutError("no push"))

    def _report(
        self, name: str, milliseconds: float, exc: Exception | None, length: int = 0
    ) -> None:
        """Tell Locust of a WebSocket step: how long it took, and how it failed if it did."""
        self.environment.events.request.fire(
            request_type="WS",
            name=name,
            response_time=milliseconds,
            response_length=length,
            exception=exc,
            context={},
        )


@events.test_start.add_listener
def make_catalog(environment: Any, **_: Any) -> None:
    """Make the load's catalog through the API, once (by the master): `PRODUCTS` products with
    stock enough for any run, as the admin `LOADTEST_ADMIN_EMAIL` / `LOADTEST_ADMIN_PASSWORD`."""
    if isinstance(environment.runner, WorkerRunner):
        return
    try:
        _make_catalog(environment.host)
    except (requests.RequestException, KeyError, OSError) as exc:
        log.error(
            "the load's catalog could not be made through the API (%r): is "
            "LOADTEST_ADMIN_EMAIL (default admin@example.com) an admin whose password is "
            "LOADTEST_ADMIN_PASSWORD (or in the file LOADTEST_ADMIN_PASSWORD_FILE)? `make seed` "
            "makes one",
            exc,
        )
        environment.process_exit_code = 2
        environment.runner.quit()


def admin_password() -> str:
    """The admin's password: LOADTEST_ADMIN_PASSWORD, else the file LOADTEST_ADMIN_PASSWORD_FILE
    names (a compose secret)."""
    path = os.environ.get("LOADTEST_ADMIN_PASSWORD_FILE")
    if path and not os.environ.get("LOADTEST_ADMIN_PASSWORD"):
        return Path(path).read_text().strip()
    return os.environ["LOADTEST_ADMIN_PASSWORD"]


class AdminLogin:
    """The load's admin's access token, for setup calls: one login per process, renewed a
    minute before it expires."""

    def __init__(self) -> None:
        self._token: str | None = None
        self._expires = 0.0

    def token(self, base: str) -> str:
        """A live access token of the admin."""
        if self._token is None or time.monotonic() > self._expires:
            login = requests.post(
                f"{base}/api/auth/login",
                json={
                    "email": os.environ.get("LOADTEST_ADMIN_EMAIL", "admin@example.com"),
                    "password": admin_password(),
                },
                headers=SYNTHETIC,
                timeout=30,
            )
            login.raise_for_status()
            body = login.json()
            self._token = str(body["access_token"])
            self._expires = time.monotonic() + body["expires_in"] - 60
        return self._token


ADMIN = AdminLogin()


def _make_catalog(base: str) -> None:
    listed = requests.get(
        f"{base}/api/products", params={"category": CATEGORY, "limit": 100}, timeout=10
    ).json()["items"]
    if len(listed) >= PRODUCTS:
        return
    admin = headers(ADMIN.token(base))
    for index in range(len(listed), PRODUCTS):
        product = {
            "sku": f"LOAD-{uuid.uuid4().hex[:10]}",
            "name": f"Load test item {index}",
            "description": random.choice(SEARCHES),  # noqa: S311
            "price_cents": 500 + 100 * index,
            "currency": "EUR",
            "stock": STOCK,
            "category": CATEGORY,
        }
        made = requests.post(f"{base}/api/products", json=product, headers=admin, timeout=30)
        made.raise_for_status()
