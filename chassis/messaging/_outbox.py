"""Transactional outbox and idempotent consumption, in each service's own schema.

A service writes its change and the message announcing it in one transaction (`enqueue`); the
`OutboxRelay` publishes unsent rows with confirms and marks them sent. Several relays share the
table: each claims rows with `FOR UPDATE SKIP LOCKED`, so no row is published twice at once.
A consumer records each message id in `processed_messages` in the transaction of its effect
(`first_delivery`), so a redelivered message has no second effect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aio_pika
import asyncpg
import orjson
from aiohttp import web
from pydantic import BaseModel

from chassis.data import DB_POOL, Conn, execute_counted
from chassis.errors import DATABASE_FAILURES
from chassis.messaging._amqp import BROKER, EVENTS, Broker, announcement_headers
from chassis.messaging._envelope import encode, message_type
from chassis.messaging._listen import PG_LISTENER
from chassis.settings import SETTINGS
from chassis.tasks import background, repeat
from chassis.telemetry import METRICS, Metrics, attached, context_headers

log = logging.getLogger("relais.outbox")


# The namespace of message ids derived from what a message is about.
MESSAGE_IDS = uuid.UUID("5d0a4a8e-2f0b-4e1b-9c55-6a1f1f1f0001")


def derived_message_id(*subject: object) -> str:
    """A message id derived from what the message is about (an event and its payment, a
    webhook's event id): enqueued twice, it is published once and consumed once."""
    return str(uuid.uuid5(MESSAGE_IDS, ":".join(map(str, subject))))


def wake_channel(schema: str) -> str:
    """The NOTIFY channel an insert into `schema`'s outbox signals."""
    return f"{schema}_outbox"


async def enqueue(
    conn: Conn,
    contract: BaseModel,
    *,
    exchange: str,
    routing_key: str | None = None,
    message_id: str | None = None,
    to_user: object | None = None,
) -> None:
    """Add a message to the outbox, in the caller's transaction (an id makes it idempotent);
    `to_user` also routes it to that user's sockets (`user.<id>`, in RabbitMQ's `CC`).

    The row keeps the current trace context: the relay publishes it under that context, so the
    message belongs to the trace of the request or message that caused it. It keeps the time
    too: when the fact happened, not when the relay got to it."""
    headers = {**context_headers(), **announcement_headers(to_user=to_user)}
    await conn.execute(
        """INSERT INTO outbox (message_id, exchange, routing_key, type, body, headers)
           VALUES (coalesce($1::uuid, gen_random_uuid()), $2, $3, $4, $5,
                   coalesce($6::jsonb, '{}'))
           ON CONFLICT (message_id) DO NOTHING""",
        message_id,
        exchange,
        routing_key or message_type(contract),
        message_type(contract),
        encode(contract),
        orjson.dumps(headers).decode(),
    )


async def announce(
    conn: Conn, event: BaseModel, *, about: tuple[object, ...], to_user: object | None = None
) -> None:
    """Announce a domain event on `relais.events` in the caller's transaction, once for what it
    is `about` (its id derives from its type and that), and (`to_user`) to that user's sockets."""
    await enqueue(
        conn,
        event,
        exchange=EVENTS,
        message_id=derived_message_id(message_type(event), *about),
        to_user=to_user,
    )


async def first_delivery(conn: Conn, *, consumer: str, message_id: str | None) -> bool:
    """Record a message as processed by `consumer`; False if it already was (skip the effect)."""
    if not message_id:
        raise ValueError("a message without message_id cannot be consumed idempotently")
    inserted = await conn.fetchval(
        """INSERT INTO processed_messages (consumer, message_id) VALUES ($1, $2)
           ON CONFLICT DO NOTHING RETURNING true""",
        consumer,
        message_id,
    )
    return bool(inserted)


class OutboxRelay:
    """Publishes a schema's outbox rows in id order, `batch` at a time, with confirms."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        broker: Broker,
        metrics: Metrics,
        *,
        batch: int,
        poll_interval: float,
        retention_hours: int,
        linger: float = 0.0,
    ) -> None:
        self.pool = pool
        self.broker = broker
        self.metrics = metrics
        self.batch = batch
        self.poll_interval = poll_interval
        self.retention_hours = retention_hours
        self.linger = linger
        self.wake = asyncio.Event()
        self._lag = metrics.outbox_lag.labels(metrics.service)
        self._published = metrics.outbox_published.labels(metrics.service)

    def notify(self, payload: str = "") -> None:
        """Wake the relay: rows were committed."""
        self.wake.set()

    async def run(self) -> None:
        """Relay for the app's life; woken by NOTIFY, polling as a fallback."""
        while True:
            self.wake.clear()
            try:
                published = await self.relay_once()
            except DATABASE_FAILURES as exc:
                log.warning("outbox relay: database unavailable (%r)", exc)
                published = 0
            if published < self.batch:  # drained (or failing): wait for news
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), self.poll_interval)
                if self.linger:  # let the rows of concurrent transactions join this batch
                    await asyncio.sleep(self.linger)

    async def relay_once(self) -> int:
        """Publish one batch of unsent rows; how many were confirmed."""
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                """SELECT id, message_id, exchange, routing_key, type, body, headers, created_at
                   FROM outbox WHERE sent_at IS NULL ORDER BY id
                   LIMIT $1 FOR UPDATE SKIP LOCKED""",
                self.batch,
            )
            if not rows:
                self._lag.set(0)
                return 0
            self._lag.set((datetime.now(UTC) - rows[0]["created_at"]).total_seconds())
            # Confirms awaited together: one broker round trip for the batch, not one per row.
            outcomes = await asyncio.gather(
                *(self._publish(row) for row in rows), return_exceptions=True
            )
            sent = [row["id"] for row, outcome in zip(rows, outcomes, strict=True) if not outcome]
            failed = [outcome for outcome in outcomes if outcome]
            if failed:
                log.warning("outbox relay: %d unconfirmed, first: %r", len(failed), failed[0])
            if sent:
                await conn.execute(
                    "UPDATE outbox SET sent_at = clock_timestamp() WHERE id = ANY($1::bigint[])",
                    sent,
                )
        self._published.inc(len(sent))
        return len(sent) if not failed else 0

    async def _publish(self, row: asyncpg.Record) -> BaseException | None:
        headers: dict[str, Any] = orjson.loads(row["headers"]) if row["headers"] else {}
        message = aio_pika.Message(
            row["body"],
            message_id=str(row["message_id"]),
            type=row["type"],
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            timestamp=row["created_at"],
            headers=headers,
        )
        with attached(headers):  # the publish joins the trace of the row's writer
            await self.broker.publish(row["exchange"], row["routing_key"], message)
        return None

    async def purge_sent(self) -> int:
        """Forget rows sent longer ago than the retention; how many."""
        return await execute_counted(
            self.pool,
            "DELETE FROM outbox WHERE sent_at < now() - make_interval(hours => $1)",
            self.retention_hours,
        )


async def outbox_relay(app: web.Application) -> AsyncIterator[None]:
    """Run the service's outbox relay for the app's life."""
    settings = app[SETTINGS]
    relay = OutboxRelay(
        app[DB_POOL],
        app[BROKER],
        app[METRICS],
        batch=settings.outbox_batch,
        poll_interval=settings.outbox_poll_interval,
        retention_hours=settings.outbox_retention_hours,
        linger=settings.outbox_linger_ms / 1000,
    )
    app[PG_LISTENER].subscribe(wake_channel(settings.database_schema), relay.notify)
    purge = repeat(relay.purge_sent, every=3600, what="purging sent outbox rows")
    async with background(app, relay.run(), "outbox-relay"), background(app, purge, "outbox-purge"):
        yield
