"""The realtime gateway in this process, on the real broker and Redis: routing by user, several
sockets per user, refusals before the upgrade, catching up after a reconnect, slow and dead
clients, tokens cut off while a socket is open, and the goodbye on shutdown."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient

from chassis.data import DB_POOL
from chassis.messaging import EVENTS, Broker, announcement_headers, message_for
from chassis.telemetry import METRICS
from contracts import PaymentFailed, PaymentSucceeded
from gateway.keys import HUB
from services.core.keys import PRODUCT_CACHE
from services.core.orders.service import release_unpaid_orders
from tests.factories import Account, create_product, pay, place_order, register


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
        [
            *("rabbitmqctl", "-q", "list_bindings", "-p", vhost, "--no-table-headers"),
            *("source_name", "destination_name", "routing_key"),
        ],
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
    # the client offers per-message deflate; the gateway declines (a zlib stream per socket)
    assert tab_one.compress == 0
    # each instance's queue is bound to the users of its sockets, and to no other
    bound = bindings(amqp_url)
    alice_queues = {queue for queue, key in bound if key == f"user.{alice.id}"}
    bob_queues = {queue for queue, key in bound if key == f"user.{bob.id}"}
    assert len(alice_queues) == 2 and len(bob_queues) == 1 and bob_queues < alice_queues

    started, announced = time.monotonic(), time.time()
    event_id = await announce(broker, alice.id)
    for ws in (tab_one, tab_two):
        message = await receive(ws)
        assert set(message) == {"id", "type", "occurred_at", "data"}
        # when the event happened, to the millisecond
        occurred = datetime.fromisoformat(message["occurred_at"]).timestamp()
        assert abs(occurred - announced) < 0.05
        assert message["id"] == event_id and message["type"] == "payment.succeeded"
        assert message["data"]["user_id"] == alice.id and message["data"]["amount_cents"] == 1250
    assert time.monotonic() - started < 1.0
    assert await silent(other, 0.3)
    # the first instance never saw bob's events: only the one holding him did
    await announce(broker, bob.id, failure_code="card_declined")
    assert (await receive(other))["type"] == "payment.failed"
    assert (
        counter(first, "relais_gateway_messages_pushed_total", type="payment.failed", via="live")
        == 0
    )
    assert (
        counter(second, "relais_gateway_messages_pushed_total", type="payment.failed", via="live")
        == 1
    )
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


async def test_sockets_are_refused_before_the_upgrade_as_problems(client, make_gateway):
    gateway = await make_gateway()
    account = await register(client)
    upgrade = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13"}
    upgrade["Sec-WebSocket-Key"] = "dGhlIHNhbXBsZSBub25jZQ=="
    cases = [
        ({}, {}, 401),
        ({"Authorization": "Bearer not-a-token"}, {}, 401),
        ({"Authorization": f"Bearer {account.refresh_token}"}, {}, 401),
        (account.auth, {"last_event_id": "42"}, 422),
        (account.auth, {"resume": "yes"}, 422),
    ]
    for headers, params, status in cases:
        response = await gateway.get("/ws", headers={**upgrade, **headers}, params=params)
        assert response.status == status, (headers, params)
        assert response.content_type == "application/problem+json"
    # a plain request to the socket's address is told to upgrade
    response = await gateway.get("/ws", headers=account.auth)
    assert response.status == 426 and response.headers["Upgrade"] == "websocket"
    assert (await response.json())["type"].endswith("/upgrade-required")
    # a browser puts the token in the query instead
    ws = await gateway.ws_connect("/ws", params={"access_token": account.access_token})
    await ws.close()
    # a logged-out token is refused from then on
    response = await client.post("/api/auth/logout", headers=account.auth)
    assert response.status == 204
    response = await gateway.get("/ws", headers={**upgrade, **account.auth})
    assert response.status == 401
    assert "revoked" in (await response.json())["detail"]


async def test_a_reconnecting_client_gets_what_it_missed_in_order_once(
    client, make_gateway, broker
):
    first, second = await make_gateway(), await make_gateway()
    account = await register(client)
    ws = await connect(first, account)
    seen = await announce(broker, account.id)
    assert (await receive(ws))["id"] == seen
    await ws.close()
    # announced while no socket of the user is open anywhere: kept all the same
    missed = [await announce(broker, account.id) for _ in range(5)]
    await asyncio.sleep(0.3)
    ws = await connect(second, account, last_event_id=seen)
    replayed = [(await receive(ws))["id"] for _ in missed]
    assert replayed == missed
    live = await announce(broker, account.id)
    assert (await receive(ws))["id"] == live
    assert await silent(ws, 0.3)
    assert counter(second, "relais_gateway_resumes_total", outcome="resumed") == 1
    await ws.close()
    # an id the journal does not hold: a resync, then everything kept
    ws = await connect(first, account, last_event_id=str(uuid.uuid4()))
    resync = await receive(ws)
    assert resync["type"] == "resync" and resync["id"] is None
    assert [(await receive(ws))["id"] for _ in range(7)] == [seen, *missed, live]
    assert await silent(ws, 0.2)
    await ws.close()


async def test_catching_up_while_events_keep_coming_sends_each_once_in_order(
    client, make_gateway, broker
):
    gateway = await make_gateway()
    account = await register(client)
    first = await announce(broker, account.id)
    await asyncio.sleep(0.3)

    async def keep_announcing() -> list[str]:
        return [await announce(broker, account.id) for _ in range(30)]

    announcing = asyncio.create_task(keep_announcing())
    await asyncio.sleep(0.01)
    ws = await connect(gateway, account, last_event_id=first)
    later = await announcing
    received: list[str] = []
    while len(received) < len(later):
        received.append((await receive(ws))["id"])
    assert received == later
    assert await silent(ws, 0.3)
    await ws.close()


async def test_a_client_that_does_not_read_is_dropped_with_1013_and_others_are_not(
    client, make_gateway, broker
):
    gateway = await make_gateway(gateway_send_queue=4)
    slow, fine = await register(client), await register(client)
    stalled = await connect(gateway, slow)
    reading = await connect(gateway, fine)
    hub = gateway.app[HUB]
    (stalled_socket,) = hub.users[slow.id]
    # big events fill the socket's buffers, then its send queue
    for _ in range(120):
        await announce(broker, slow.id, failure_code="x" * 100_000)
    await announce(broker, fine.id)
    assert (await receive(reading))["type"] == "payment.succeeded"
    for _ in range(100):
        if slow.id not in hub.users:
            break
        await asyncio.sleep(0.05)
    assert slow.id not in hub.users
    assert stalled_socket.closing == "slow_client"
    assert counter(gateway, "relais_gateway_drops_total", reason="slow_client") == 1
    assert counter(gateway, "relais_gateway_connections") == 1
    await stalled.close()
    await reading.close()


async def test_a_peer_that_stops_answering_pings_is_dropped(client, make_gateway):
    gateway = await make_gateway(gateway_heartbeat=0.4)
    account = await register(client)
    ws = await gateway.ws_connect("/ws", headers=account.auth, autoping=False)
    hub = gateway.app[HUB]
    assert account.id in hub.users
    for _ in range(60):
        if account.id not in hub.users:
            break
        await asyncio.sleep(0.05)
    assert account.id not in hub.users
    assert counter(gateway, "relais_gateway_drops_total", reason="dead_peer") == 1
    await ws.close()


async def test_an_open_socket_closes_once_its_token_is_revoked(client, make_gateway):
    gateway = await make_gateway(gateway_auth_check_interval=0.2)
    account = await register(client)
    ws = await connect(gateway, account)
    assert await silent(ws, 0.5)  # still open after a few checks
    response = await client.post("/api/auth/logout", headers=account.auth)
    assert response.status == 204
    message = await ws.receive(timeout=3)
    assert message.type == WSMsgType.CLOSE and message.data == 1008
    assert counter(gateway, "relais_gateway_drops_total", reason="token_revoked") == 1


async def test_shutdown_says_going_away_to_every_socket(client, aiohttp_server, gateway_settings):
    from gateway.app import create_app

    server = await aiohttp_server(create_app(gateway_settings))
    account = await register(client)
    async with aiohttp.ClientSession() as session:
        sockets = [
            await session.ws_connect(server.make_url("/ws"), headers=account.auth) for _ in range(3)
        ]
        closing = asyncio.create_task(server.close())
        for ws in sockets:
            message = await ws.receive(timeout=5)
            assert message.type == WSMsgType.CLOSE and message.data == 1001
        await closing


@pytest.mark.usefixtures("worker")
async def test_core_tells_the_buyer_of_a_refused_payment_and_of_cancellations(
    client, make_gateway, admin_account
):
    gateway = await make_gateway()
    buyer = await register(client)
    ws = await connect(gateway, buyer)
    product = await create_product(client, admin_account, stock=5)
    declined = await place_order(client, buyer, product)
    status, payment = await pay(client, buyer, declined["id"], "tok_chargeDeclined")
    assert status == 200 and payment["status"] == "failed"
    pushed = {}
    for _ in range(2):
        message = await receive(ws)
        pushed[message["type"]] = message
    assert set(pushed) == {"payment.failed", "order.payment_failed"}
    refused = pushed["order.payment_failed"]["data"]
    assert refused["order_id"] == declined["id"] and refused["payment_id"] == payment["id"]
    assert refused["failure_code"] == "card_declined"
    # cancelled by its buyer, and left unpaid past the hold: each says why
    response = await client.post(f"/api/orders/{declined['id']}/cancel", headers=buyer.auth)
    assert response.status == 200
    cancelled = await receive(ws)
    assert cancelled["type"] == "order.cancelled"
    assert cancelled["data"] == {
        "order_id": declined["id"],
        "user_id": buyer.id,
        "reason": "buyer",
        "cancelled_at": cancelled["data"]["cancelled_at"],
    }
    forgotten = await place_order(client, buyer, product)
    await asyncio.sleep(0.05)
    released = await release_unpaid_orders(
        pool=client.app[DB_POOL], cache=client.app[PRODUCT_CACHE], hold_seconds=0.01
    )
    assert released >= 1
    expired = await receive(ws)
    assert expired["type"] == "order.cancelled"
    assert expired["data"]["order_id"] == forgotten["id"] and expired["data"]["reason"] == "unpaid"
    assert await silent(ws, 0.3)
    await ws.close()
