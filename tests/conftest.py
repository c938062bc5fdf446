"""Fixtures: each test run gets its own PostgreSQL database and Redis key prefix."""

from __future__ import annotations

import asyncio
import gc
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from redis.asyncio import Redis

from chassis.messaging import declare_work_queues
from chassis.migrations import upgrade
from gateway.app import create_app as create_gateway_app
from gateway.handlers import JOURNAL_QUEUE as GATEWAY_JOURNAL_QUEUE
from gateway.settings import GatewaySettings
from services.ai.app import MIGRATIONS as AI_MIGRATIONS
from services.ai.app import create_app as create_ai_app
from services.ai.handlers import EVENT_QUEUE as AI_EVENT_QUEUE
from services.ai.settings import AiSettings
from services.core.app import MIGRATIONS, create_app
from services.core.settings import CoreSettings
from services.payments.app import MIGRATIONS as PAYMENTS_MIGRATIONS
from services.payments.app import create_app as create_payments_app
from services.payments.roles import grant_worker_role
from services.payments.settings import PaymentsSettings
from tests.factories import Account, admin
from tests.fake_llm import FakeLanguageModel
from tests.fake_stripe import SECRET_KEY as STRIPE_SECRET_KEY
from tests.fake_stripe import FakeStripe

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/0"
RUN_ID = uuid.uuid4().hex[:10]
# What this run's providers sign webhooks with.
WEBHOOK_SECRET = f"whsec_{uuid.uuid4().hex}"


def _dsn(database: str) -> str:
    return f"postgresql://postgres@127.0.0.1:5432/{database}"


async def _admin_sql(sql: str) -> None:
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


DATABASE = f"relais_test_{RUN_ID}"
PAYMENTS_ROLE = f"relais_test_{RUN_ID}_payments"


async def _grant_payments_role() -> None:
    conn = await asyncpg.connect(_dsn(DATABASE))
    try:
        await grant_worker_role(conn, PAYMENTS_ROLE)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A fresh database with the core, payments and AI schemas migrated, dropped after the
    run."""
    asyncio.run(_admin_sql(f'CREATE DATABASE "{DATABASE}"'))
    asyncio.run(_admin_sql(f'CREATE ROLE "{PAYMENTS_ROLE}" LOGIN'))
    try:
        upgrade(_dsn(DATABASE), MIGRATIONS, "core")
        upgrade(_dsn(DATABASE), PAYMENTS_MIGRATIONS, "payments")
        upgrade(_dsn(DATABASE), AI_MIGRATIONS, "ai")
        asyncio.run(_grant_payments_role())
        yield _dsn(DATABASE)
    finally:
        asyncio.run(_admin_sql(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)'))
        asyncio.run(_admin_sql(f'DROP ROLE IF EXISTS "{PAYMENTS_ROLE}"'))


@pytest.fixture(scope="session")
def payments_database_url(database_url: str) -> str:
    """This run's database as the payments worker's own role sees it."""
    return f"postgresql://{PAYMENTS_ROLE}@127.0.0.1:5432/{DATABASE}"


def rabbitmqctl(*args: str) -> None:
    """Run a RabbitMQ admin command on the local broker."""
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    """A RabbitMQ vhost of this run's own, deleted afterwards."""
    vhost = f"relais_test_{RUN_ID}"
    rabbitmqctl("add_vhost", vhost)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        url = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
        # as `make up` does: events wait for the AI worker and the gateway from the start
        asyncio.run(declare_work_queues(AiSettings(amqp_url=url), [AI_EVENT_QUEUE]))
        asyncio.run(declare_work_queues(GatewaySettings(amqp_url=url), [GATEWAY_JOURNAL_QUEUE]))
        yield url
    finally:
        rabbitmqctl("delete_vhost", vhost)


@pytest.fixture(scope="session")
def key_pair() -> tuple[str, str]:
    """An Ed25519 key pair (private PEM, public PEM) for this run."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


@pytest.fixture(scope="session")
def redis_prefix() -> Iterator[str]:
    """This run's Redis key prefix; its keys are deleted after the run."""
    prefix = f"relais-test:{RUN_ID}:"
    yield prefix

    async def clean() -> None:
        client = Redis.from_url(REDIS_URL)
        try:
            async for key in client.scan_iter(match=prefix + "*", count=1000):
                await client.delete(key)
        finally:
            await client.aclose()

    asyncio.run(clean())


@pytest.fixture
def settings(
    database_url: str, redis_prefix: str, key_pair: tuple[str, str], amqp_url: str
) -> CoreSettings:
    """Core settings pointing at this run's database, key prefix, vhost and keys."""
    private, public = key_pair
    return CoreSettings(
        relais_env="test",
        database_url=database_url,
        amqp_url=amqp_url,
        amqp_retry_delays=[0.2, 0.5, 1.0],
        redis_url=REDIS_URL,
        redis_key_prefix=redis_prefix,
        jwt_private_key=private,
        jwt_public_key=public,
        metrics_port=0,
        write_rate_limit="100000/minute",
        password_memory_kib=19 * 1024,
    )


ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
async def make_client(aiohttp_client: Any, settings: CoreSettings) -> ClientFactory:
    """Start a core instance (settings overridable) and return a test client for it."""

    async def start(**overrides: Any) -> TestClient[Any, Any]:
        instance_settings = settings.model_copy(update=overrides) if overrides else settings
        client: TestClient[Any, Any] = await aiohttp_client(create_app(instance_settings))
        return client

    return start


@pytest.fixture
async def client(make_client: ClientFactory) -> TestClient[Any, Any]:
    """One core instance."""
    return await make_client()


