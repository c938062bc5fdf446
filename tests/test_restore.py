"""Backups proven by restoring them (`make restore-test`; CI runs it): a stack of the test's own
takes paid checkouts through NGINX, `make backup` backs the machine's PostgreSQL up, more
checkouts follow; restored into a scratch cluster to a time noted between them, the copy holds
what the stack held at that time, exactly, and the ledger's invariants hold in it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import asyncpg
import pytest

from devstack import backups
from devstack.scratch import free_ports
from scripts.checkouts import Shop
from tests.stacks import native_stack

pytestmark = [pytest.mark.restore, pytest.mark.e2e]


@pytest.fixture(scope="module")
def stack() -> Iterator[dict[str, Any]]:
    """A stack of the module's own, backed up once (the time each part took printed)."""
    with native_stack({}) as stack:
        yield stack


async def paid_checkouts(stack: dict[str, Any], count: int) -> list[str]:
    """`count` paid checkouts through the stack's NGINX, one after another; their orders."""
    async with aiohttp.ClientSession() as http:
        shop = await Shop.open(http, stack["config"])
        return [await shop.checkout(http, number) for number in range(count)]


async def settled(stack: dict[str, Any], orders: list[str]) -> datetime:
    """Wait until core holds every order of `orders` as paid (its event has arrived), then a
    moment no commit of the stack's shares: the database's clock, with time either side."""
    conn = await asyncpg.connect(stack["config"].admin_database_url)
    try:
        deadline = time.monotonic() + 30
        while await conn.fetchval(
            "SELECT count(*) FROM core.orders WHERE id = ANY($1::uuid[]) AND status <> 'paid'",
            orders,
        ):
            assert time.monotonic() < deadline, "orders still unpaid after 30 s"
            await asyncio.sleep(0.2)
        await asyncio.sleep(0.5)
        noted: datetime = await conn.fetchval("SELECT clock_timestamp()")
    finally:
        await conn.close()
    await asyncio.sleep(0.5)
    return noted


def target(moment: datetime) -> str:
    """A recovery target as PostgreSQL and pgBackRest read it."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00")


def test_the_newest_backup_restores_to_a_noted_time_and_its_ledger_balances(stack):
    config = stack["config"]
    before = asyncio.run(paid_checkouts(stack, 12))
    started = time.monotonic()
    made = stack["make"]("backup")
    print(f"\n{made.stdout.strip()} ({time.monotonic() - started:.1f} s with `make`)")
    between = asyncio.run(paid_checkouts(stack, 8))
    noted = asyncio.run(settled(stack, before + between))
    source = asyncio.run(backups.data_checks(config.admin_database_url))
    asyncio.run(paid_checkouts(stack, 6))

    port = free_ports(1)[0]
    checked = stack["make"]("restore-check", f"TARGET={target(noted)}", f"PORT={port}")
    report = json.loads(checked.stdout.strip().splitlines()[-1])
    print(f"restore-check: {report}")

    assert source["paid_orders"] == len(before) + len(between)
    assert report["counts"] == {name: source[name] for name in backups.COUNTS}
    assert report["violations"] == {}
    # Each paid checkout is one charge of two entries.
    assert report["counts"]["ledger_entries"] == 2 * report["counts"]["ledger_transactions"]


def test_a_restore_to_a_point_in_time_holds_exactly_the_orders_made_before_it(stack):
    config = stack["config"]
    stack["make"]("backup", "TYPE=incr")
    first = asyncio.run(paid_checkouts(stack, 5))
    noted = asyncio.run(settled(stack, first))
    second = asyncio.run(paid_checkouts(stack, 5))
    asyncio.run(settled(stack, second))

    port = free_ports(1)[0]
    copy = backups.restore(config, port=port, name=f"pitr-{port}", target=target(noted))
    try:
        restored = asyncio.run(_orders(copy.url(config.database_name), first + second))
        checks = asyncio.run(backups.data_checks(copy.url(config.database_name)))
    finally:
        copy.remove()
    assert restored == set(first)
    assert backups.violations(checks) == {}


async def _orders(url: str, candidates: list[str]) -> set[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT id::text FROM core.orders WHERE id = ANY($1::uuid[])", candidates
        )
    finally:
        await conn.close()
    return {row["id"] for row in rows}
