"""The realtime gateway in this process, on the real broker and Redis: routing by user, several
sockets per user, refusals before the upgrade, catching up after a reconnect, slow and dead
clients, tokens cut off while a socket is open, and the goodbye on shutdown."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient

from chassis.messaging import EVENTS, Broker, announcement_headers, message_for
from chassis.telemetry import METRICS
from contracts import PaymentFailed, PaymentSucceeded
from gateway.keys import HUB
from tests.factories import Account, register


@pytest.fixture
async def broker(amqp_url: str) -> AsyncIterator[Broker]:
    """A publisher on the run's vhost, announcing events as the services do."""
    broker = await Broker.connect(amqp_url, name="test-announcer")
    yield broker
    await broker.close()


async def announce(broker: Broker, user_id: str, *, failure_code: str | None = None) -> str:
    """Announce a payment event for `user_id` as the payments service does; its id."""
    event: PaymentSucceeded | PaymentFailed
    if failure_code is None:
        event = PaymentSucceeded(
            payment_id=uuid.uuid4(),
            order_id=uuid.uuid4(),
            user_id=uuid.UUID(user_id),
            amount_cents=1250,
            currency="EUR",
        )
    else:
        event = PaymentFailed(
            payment_id=uuid.uuid4(),
            order_id=uuid.uuid4(),
            user_id=uuid.UUID(user_id),
            failure_code=failure_code,
        )
    message = message_for(event, headers=announcement_headers(to_user=user_id))
    await broker.publish(EVENTS, event.type, message)
    assert message.message_id is not None
    return message.message_id


async def receive(ws: aiohttp.ClientWebSocketResponse, within: float = 2.0) -> dict[str, Any]:
    """The next JSON message on the socket."""
    message = await ws.receive(timeout=within)
    assert message.type == WSMsgType.TEXT, message
    payload: dict[str, Any] = message.json()
    return payload


async def silent(ws: aiohttp.ClientWebSocketResponse, seconds: float) -> bool:
    """Whether the socket receives nothing for `seconds`."""
    try:
        message = await ws.receive(timeout=seconds)
    except TimeoutError:
        return True
    raise AssertionError(f"unexpected message: {message}")


def bindings(amqp_url: str) -> list[tuple[str, str]]:
    """(queue, routing key) of every binding of `relais.events` in the run's vhost."""
    vhost = urlsplit(amqp_url).path.lstrip("/")
    out = subprocess.run(
        ["rabbitmqctl", "-q", "list_bindings", "-p", vhost, "--no-table-headers"]
        + ["source_name", "destination_name", "routing_key"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    rows = [line.split("\t") for line in out.splitlines() if line.strip()]
    return [(row[1], row[2]) for row in rows if row[0] == EVENTS]


def counter(gateway: TestClient[Any, Any], name: str, **labels: str) -> float:
    """A sample of the gateway's registry (0 if absent)."""
    value = gateway.app[METRICS].registry.get_sample_value(name, {"service": "gateway", **labels})
    return value or 0.0


async def connect(
    gateway: TestClient[Any, Any], account: Account, **params: str
) -> aiohttp.ClientWebSocketResponse:
    """Open a socket as `account` (token in the header)."""
    return await gateway.ws_connect("/ws", headers=account.auth, params=params)


async def test_events_reach_every_socket_of_their_user_through_the_instances_holding_them(
    client, make_gateway, broker, amqp_url
):
    first, second = await make_gateway(), await make_gateway()
    alice, bob = await register(client), await register(client)
    tab_one, tab_two = await connect(first, alice), await connect(second, alice)
    other = await connect(second, bob)
    # each instance's queue is bound to the users of its sockets, and to no other
    bound = bindings(amqp_url)
    alice_queues = {queue for queue, key in bound if key == f"user.{alice.id}"}
    bob_queues = {queue for queue, key in bound if key == f"user.{bob.id}"}
    assert len(alice_queues) == 2 and len(bob_queues) == 1 and bob_queues < alice_queues

    started = time.monotonic()
    event_id = await announce(broker, alice.id)
    for ws in (tab_one, tab_two):
        message = await receive(ws)
        assert set(message) == {"id", "type", "occurred_at", "data"}
        assert message["id"] == event_id and message["type"] == "payment.succeeded"
        assert message["data"]["user_id"] == alice.id and message["data"]["amount_cents"] == 1250
    assert time.monotonic() - started < 1.0
    assert await silent(other, 0.3)
    # the first instance never saw bob's events: only the one holding him did
    await announce(broker, bob.id, failure_code="card_declined")
    assert (await receive(other))["type"] == "payment.failed"
    assert counter(first, "relais_gateway_messages_pushed_total", type="payment.failed", via="live") == 0
    assert counter(second, "relais_gateway_messages_pushed_total", type="payment.failed", via="live") == 1
    assert await silent(tab_one, 0.2) and await silent(tab_two, 0.1)

    # the last socket of a user on an instance unbinds the user there
    await tab_two.close()
    await other.close()

    def unbound() -> bool:
        keys = [(queue, key) for queue, key in bindings(amqp_url) if key.startswith("user.")]
        return [key for _, key in keys] == [f"user.{alice.id}"]

    for _ in range(50):
        if unbound():
            break
        await asyncio.sleep(0.1)
    assert unbound(), [b for b in bindings(amqp_url) if b[1].startswith("user.")]
    assert counter(second, "relais_gateway_connections") == 0
    assert counter(first, "relais_gateway_connections") == 1
