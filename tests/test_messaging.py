"""The chassis' messaging against a real RabbitMQ: confirms, retries, dead letters, outbox, RPC."""

from __future__ import annotations

import asyncio
import json
import uuid

import aio_pika
import asyncpg
import pytest
from aio_pika.exceptions import PublishError
from opentelemetry.sdk.trace import TracerProvider

from chassis.errors import DomainError, GatewayTimeout
from chassis.messaging import (
    COMMANDS,
    REASON_HEADER,
    Broker,
    Consumer,
    MessageTypes,
    OutboxRelay,
    Poison,
    RpcClient,
    RpcServer,
    dead_letter_queue,
    enqueue,
    message_for,
    retry_queue,
)
from chassis.telemetry import Metrics
from contracts import Contract, DailyReport, DailyReportRequest, RefundPayment
from scripts import dlq
from tests.faults import eventually

RETRIES = [0.1, 0.2]


@pytest.fixture
async def broker(amqp_url):
    broker = await Broker.connect(amqp_url, name="test")
    yield broker
    await broker.close()


def refund_command() -> RefundPayment:
    return RefundPayment(refund_id=uuid.uuid4(), payment_id=uuid.uuid4(), amount_cents=100)


async def work_queue(broker: Broker, *, delivery_limit: int = 5) -> str:
    name = f"test.{uuid.uuid4().hex[:8]}"
    await broker.declare_work_queue(
        name, [(COMMANDS, name)], delivery_limit=delivery_limit, retry_delays=RETRIES
    )
    return name