@pytest.fixture
def payments_settings(
    payments_database_url: str, redis_prefix: str, amqp_url: str
) -> PaymentsSettings:
    """Payments worker settings for this run: its own role, the sandbox provider."""
    return PaymentsSettings(
        relais_env="test",
        database_url=payments_database_url,
        redis_url=REDIS_URL,
        redis_key_prefix=redis_prefix,
        amqp_url=amqp_url,
        amqp_retry_delays=[0.2, 0.5, 1.0],
        metrics_port=0,
        provider_timeout=1.0,
        payments_webhook_secret=WEBHOOK_SECRET,
    )


WorkerFactory = Callable[..., Awaitable[web.Application]]


class PaymentsEndpoint:
    """The HTTP face of the payments services a test started (the first one answers)."""

    def __init__(self) -> None:
        self.clients: list[TestClient[Any, Any]] = []

    async def post(self, path: str, **kwargs: Any) -> Any:
        """POST to the first payments service started."""
        if not self.clients:
            raise RuntimeError("no payments service runs in this test")
        return await self.clients[0].post(path, **kwargs)


@pytest.fixture
def webhooks() -> PaymentsEndpoint:
    """Where a test posts provider webhooks: the payments service, as NGINX routes them."""
    return PaymentsEndpoint()


@pytest.fixture
async def make_worker(
    aiohttp_client: Any, payments_settings: PaymentsSettings, webhooks: PaymentsEndpoint
) -> WorkerFactory:
    """Start payments services in this process (settings overridable), each serving HTTP too;
    stopped after the test."""

    async def start(**overrides: Any) -> web.Application:
        worker_settings = payments_settings.model_copy(update=overrides)
        client: TestClient[Any, Any] = await aiohttp_client(create_payments_app(worker_settings))
        webhooks.clients.append(client)
        return client.app

    return start


@pytest.fixture
async def worker(make_worker: WorkerFactory) -> web.Application:
    """One payments worker."""
    return await make_worker()


@pytest.fixture
async def stripe(aiohttp_server: Any) -> FakeStripe:
    """A local server speaking Stripe's wire format (its URL in `.url`)."""
    fake = FakeStripe()
    server = await aiohttp_server(fake.app())
    fake.url = str(server.make_url(""))
    return fake


@pytest.fixture
def make_stripe_worker(make_worker: WorkerFactory, stripe: FakeStripe) -> WorkerFactory:
    """Start payments workers that charge through the local Stripe (settings overridable)."""

    async def start(**overrides: Any) -> web.Application:
        return await make_worker(
            stripe_secret_key=STRIPE_SECRET_KEY, stripe_api_base=stripe.url, **overrides
        )

    return start


@pytest.fixture
async def admin_account(client: TestClient[Any, Any], db: asyncpg.Connection) -> Account:
    """An admin of the `client` instance."""
    return await admin(client, db)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection to this run's database, on the core schema."""
    conn = await asyncpg.connect(database_url, server_settings={"search_path": "core"})
    yield conn
    await conn.close()


@pytest.fixture(autouse=True)
def _collect_garbage() -> Iterator[None]:
    """Collect cycles after each test, so that an unclosed transport or socket is reported
    (with `-W error`, as a failure) by the test that leaked it, not by a later one."""
    yield
    gc.collect()


def pytest_collection_finish(session: pytest.Session) -> None:
    """Everything imported so far lives until the end: keep it out of those collections,
    which then cost about a millisecond instead of 150."""
    gc.freeze()


@pytest.fixture
def ai_settings(amqp_url: str, redis_prefix: str, database_url: str) -> AiSettings:
    """AI worker settings for this run: the run's database, vhost and key prefix, no metrics
    port."""
    return AiSettings(
        relais_env="test",
        database_url=database_url,
        amqp_url=amqp_url,
        redis_url=REDIS_URL,
        redis_key_prefix=redis_prefix,
        metrics_port=0,
        # the languages the tests tell apart: each worker's text process loads in a second
        ai_languages=["en", "fr", "de", "es", "it"],
    )


@pytest.fixture
async def make_ai_worker(aiohttp_client: Any, ai_settings: AiSettings) -> WorkerFactory:
    """Start AI workers in this process (settings overridable), each serving its health too."""

    async def start(**overrides: Any) -> web.Application:
        client: TestClient[Any, Any] = await aiohttp_client(
            create_ai_app(ai_settings.model_copy(update=overrides))
        )
        return client.app

    return start


@pytest.fixture
async def language_model(aiohttp_server: Any) -> FakeLanguageModel:
    """A local server speaking OpenAI's chat-completions wire format (its base URL in `.url`)."""
    fake = FakeLanguageModel()
    server = await aiohttp_server(fake.app())
    fake.url = str(server.make_url("/v1"))
    return fake


@pytest.fixture
def gateway_settings(
    amqp_url: str, redis_prefix: str, key_pair: tuple[str, str]
) -> GatewaySettings:
    """Gateway settings for this run: its vhost, key prefix and public key, no metrics port."""
    return GatewaySettings(
        relais_env="test",
        amqp_url=amqp_url,
        redis_url=REDIS_URL,
        redis_key_prefix=redis_prefix,
        jwt_public_key=key_pair[1],
        jwt_private_key_file=None,
        metrics_port=0,
    )


@pytest.fixture
async def make_gateway(aiohttp_client: Any, gateway_settings: GatewaySettings) -> ClientFactory:
    """Start gateway instances in this process (settings overridable); a client for each."""

    async def start(**overrides: Any) -> TestClient[Any, Any]:
        client: TestClient[Any, Any] = await aiohttp_client(
            create_gateway_app(gateway_settings.model_copy(update=overrides))
        )
        return client

    return start
