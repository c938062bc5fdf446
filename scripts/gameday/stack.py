"""The game day's stack: `devstack up` on free ports and names of its own, PostgreSQL, Redis and
RabbitMQ behind fault proxies, customers trickling requests through NGINX, and the handles a
fault needs (its programs, its broker, its database)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import shutil
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg

from devstack.alerts import notification_store
from devstack.backups import data_checks, described
from devstack.faults import TcpProxy, poll
from devstack.mail import verify_mailbox
from devstack.processes import program_pids, supervisorctl
from devstack.readiness import readiness
from devstack.scratch import remove_scratch, scratch_stack
from devstack.settings import ROOT, StackSettings
from scripts.gameday.sockets import Tabs
from scripts.gameday.watch import AlertWatch

# Rule windows and `for:` run sixty times faster: an hour's window lasts a minute.
TIME_SCALE = 60
PASSWORD = "game day password"  # noqa: S105 - a throwaway stack's accounts
CUSTOMERS = 4
# Seconds between two rounds of one customer (a round: a cached read, a database read, the
# product's recommendations, an order and its payment, and for the first two customers, taking
# turns, an analysis).
ROUND = 1.0
# Customers who take turns at analyses: one analysis a round in all, each account at half the
# AI limit (60 a minute); one customer a second stood at the limit and got a 429 now and then.
ANALYSTS = 2


async def until(check: Callable[[], Any], within: float, every: float = 0.5) -> bool:
    """Whether `check()` came true within `within` seconds (polled every `every`)."""
    return bool(await poll(check, within, every))


class Customer:
    """A registered customer's tokens: the access token renewed with the refresh token when it
    expires (fifteen minutes), as a client does; one renewal at a time, since a refresh token
    spent twice revokes the whole family."""

    def __init__(self, base: str, tokens: dict[str, str]) -> None:
        self.base = base
        self.access, self.refresh = tokens["access_token"], tokens["refresh_token"]
        self._lock = asyncio.Lock()

    @property
    def auth(self) -> dict[str, str]:
        """The Authorization header."""
        return {"Authorization": f"Bearer {self.access}"}

    async def renew(self, http: aiohttp.ClientSession, refused: str) -> None:
        """Trade the refresh token for a new pair, unless another caller already replaced the
        access token that was `refused`."""
        async with self._lock:
            if self.access != refused:
                return
            body = {"refresh_token": self.refresh}
            async with http.post(f"{self.base}/api/auth/refresh", json=body) as response:
                if response.status == 200:
                    tokens = await response.json()
                    self.access, self.refresh = tokens["access_token"], tokens["refresh_token"]


@dataclass
class Call:
    """One request of the trickle: when, what, and what came back."""

    at: float
    what: str
    status: int  # 0: no answer (connection error, timeout)
    retry_after: str | None


@dataclass
class Trickle:
    """Customers browsing, ordering and paying through NGINX; every answer kept."""

    base: str
    products: list[str]
    customers: list[Customer]
    calls: list[Call] = field(default_factory=list)
    # payment id -> when the API accepted it, and whose it is (the customer's number)
    payments: dict[str, float] = field(default_factory=dict)
    payers: dict[str, int] = field(default_factory=dict)

    async def run(self, http: aiohttp.ClientSession) -> None:
        """Every customer's rounds, until cancelled."""
        await asyncio.gather(
            *(self._customer(http, i, customer) for i, customer in enumerate(self.customers))
        )

    async def _customer(self, http: aiohttp.ClientSession, number: int, customer: Customer) -> None:
        await asyncio.sleep(number * ROUND / len(self.customers))
        for round_number in itertools.count():
            started = time.monotonic()
            product = random.choice(self.products)  # noqa: S311 - not a secret
            await self.call(http, "browse", "GET", f"/api/products/{product}")
            await self.call(http, "orders", "GET", "/api/orders?limit=5", customer)
            await self.call(
                http,
                "recommend",
                "GET",
                f"/api/products/{product}/recommendations?limit=3",
                customer,
            )
            await self.checkout(http, number, product)
            if number < ANALYSTS and round_number % ANALYSTS == number:
                text = {"text": f"Game day round {len(self.calls)}: the teapot pours well."}
                await self.call(
                    http, "analyze", "POST", "/api/ai/text/analyze", customer, json=text
                )
            await asyncio.sleep(max(0.0, ROUND - (time.monotonic() - started)))

    async def checkout(self, http: aiohttp.ClientSession, number: int, product: str) -> None:
        """Customer `number` orders one `product` and pays for it without waiting."""
        customer = self.customers[number]
        order = await self.call(
            http,
            "order",
            "POST",
            "/api/orders",
            customer,
            json={"items": [{"product_id": product, "quantity": 1}]},
        )
        if order is None:
            return
        payment = await self.call(
            http,
            "pay",
            "POST",
            f"/api/orders/{order['id']}/payments",
            customer,
            {"Idempotency-Key": str(uuid.uuid4()), "Prefer": "wait=0"},
            json={"payment_method": "tok_visa"},
        )
        if payment is not None:
            self.payments[payment["id"]] = time.time()
            self.payers[payment["id"]] = number

    async def call(
        self,
        http: aiohttp.ClientSession,
        what: str,
        method: str,
        path: str,
        customer: Customer | None = None,
        headers: dict[str, str] | None = None,
        json: Any = None,
    ) -> Any:
        """One request (as `customer`, renewing an expired token once); its JSON body when it
        succeeded (2xx), else None."""
        for _ in range(2):
            at = time.time()
            auth = customer.auth if customer else {}
            try:
                async with http.request(
                    method, self.base + path, headers={**auth, **(headers or {})}, json=json
                ) as response:
                    if response.status == 401 and customer is not None:
                        await customer.renew(http, auth["Authorization"].removeprefix("Bearer "))
                        continue
                    body = await response.json(content_type=None) if response.ok else None
                    retry_after = response.headers.get("Retry-After")
                    self.calls.append(Call(at, what, response.status, retry_after))
                    return body
            except (aiohttp.ClientError, TimeoutError, ValueError):
                self.calls.append(Call(at, what, 0, None))
                return None
        self.calls.append(Call(at, what, 401, None))
        return None

    def between(self, start: float, end: float) -> list[Call]:
        """The calls made from `start` to `end`."""
        return [call for call in self.calls if start <= call.at <= end]


