"""Reads that tolerate lag, from a streaming replica: `REPLICA=1 make up` runs one that follows the
stack's PostgreSQL, the catalog list reads from it, and when it stops the reads go to the
primary and its absence is a metric; without a reachable replica the service still answers."""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Iterator
from typing import Any

import aiohttp
import asyncpg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from chassis.data import REPLICA, Replica
from chassis.telemetry import METRICS, Metrics
from devstack import supervisorctl
from tests.stacks import native_stack


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples of metric `name` in a Prometheus text page, by their labels."""
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


def test_a_replica_is_used_only_within_the_lag_it_is_allowed():
    replica = Replica(pool=None, max_lag=10.0, metrics=Metrics("probe"))  # type: ignore[arg-type]
    replica.judge(0.5)
    assert replica.usable
    replica.judge(30.0)
    assert not replica.usable
    replica.judge(math.nan)  # no answer
    assert not replica.usable


async def test_without_a_reachable_replica_the_catalog_reads_the_primary(make_client):
    client = await make_client(
        database_replica_url="postgresql://relais:relais@127.0.0.1:1/relais",
        replica_check_interval=0.2,
    )
    metrics = client.server.app[METRICS]
    response = await client.get("/api/products?limit=5")
    assert response.status == 200, await response.text()
    assert not client.server.app[REPLICA].usable
    labels = {"service": metrics.service}
    registry = metrics.registry
    assert registry.get_sample_value("relais_db_replica_up", labels) == 0
    assert (
        registry.get_sample_value(
            "relais_db_lag_tolerant_reads_total", {**labels, "source": "primary"}
        )
        == 1
    )


@pytest.fixture(scope="module")
def stack() -> Iterator[dict[str, Any]]:
    """A stack of the module's own with its replica."""
    with native_stack({"REPLICA": "1"}) as stack:
        yield stack


async def _metrics(stack: dict[str, Any], name: str) -> dict[Any, float]:
    found: dict[Any, float] = {}
    async with aiohttp.ClientSession() as http:
        for _, _, _, metrics_port in stack["config"].processes():
            if metrics_port not in {m for _, m in stack["config"].core_ports()}:
                continue
            async with http.get(f"http://127.0.0.1:{metrics_port}/metrics") as response:
                for labels, value in samples(await response.text(), name).items():
                    found[(metrics_port, labels)] = value
    return found


async def _total(stack: dict[str, Any], source: str) -> float:
    reads = await _metrics(stack, "relais_db_lag_tolerant_reads_total")
    return sum(value for (_, labels), value in reads.items() if ("source", source) in labels)


async def _new_product(stack: dict[str, Any]) -> str:
    sku = f"REPLICA-{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(stack["config"].admin_database_url)
    try:
        await conn.execute(
            """INSERT INTO core.products (sku, name, description, price_cents, currency, stock,
                                          category)
               VALUES ($1, $1, 'streamed to the replica', 1234, 'EUR', 5, 'replica-test')""",
            sku,
        )
    finally:
        await conn.close()
    return sku


async def _listed(stack: dict[str, Any], http: aiohttp.ClientSession) -> list[str]:
    url = f"{stack['base']}/api/products?category=replica-test&limit=100"
    async with http.get(url) as response:
        assert response.status == 200, await response.text()
        return [product["sku"] for product in (await response.json())["items"]]


@pytest.mark.e2e
async def test_the_catalog_list_reads_the_streaming_replica_and_falls_back_when_it_stops(stack):
    status = stack["make"]("status").stdout
    assert "postgres-replica" in status and "PostgreSQL replica" in status, status
    async with aiohttp.ClientSession() as http:
        before = await _total(stack, "replica")
        sku = await _new_product(stack)  # written on the primary
        deadline = time.monotonic() + 10
        while sku not in await _listed(stack, http):
            assert time.monotonic() < deadline, "the replica never showed the new product"
            await asyncio.sleep(0.1)
        assert await _total(stack, "replica") > before

        supervisorctl(stack["config"], "stop", "postgres-replica")
        try:
            await asyncio.sleep(3)  # a lag measurement finds it gone
            served_by_primary = await _total(stack, "primary") + await _total(stack, "fallback")
            assert sku in await _listed(stack, http)
            up = await _metrics(stack, "relais_db_replica_up")
            assert up and all(value == 0 for value in up.values()), up
            after = await _total(stack, "primary") + await _total(stack, "fallback")
            assert after > served_by_primary
        finally:
            supervisorctl(stack["config"], "start", "postgres-replica")
        deadline = time.monotonic() + 30
        while not all(v == 1 for v in (await _metrics(stack, "relais_db_replica_up")).values()):
            assert time.monotonic() < deadline, "the services never found the replica again"
            await asyncio.sleep(0.5)


@pytest.mark.e2e
async def test_the_backup_exporter_reports_the_repository_and_wal_archiving(stack):
    port = stack["config"].backup_exporter_port
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        text = await response.text()
    assert samples(text, "relais_backup_repository_up") == {(): 1.0}
    assert samples(text, "relais_wal_archived_total")[()] > 0
    slots = samples(text, "relais_replication_slot_retained_bytes")
    slot = f"{stack['config'].database_name}_replica"
    assert (("slot", slot),) in slots, slots
