"""Crashes and outages during a batch of payments: nothing is lost, nothing is charged twice."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.scratch import free_ports
from tests.conftest import REDIS_URL, WEBHOOK_SECRET, rabbitmqctl
from tests.factories import admin, create_product, pay, place_order, register
from tests.faults import eventually
from tests.payments_support import ledger_sum, provider_charges

ROOT = Path(__file__).resolve().parent.parent


def start_worker(payments_settings, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "RELAIS_ENV": "test",
        "DATABASE_URL": payments_settings.database_url,
        "REDIS_URL": REDIS_URL,
        "REDIS_KEY_PREFIX": payments_settings.redis_key_prefix,
        "AMQP_URL": payments_settings.amqp_url,
        "AMQP_PREFETCH": "10",
        "AMQP_RETRY_DELAYS": "[0.2, 0.5, 1.0]",
        "HTTP_PORT": str(free_ports(1)[0]),
        "METRICS_PORT": "0",
        "SANDBOX_LATENCY_MS": "30",
        # The payments service takes webhooks: it needs their secret to start.
        "PAYMENTS_WEBHOOK_SECRET": WEBHOOK_SECRET,
    }
    with log.open("ab") as output:  # the child keeps its own descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "services.payments"],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


async def place_and_pay(client, count: int, stock: int) -> list[str]:
    """`count` orders paid (202, not waiting) by distinct customers; the payment ids."""
    admin_account = await admin(client, await _db(client))
    product = await create_product(client, admin_account, stock=stock, price_cents=700)
    customers = [await register(client) for _ in range(4)]
    orders = [await place_order(client, customers[i % 4], product) for i in range(count)]
    payment_ids = []
    for batch in range(0, count, 25):
        results = await asyncio.gather(
            *(
                pay(client, customers[i % 4], orders[i]["id"], wait=None)
                for i in range(batch, min(batch + 25, count))
            )
        )
        assert {status for status, _ in results} == {202}
        payment_ids += [body["id"] for _, body in results]
    return payment_ids


async def _db(client):
    from chassis.data import DB_POOL

    return client.app[DB_POOL]


async def settled(db, payment_ids: list[str]) -> int:
    return int(
        await db.fetchval(
            "SELECT count(*) FROM payments WHERE id = ANY($1::uuid[]) AND status = 'succeeded'",
            payment_ids,
        )
    )


async def assert_settled_once(db, redis_prefix, payment_ids: list[str]) -> dict[str, list]:
    charges = await provider_charges(redis_prefix)
    assert all(len(charges[payment_id]) == 1 for payment_id in payment_ids)
    per_payment = await db.fetch(
        """SELECT payment_id, count(*) AS n FROM payments.ledger_transactions
           WHERE kind = 'charge' AND payment_id = ANY($1::uuid[]) GROUP BY payment_id""",
        payment_ids,
    )
    assert len(per_payment) == len(payment_ids)
    assert {row["n"] for row in per_payment} == {1}
    assert await ledger_sum(db) == 0
    paid = await db.fetchval(
        """SELECT count(*) FROM orders o JOIN payments p ON p.order_id = o.id
           WHERE p.id = ANY($1::uuid[]) AND o.status = 'paid'""",
        payment_ids,
    )
    assert paid == len(payment_ids)
    return charges


async def test_worker_killed_mid_batch_settles_every_payment_once(
    client, db, payments_settings, redis_prefix, tmp_path
):
    log = tmp_path / "worker.log"
    worker = start_worker(payments_settings, log)
    try:
        payment_ids = await place_and_pay(client, 200, stock=1000)
        await eventually(lambda: _at_least(settled(db, payment_ids), 30), within=60)
        worker.send_signal(signal.SIGKILL)
        await stopped(worker, 10)
        interrupted = await settled(db, payment_ids)
        assert interrupted < 200, "the kill came too late to interrupt the batch"
        worker = start_worker(payments_settings, log)
        await eventually(lambda: _at_least(settled(db, payment_ids), 200), within=90)
        # The last settlements' rows are relayed after they commit, not with them.
        await eventually(lambda: _outbox_drained(db), within=30)
    finally:
        worker.send_signal(signal.SIGTERM)
        await stopped(worker, 20)
    charges = await assert_settled_once(db, redis_prefix, payment_ids)
    # Messages in flight at the kill were delivered again and asked the provider again.
    assert sum(charges[payment_id][0]["calls"] for payment_id in payment_ids) >= 200


async def stopped(process: subprocess.Popen[bytes], within: float) -> None:
    """Wait for a child without stalling the event loop the app under test runs on."""
    await asyncio.to_thread(process.wait, within)


async def _at_least(awaitable, expected: int) -> bool:
    return await awaitable >= expected


@pytest.mark.usefixtures("worker")
async def test_rabbitmq_stopped_for_ten_seconds_loses_and_duplicates_nothing(
    client, db, redis_prefix
):
    payment_ids = await place_and_pay(client, 40, stock=1000)
    rabbitmqctl("stop_app")
    try:
        # The API keeps accepting payments: they wait in the outbox.
        payment_ids += await place_and_pay(client, 40, stock=1000)
        assert await db.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL") > 0
        await asyncio.sleep(10)
    finally:
        rabbitmqctl("start_app")
    await eventually(lambda: _at_least(settled(db, payment_ids), 80), within=90)
    await assert_settled_once(db, redis_prefix, payment_ids)
    await eventually(lambda: _outbox_drained(db), within=90)


async def _outbox_drained(db) -> bool:
    core = await db.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL")
    payments = await db.fetchval("SELECT count(*) FROM payments.outbox WHERE sent_at IS NULL")
    return core == 0 and payments == 0