class GameDayStack:
    """The running stack, its proxies, its trickle and its alert watch."""

    def __init__(
        self, config: StackSettings, env: dict[str, str], proxies: dict[str, TcpProxy]
    ) -> None:
        self.config, self.env, self.proxies = config, env, proxies
        self.base = f"http://127.0.0.1:{config.nginx_port}"
        self.prometheus = f"http://127.0.0.1:{config.prometheus_port}"
        self.alertmanager = f"http://127.0.0.1:{config.alertmanager_port}"
        self.watch = AlertWatch(self.prometheus, self.alertmanager, notification_store(config))
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15))
        self.trickle: Trickle | None = None
        self.tabs: Tabs | None = None
        # load a fault adds for as long as it lasts
        self.trickle_extra: asyncio.Task[None] | None = None
        self.admin: dict[str, str] = {}

    # --- programs ---------------------------------------------------------------------------

    async def ctl(self, *args: str) -> str:
        """supervisorctl on the stack's supervisord."""
        result = await asyncio.to_thread(supervisorctl, self.config, *args)
        return result.stdout

    async def pid(self, program: str) -> int:
        """The running program's own process id."""
        pids = await asyncio.to_thread(program_pids, self.config)
        return pids[program]

    async def kill(self, program: str) -> None:
        """SIGKILL the program, then keep it down (supervisord would start it again)."""
        os.kill(await self.pid(program), signal.SIGKILL)
        await self.ctl("stop", program)

    async def start(self, program: str) -> None:
        """Start a stopped program and wait until it answers ready."""
        await self.ctl("start", program)
        await self.ready()

    async def ready(self, within: float = 60.0) -> None:
        """Wait until every process answers ready and NGINX serves the API (`make status`'s
        checks)."""
        checks: dict[str, int | None] = {}

        async def answered() -> bool:
            checks.update(await asyncio.to_thread(readiness, self.config))
            return all(status == 200 for status in checks.values())

        if not await until(answered, within):
            not_ready = [url for url, status in checks.items() if status != 200]
            raise TimeoutError(f"not ready after {within:.0f} s: {not_ready}")

    async def status_of(self, url: str, **kwargs: Any) -> int:
        """The status of a GET (0: no answer)."""
        try:
            async with self.http.get(url, **kwargs) as response:
                return response.status
        except (aiohttp.ClientError, TimeoutError):
            return 0

    async def wait_for(self, alert: str, labels: dict[str, str], within: float) -> None:
        """Wait until Prometheus fires `alert` (with at least `labels`)."""
        if not await until(lambda: self.watch.firing(alert, labels), within):
            raise TimeoutError(f"{alert}{labels} did not fire within {within:.0f} s")

    # --- data ---------------------------------------------------------------------------------

    async def database(self) -> asyncpg.Connection:
        """The administrator's connection to the stack's database, around the proxies."""
        return await asyncpg.connect(self.config.admin_database_url)

    async def unsettled(self, payment_ids: list[str]) -> list[str]:
        """The payments (of those named) that are neither succeeded nor failed."""
        conn = await self.database()
        try:
            rows = await conn.fetch(
                "SELECT id::text FROM core.payments WHERE id = ANY($1::uuid[])"
                " AND status IN ('succeeded', 'failed')",
                payment_ids,
            )
        finally:
            await conn.close()
        return sorted(set(payment_ids) - {row["id"] for row in rows})

    async def invariants(self) -> list[str]:
        """What is wrong with the books (the stack's invariants, `restore-checks.sql`): orders
        paid twice, an unbalanced ledger transaction, a payment core and the worker disagree
        on, a paid order without its capture."""
        return described(await data_checks(self.config.admin_database_url))

    async def settle_all(self, since: float = 0.0, within: float = 120.0) -> list[str]:
        """Wait until every payment the API accepted (since `since`) has settled; those that
        did not."""
        trickle = self.trickle
        assert trickle is not None
        waiting: list[str] = []

        async def settled() -> bool:
            nonlocal waiting
            accepted = [p for p, at in trickle.payments.items() if at >= since]
            waiting = await self.unsettled(accepted)
            return not waiting

        await until(settled, within, every=1.0)
        return waiting

    # --- customers ------------------------------------------------------------------------------

    async def prepare_customers(self) -> Trickle:
        """An admin, products with stock for the whole game day, and the customers."""
        email = f"gameday-admin-{uuid.uuid4().hex[:6]}@example.com"
        made = await self.devstack("admin", "--email", email, extra={"ADMIN_PASSWORD": PASSWORD})
        if made.returncode != 0:
            raise RuntimeError(f"make admin failed: {made.stderr}")
        self.admin = await self.login(email)
        products = []
        for name in ("Teapot", "Kettle", "Cup"):
            body = {
                "sku": f"GD-{uuid.uuid4().hex[:8]}",
                "name": name,
                "description": f"A {name.lower()} for the game day",
                "price_cents": 1500,
                "currency": "EUR",
                "stock": 1_000_000,
                "category": "kitchen",
            }
            async with self.http.post(
                f"{self.base}/api/products", headers=self.admin, json=body
            ) as response:
                assert response.status == 201, await response.text()
                products.append((await response.json())["id"])
        customers = []
        for _ in range(CUSTOMERS):
            email = f"gameday-{uuid.uuid4().hex[:8]}@example.com"
            body = {"email": email, "password": PASSWORD, "name": "Game Day"}
            async with self.http.post(f"{self.base}/api/auth/register", json=body) as response:
                assert response.status == 201, await response.text()
                customers.append(Customer(self.base, await response.json()))
            await verify_mailbox(self.http, self.base, self.config.admin_database_url, email)
        self.trickle = Trickle(self.base, products, customers)
        self.tabs = Tabs(self.base, customers)
        return self.trickle

    async def login(self, email: str) -> dict[str, str]:
        """Log in: the auth header."""
        body = {"email": email, "password": PASSWORD}
        async with self.http.post(f"{self.base}/api/auth/login", json=body) as response:
            assert response.status == 200, await response.text()
            return {"Authorization": f"Bearer {(await response.json())['access_token']}"}

    async def devstack(self, *args: str, extra: dict[str, str] | None = None) -> Completed:
        """`python -m devstack ARGS` with the stack's settings."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "devstack",
            *args,
            cwd=ROOT,
            env={**self.env, **(extra or {})},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate()
        return Completed(process.returncode or 0, out.decode(), err.decode())

    async def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant PromQL query's result."""
        async with self.http.get(
            f"{self.prometheus}/api/v1/query", params={"query": expr}
        ) as response:
            result: list[dict[str, Any]] = (await response.json())["data"]["result"]
            return result