async def drain(broker: Broker, queue: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
    channel = await broker.connection.channel()
    found = []
    q = await channel.get_queue(queue, ensure=False)
    while (message := await q.get(fail=False, no_ack=True)) is not None:
        found.append(message)
    await channel.close()
    return found


async def test_an_unroutable_publish_raises(broker):
    with pytest.raises(PublishError):
        await broker.publish(COMMANDS, f"nobody.{uuid.uuid4().hex}", message_for(refund_command()))


async def test_a_publisher_channel_closed_for_good_is_replaced(broker):
    queue = await work_queue(broker)
    closed = broker.channel
    await closed.close()  # as a robust channel whose restore failed after a reconnect stays
    await broker.publish(COMMANDS, queue, message_for(refund_command()))
    assert broker.channel is not closed and not broker.channel.is_closed
    assert len(await drain(broker, queue)) == 1


async def test_transient_failures_are_retried_with_back_off_then_succeed(broker):
    queue = await work_queue(broker)
    attempts: list[float] = []

    async def flaky(contract, message):
        attempts.append(asyncio.get_running_loop().time())
        if len(attempts) < 3:
            raise ConnectionError("database blip")

    metrics = Metrics("test")
    consumer = Consumer(
        broker, queue, {RefundPayment: flaky}, metrics=metrics, prefetch=10, retry_delays=RETRIES
    )
    await consumer.start()
    try:
        await broker.publish(COMMANDS, queue, message_for(refund_command()))
        await eventually(lambda: len(attempts) >= 3)
        await asyncio.sleep(0.3)
    finally:
        await consumer.stop()
    assert len(attempts) == 3
    assert attempts[1] - attempts[0] >= 0.1
    assert attempts[2] - attempts[1] >= 0.2
    assert await drain(broker, dead_letter_queue(queue)) == []
    text = metrics.expose("")[0].decode()
    assert (
        f'relais_messages_failed_total{{queue="{queue}",service="test",type="payment.refund"}} 2.0'
        in text
    )
    assert (
        f'relais_messages_consumed_total{{queue="{queue}",service="test",'
        f'type="payment.refund"}} 3.0' in text
    )


async def test_poison_and_exhausted_messages_are_dead_lettered_with_reasons(broker):
    queue = await work_queue(broker)
    handled: list[str] = []

    async def handler(contract, message):
        handled.append(message.message_id)
        if message.message_id == "poison":
            raise Poison("amount does not match the order")
        if message.message_id == "always-fails":
            raise RuntimeError("bug")

    consumer = Consumer(
        broker,
        queue,
        {RefundPayment: handler},
        metrics=Metrics("test"),
        prefetch=10,
        retry_delays=RETRIES,
    )
    await consumer.start()
    try:
        await broker.publish(COMMANDS, queue, message_for(refund_command(), message_id="poison"))
        await broker.publish(
            COMMANDS, queue, message_for(refund_command(), message_id="always-fails")
        )
        await broker.publish(COMMANDS, queue, aio_pika.Message(b"not json", message_id="garbage"))
        await broker.publish(COMMANDS, queue, message_for(refund_command(), message_id="fine"))
        dead: dict[str, str] = {}

        async def all_dead():
            for message in await drain(broker, dead_letter_queue(queue)):
                dead[message.message_id] = message.headers[REASON_HEADER]
            return len(dead) == 3

        await eventually(all_dead)
    finally:
        await consumer.stop()
    assert dead["poison"].startswith("Poison: amount does not match")
    assert dead["always-fails"].startswith("retries exhausted: RuntimeError('bug')")
    assert dead["garbage"].startswith("UnknownContract: not a contract envelope")
    assert handled.count("poison") == 1
    assert handled.count("always-fails") == 1 + len(RETRIES)
    assert "garbage" not in handled
    assert handled.count("fine") == 1


async def test_the_broker_dead_letters_a_message_past_the_delivery_limit(broker):
    queue = await work_queue(broker, delivery_limit=2)
    channel = await broker.connection.channel()
    q = await channel.get_queue(queue, ensure=False)
    deliveries = 0

    async def crash(message):
        nonlocal deliveries
        deliveries += 1
        await message.nack(requeue=True)  # what a process dying mid-message amounts to

    await q.consume(crash)
    await broker.publish(COMMANDS, queue, message_for(refund_command(), message_id="crasher"))

    async def dead_letter():
        found = await drain(broker, dead_letter_queue(queue))
        return found[0] if found else None

    message = await eventually(dead_letter)
    await channel.close()
    assert message.message_id == "crasher"
    assert message.headers["x-death"][0]["reason"] == "delivery_limit"
    assert deliveries == 3


async def test_stop_finishes_messages_in_flight_before_closing(broker):
    queue = await work_queue(broker)
    started, finished = asyncio.Event(), []

    async def slow(contract, message):
        started.set()
        await asyncio.sleep(0.5)
        finished.append(message.message_id)

    metrics = Metrics("test")
    consumer = Consumer(
        broker, queue, {RefundPayment: slow}, metrics=metrics, prefetch=10, retry_delays=RETRIES
    )

    def running() -> float | None:
        labels = {"service": "test", "queue": queue}
        return metrics.registry.get_sample_value("relais_consumers_running", labels)

    await consumer.start()
    assert running() == 1
    await broker.publish(COMMANDS, queue, message_for(refund_command(), message_id="in-flight"))
    await started.wait()
    await consumer.stop()
    assert running() == 0
    assert finished == ["in-flight"]
    assert await drain(broker, queue) == []  # acked, so not redelivered


async def test_relays_on_several_instances_publish_each_row_once(broker, database_url):
    queue = await work_queue(broker)
    pool = await asyncpg.create_pool(database_url, server_settings={"search_path": "core"})
    received: list[str] = []

    async def collect(contract, message):
        received.append(message.message_id)

    consumer = Consumer(
        broker,
        queue,
        {RefundPayment: collect},
        metrics=Metrics("test"),
        prefetch=300,
        retry_delays=RETRIES,
    )
    await consumer.start()
    relays = [
        OutboxRelay(
            pool, broker, Metrics(f"relay{i}"), batch=20, poll_interval=0.05, retention_hours=24
        )
        for i in range(3)
    ]
    ids = [str(uuid.uuid4()) for _ in range(300)]
    try:
        async with pool.acquire() as conn, conn.transaction():
            for message_id in ids:
                await enqueue(
                    conn,
                    refund_command(),
                    exchange=COMMANDS,
                    routing_key=queue,
                    message_id=message_id,
                )
            await enqueue(
                conn, refund_command(), exchange=COMMANDS, routing_key=queue, message_id=ids[0]
            )
        tasks = [asyncio.create_task(relay.run()) for relay in relays]
        await eventually(lambda: len(received) >= 300)
        await asyncio.sleep(0.3)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await consumer.stop()
        unsent = await pool.fetchval(
            "SELECT count(*) FROM outbox WHERE message_id = ANY($1::uuid[]) AND sent_at IS NULL",
            ids,
        )
        await pool.close()
    assert sorted(received) == sorted(ids)
    assert unsent == 0

    def sample(name: str) -> list[float | None]:
        return [
            relay.metrics.registry.get_sample_value(name, {"service": relay.metrics.service})
            for relay in relays
        ]

    assert sum(value or 0 for value in sample("relais_outbox_published_total")) == 300
    assert sample("relais_outbox_lag_seconds") == [0.0, 0.0, 0.0]


async def test_rpc_answers_and_times_out(broker):
    method = f"test.report.{uuid.uuid4().hex[:8]}"
    delay = 0.0

    async def report(request):
        await asyncio.sleep(delay)
        return DailyReport(day=request.day, currencies=[])

    server = RpcServer(broker, method, report, request=DailyReportRequest, prefetch=4)
    client = RpcClient(broker, service="test")
    await server.start()
    await client.start()
    try:
        answer = await client.call(
            method, DailyReportRequest(day="2026-11-22"), DailyReport, deadline=2
        )
        assert answer.day.isoformat() == "2026-11-22"
        delay = 1.0
        with pytest.raises(GatewayTimeout):
            await client.call(
                method, DailyReportRequest(day="2026-11-22"), DailyReport, deadline=0.2
            )
    finally:
        await client.stop()
        await server.stop()


async def test_a_worker_whose_database_is_down_answers_503_and_a_bug_500(broker):
    method = f"test.report.{uuid.uuid4().hex[:8]}"
    failure: Exception = asyncpg.exceptions.CannotConnectNowError("the database is starting")

    async def report(request):
        raise failure

    metrics = Metrics("test")
    server = RpcServer(
        broker, method, report, request=DailyReportRequest, prefetch=4, metrics=metrics
    )
    client = RpcClient(broker, service="test")
    await server.start()
    await client.start()
    request = DailyReportRequest(day="2026-11-22")
    try:
        with pytest.raises(DomainError) as unavailable:
            await client.call(method, request, DailyReport, deadline=2)
        assert (unavailable.value.status, unavailable.value.slug) == (503, "service-unavailable")
        assert unavailable.value.headers == {"Retry-After": "1"}
        failure = KeyError("a bug")
        with pytest.raises(DomainError) as bug:
            await client.call(method, request, DailyReport, deadline=2)
        assert (bug.value.status, bug.value.headers) == (500, {})
    finally:
        await client.stop()
        await server.stop()

    def served(outcome: str) -> float | None:
        labels = {"service": "test", "method": method, "outcome": outcome}
        return metrics.registry.get_sample_value("relais_rpc_requests_total", labels)

    # the alert on failing RPCs counts bugs, not a dependency's outage
    assert (served("unavailable"), served("error")) == (1.0, 1.0)


def test_contracts_round_trip_and_refuse_unknown_versions():
    decode = MessageTypes(Contract.registry.values()).decode
    command = refund_command()
    assert decode(command.encode()) == command
    with pytest.raises(ValueError, match="version 2"):
        decode(command.encode().replace(b'"version":1', b'"version":2'))
    with pytest.raises(ValueError, match=r"invalid payment\.refund"):
        decode(command.encode().replace(b'"amount_cents":100', b'"amount_cents":-1'))


async def test_dlq_command_lists_and_requeues_dead_letters(broker, amqp_url, capsys):
    queue = await work_queue(broker)
    accept = False
    handled: list[str] = []

    async def handler(contract, message):
        if not accept:
            raise Poison("not yet")
        handled.append(message.message_id)

    consumer = Consumer(
        broker,
        queue,
        {RefundPayment: handler},
        metrics=Metrics("test"),
        prefetch=10,
        retry_delays=RETRIES,
    )
    await consumer.start()
    try:
        for message_id in ("dead-1", "dead-2"):
            await broker.publish(
                COMMANDS, queue, message_for(refund_command(), message_id=message_id)
            )
        await asyncio.sleep(0.5)
        assert await dlq.run(amqp_url, "list", [queue], set()) == 2
        listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert {row["message_id"] for row in listed} == {"dead-1", "dead-2"}
        assert all(row["reason"] == "Poison: not yet" for row in listed)
        # each with when it died and how long ago
        assert all(0 <= row["age_seconds"] < 30 and row["dead_lettered_at"] for row in listed)
        await asyncio.sleep(1.1)
        assert await dlq.run(amqp_url, "list", [queue], {"dead-1"}) == 1  # ID= narrows
        [only] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert only["message_id"] == "dead-1" and only["age_seconds"] >= 1
        assert await dlq.run(amqp_url, "list", [queue], set()) == 2  # listing leaves them
        accept = True
        assert await dlq.run(amqp_url, "requeue", [queue], {"dead-2"}) == 1
        await eventually(lambda: handled == ["dead-2"])
        capsys.readouterr()
        # a poison message is dropped by its id, the others stay
        assert await dlq.run(amqp_url, "discard", [queue], {"dead-1", "elsewhere"}) == 1
        [dropped] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert dropped["discarded"]["message_id"] == "dead-1"
        assert await drain(broker, dead_letter_queue(queue)) == []
        assert handled == ["dead-2"]
    finally:
        await consumer.stop()


async def test_a_service_with_other_retry_delays_still_starts(broker):
    queue = await work_queue(broker)  # declared with RETRIES
    # Queue arguments are immutable: retry queues named by delay let new delays coexist.
    await broker.declare_work_queue(
        queue, [(COMMANDS, queue)], delivery_limit=5, retry_delays=[0.3, *RETRIES]
    )
    channel = await broker.connection.channel()
    for delay in (0.1, 0.2, 0.3):
        await channel.get_queue(retry_queue(queue, delay), ensure=True)
    await channel.close()


async def test_the_outbox_carries_the_trace_context_of_the_writer(broker, database_url):
    queue = await work_queue(broker)
    pool = await asyncpg.create_pool(database_url, server_settings={"search_path": "core"})
    tracer = TracerProvider().get_tracer("test")
    traced_id, untraced_id = str(uuid.uuid4()), str(uuid.uuid4())

    async def write(message_id: str) -> None:
        async with pool.acquire() as conn, conn.transaction():
            await enqueue(
                conn, refund_command(), exchange=COMMANDS, routing_key=queue, message_id=message_id
            )

    try:
        with tracer.start_as_current_span("request") as span:
            await write(traced_id)
        await write(untraced_id)
        relay = OutboxRelay(
            pool, broker, Metrics("relay"), batch=10, poll_interval=0.05, retention_hours=24
        )
        await relay.relay_once()
    finally:
        await pool.close()
    received: dict[str, aio_pika.abc.AbstractIncomingMessage] = {}

    async def both() -> bool:
        received.update({m.message_id or "": m for m in await drain(broker, queue)})
        return len(received) == 2

    await eventually(both)
    ids = span.get_span_context()
    traceparent = received[traced_id].headers["traceparent"]
    assert isinstance(traceparent, str)
    assert traceparent.startswith(f"00-{ids.trace_id:032x}-{ids.span_id:016x}-")
    assert "traceparent" not in received[untraced_id].headers


async def test_a_relay_whose_connection_closes_under_its_transaction_keeps_relaying(
    broker, database_url
):
    queue = await work_queue(broker)
    pool = await asyncpg.create_pool(database_url, server_settings={"search_path": "core"})
    relay = OutboxRelay(
        pool, broker, Metrics("relay"), batch=10, poll_interval=0.05, retention_hours=24
    )
    claim = relay.relay_once
    failures = ["cannot call Transaction.__aexit__(): the underlying connection is closed"]

    async def closing_once() -> int:  # what a game day saw when PostgreSQL went away
        if failures:
            raise asyncpg.InterfaceError(failures.pop())
        return await claim()

    relay.relay_once = closing_once  # type: ignore[method-assign]
    running = asyncio.create_task(relay.run())
    message_id = str(uuid.uuid4())
    try:
        async with pool.acquire() as conn, conn.transaction():
            await enqueue(
                conn, refund_command(), exchange=COMMANDS, routing_key=queue, message_id=message_id
            )
        received = await eventually(lambda: drain(broker, queue), within=10)
        assert [message.message_id for message in received] == [message_id]
        assert not failures and not running.done()
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await pool.close()
