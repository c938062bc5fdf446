"""Request/reply over RabbitMQ, bounded by a deadline.

The client publishes to `relais.rpc` with `reply_to` and `correlation_id`. A server's request
queue is auto-deleted with its last consumer, so with no server running the publish is
unroutable and the call fails at once (503) instead of waiting out its deadline (504).

Each request carries when it was sent and when its caller stops waiting (headers, integer
Unix milliseconds: AMQP may carry a float in 32 bits, which cannot hold today's time to the
second): a server counts how long it waited in the queue, and drops, without work, one whose
caller has given up (counted as `expired`). The broker drops those still queued by itself
(`expiration`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, TypeVar

from aio_pika.abc import AbstractIncomingMessage, AbstractQueue, AbstractRobustChannel
from aio_pika.exceptions import PublishError
from aiohttp import web
from pydantic import BaseModel

from chassis.errors import DEPENDENCY_DOWN, DomainError, GatewayTimeout, ServiceUnavailable
from chassis.messaging._amqp import BROKER, RPC, Broker, message_for
from chassis.messaging._envelope import (
    MessageTypes,
    RpcError,
    UnknownContract,
    message_type,
    type_name,
)
from chassis.telemetry import METRICS, Metrics

log = logging.getLogger("relais.rpc")
SENT_AT_HEADER = "x-relais-sent-at"
DEADLINE_HEADER = "x-relais-deadline"
R = TypeVar("R", bound=BaseModel)
# Takes the decoded request (of the model its server was given), returns the reply.
RpcHandler = Callable[[Any], Awaitable[BaseModel]]


def milliseconds(seconds: float) -> int:
    """Unix seconds as the integer milliseconds a header carries."""
    return int(seconds * 1000)


def request_queue(method: str) -> str:
    """The queue a method's servers share."""
    return f"rpc.{method}"


class RpcClient:
    """Calls methods served elsewhere; one exclusive reply queue per process."""

    def __init__(self, broker: Broker, *, service: str) -> None:
        self.broker = broker
        # Named after the service, so that its broker user's permissions can cover it.
        self.reply_queue = f"{service}.replies.{uuid.uuid4().hex}"
        self._pending: dict[str, tuple[asyncio.Future[BaseModel], MessageTypes]] = {}
        self._channel: AbstractRobustChannel | None = None
        self._replies: AbstractQueue | None = None

    async def start(self) -> None:
        """Open the reply queue."""
        channel = await self.broker.connection.channel()
        self._channel = channel
        self._replies = await channel.declare_queue(
            self.reply_queue, exclusive=True, auto_delete=True
        )
        await self._replies.consume(self._on_reply, no_ack=True)

    async def stop(self) -> None:
        """Close the reply channel; pending calls time out."""
        if self._channel is not None:
            await self._channel.close()

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        pending = self._pending.get(message.correlation_id or "")
        if pending is None or pending[0].done():
            return  # a reply that arrived after its deadline
        future, replies = pending
        try:
            future.set_result(replies.decode(message.body))
        except UnknownContract as exc:
            future.set_exception(exc)

    async def call(self, method: str, request: BaseModel, reply: type[R], *, deadline: float) -> R:
        """Send `request` to `method`, wait at most `deadline` seconds for a reply of `reply`."""
        if self._replies is None:
            raise RuntimeError("RpcClient.start() was not awaited")
        correlation_id = uuid.uuid4().hex
        future: asyncio.Future[BaseModel] = asyncio.get_running_loop().create_future()
        self._pending[correlation_id] = (future, MessageTypes([reply, RpcError]))
        sent_at = time.time()
        try:
            message = message_for(
                request,
                persistent=False,
                correlation_id=correlation_id,
                reply_to=self._replies.name,
                expiration=deadline,  # a server does not start on a request nobody awaits
                headers={
                    SENT_AT_HEADER: milliseconds(sent_at),
                    DEADLINE_HEADER: milliseconds(sent_at + deadline),
                },
            )
            try:
                await self.broker.publish(RPC, method, message)
            except PublishError as exc:
                raise ServiceUnavailable(f"no worker serves {method}") from exc
            try:
                answer = await asyncio.wait_for(future, deadline)
            except TimeoutError as exc:
                raise GatewayTimeout(f"{method} did not answer within {deadline:g} s") from exc
        finally:
            self._pending.pop(correlation_id, None)
        if isinstance(answer, RpcError):
            raise RemoteError(answer)
        if not isinstance(answer, reply):
            raise TypeError(f"{method} answered {message_type(answer)}, expected {reply.__name__}")
        return answer


class RemoteError(DomainError):
    """The server refused the request; rendered with the server's status."""

    slug, title = "remote-error", "The worker refused the request"

    def __init__(self, error: RpcError) -> None:
        # a worker whose own dependency is down: the caller retries, as after any 503
        retry = {"Retry-After": "1"} if error.status == 503 else None
        super().__init__(error.detail, headers=retry)
        self.status, self.slug, self.title = error.status, error.slug, error.title