@dataclass
class Completed:
    """What a finished command returned and printed."""

    returncode: int
    stdout: str
    stderr: str


@contextlib.asynccontextmanager
async def game_day_stack(keep: bool = False) -> AsyncIterator[GameDayStack]:
    """The stack up, its customers ready and trickling, its alerts watched; all removed after."""
    run = uuid.uuid4().hex[:8]
    proxies = {
        "postgres": TcpProxy("127.0.0.1", 5432),
        "redis": TcpProxy("127.0.0.1", 6379),
        "rabbitmq": TcpProxy("127.0.0.1", 5672),
    }
    for proxy in proxies.values():
        await proxy.start()
    state = ROOT / "var" / "gameday" / run
    env, config = scratch_stack(
        f"relais_gd_{run}",
        state,
        {
            "DATABASE_HOST": f"127.0.0.1:{proxies['postgres'].port}",
            "REDIS_URL": f"redis://127.0.0.1:{proxies['redis'].port}/0",
            "RABBITMQ_HOST": f"127.0.0.1:{proxies['rabbitmq'].port}",
            "ALERT_TIME_SCALE": str(TIME_SCALE),
            "PROMETHEUS_SCRAPE_INTERVAL": "1s",
            # every customer comes from 127.0.0.1: the per-address limits would answer 429s
            "LOADTEST_LIMITS": "1",
            # requests past their deadline, on the faster clock: an analysis waits 2 s, not 10
            "AI_DEADLINE": "2",
            # a trace collector is not part of a game day
            "OTEL_SDK_DISABLED": "true",
        },
    )
    stack = GameDayStack(config, env, proxies)
    try:
        up = await stack.devstack("up")
        if up.returncode != 0:
            raise RuntimeError(f"devstack up failed:\n{up.stdout}\n{up.stderr}")
        await stack.ready()
        trickle = await stack.prepare_customers()
        assert stack.tabs is not None
        async with stack.watch:
            stack.tabs.start(stack.http)
            task = asyncio.create_task(trickle.run(stack.http))
            try:
                yield stack
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                await stack.tabs.stop()
    finally:
        await stack.http.close()
        await stack.devstack("down")
        for proxy in proxies.values():
            with contextlib.suppress(Exception):
                await proxy.cut()
        await asyncio.to_thread(remove_scratch, config)
        if not keep:
            shutil.rmtree(state, ignore_errors=True)
