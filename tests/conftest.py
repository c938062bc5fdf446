"""Fixtures: each test run gets its own PostgreSQL database and Redis key prefix."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from redis.asyncio import Redis

from chassis.migrations import upgrade
from services.core.app import MIGRATIONS, create_app
from services.core.settings import CoreSettings

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/0"
RUN_ID = uuid.uuid4().hex[:10]


def _dsn(database: str) -> str:
    return f"postgresql://postgres@127.0.0.1:5432/{database}"


async def _admin_sql(sql: str) -> None:
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A fresh database with the core schema migrated, dropped after the run."""
    name = f"relais_test_{RUN_ID}"
    asyncio.run(_admin_sql(f'CREATE DATABASE "{name}"'))
    try:
        upgrade(_dsn(name), MIGRATIONS, "core")
        yield _dsn(name)
    finally:
        asyncio.run(_admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


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
def settings(database_url: str, redis_prefix: str, key_pair: tuple[str, str]) -> CoreSettings:
    """Core settings pointing at this run's database, key prefix and keys."""
    private, public = key_pair
    return CoreSettings(
        relais_env="test",
        database_url=database_url,
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
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection to this run's database, on the core schema."""
    conn = await asyncpg.connect(database_url, server_settings={"search_path": "core"})
    yield conn
    await conn.close()