class RpcServer:
    """Serves one method from its shared, auto-deleted request queue."""

    def __init__(
        self,
        broker: Broker,
        method: str,
        handler: RpcHandler,
        *,
        request: type[BaseModel],
        prefetch: int,
        metrics: Metrics | None = None,
        concurrency: int | None = None,
    ) -> None:
        self.broker = broker
        self.method = method
        self.handler = handler
        self.requests = MessageTypes([request])
        self.prefetch = prefetch
        self.metrics = metrics
        # Requests handled at once (the rest of the prefetched ones wait, and may expire).
        self._slots = asyncio.Semaphore(concurrency or prefetch)
        self._channel: AbstractRobustChannel | None = None

    async def start(self) -> None:
        """Declare the request queue, bind it and consume."""
        channel = await self.broker.connection.channel(publisher_confirms=False)
        self._channel = channel
        await channel.set_qos(prefetch_count=self.prefetch)
        queue = await channel.declare_queue(
            request_queue(self.method), durable=False, auto_delete=True
        )
        await queue.bind(RPC, routing_key=self.method)
        if self.metrics is not None:
            self.metrics.declare_rpc(self.method)
        await queue.consume(self._on_request)

    async def stop(self) -> None:
        """Stop serving (the queue goes with the last server)."""
        if self._channel is not None:
            await self._channel.close()

    async def _on_request(self, message: AbstractIncomingMessage) -> None:
        async with self._slots:
            await self._handle(message)

    async def _handle(self, message: AbstractIncomingMessage) -> None:
        headers = message.headers or {}
        taken = time.time()
        sent_at, deadline = headers.get(SENT_AT_HEADER), headers.get(DEADLINE_HEADER)
        if self.metrics is not None and isinstance(sent_at, int):
            self.metrics.rpc_waited(self.method, max(taken - sent_at / 1000, 0.0))
        if isinstance(deadline, int) and taken > deadline / 1000:
            # Its caller has answered 504 already: no work, no reply.
            log.info("%s: a request past its deadline dropped", self.method)
            if self.metrics is not None:
                self.metrics.rpc_served(self.method, "expired", 0.0)
            await message.ack()
            return
        answer: BaseModel
        outcome = "ok"
        try:
            answer = await self.handler(self.requests.decode(message.body))
        except DomainError as exc:  # the request's own fault (a file that is not an image…)
            answer, outcome = (
                RpcError(status=exc.status, detail=exc.detail, slug=exc.slug, title=exc.title),
                "refused",
            )
        except (UnknownContract, ValueError) as exc:
            answer, outcome = RpcError(status=400, detail=str(exc)), "refused"
        except DEPENDENCY_DOWN as exc:  # the worker's database or cache: retry, not a bug
            log.warning("%s: a dependency is unavailable: %r", self.method, exc)
            answer = RpcError(
                status=503,
                detail=f"{self.method}: a dependency of the worker is unavailable; retry shortly",
                slug="service-unavailable",
                title="Service unavailable",
            )
            outcome = "unavailable"
        except Exception:
            log.exception("%s failed", self.method)
            answer, outcome = RpcError(status=500, detail=f"{self.method} failed"), "error"
        if self.metrics is not None:
            self.metrics.rpc_served(self.method, outcome, time.time() - taken)
        if message.reply_to and self._channel is not None:
            # On the request's own channel, unconfirmed: a reply whose caller is gone (its
            # exclusive queue with it) has nobody to tell, and a confirm round trip per reply
            # cost the worker's event loop a fifth of its time.
            reply = message_for(answer, persistent=False, correlation_id=message.correlation_id)
            await self._channel.default_exchange.publish(reply, message.reply_to)
        await message.ack()


# A service's RPC handler also takes its app (a `handlers.py` table entry).
AppRpcHandler = Callable[[web.Application, Any], Awaitable[BaseModel]]


@contextlib.asynccontextmanager
async def serving_rpcs(
    app: web.Application,
    handlers: Mapping[type[BaseModel], AppRpcHandler],
    *,
    prefetch: int,
    concurrency: int | None = None,
) -> AsyncIterator[None]:
    """Serve each request type of `handlers` on the method its type names, for the block:
    `prefetch` requests taken from the broker at once, `concurrency` of them handled at once."""
    servers = [
        RpcServer(
            app[BROKER],
            type_name(request),
            functools.partial(handler, app),
            request=request,
            prefetch=prefetch,
            metrics=app.get(METRICS),
            concurrency=concurrency,
        )
        for request, handler in handlers.items()
    ]
    for server in servers:
        await server.start()
    try:
        yield
    finally:
        for server in servers:
            await server.stop()
