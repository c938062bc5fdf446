"""The hub: which sockets this instance holds for which user, and the broker bindings that bring
exactly those users' events here.

Routing, not broadcast: the instance's queue (exclusive to it) is bound to `user.<id>` on
`relais.events` while at least one socket of that user is open here, and unbound when the last
one closes; every event a service announces for a user carries that key in `CC`. An event so
reaches only the instances holding its user, and each sends it to every socket of the user.

Each socket has a bounded send queue written by a task that exists only while something waits:
an idle socket costs no task. A socket whose queue overflows (a client that does not read) is
closed with 1013 rather than buffered without end.

A reconnecting client passes the id of the last event it received: the journal's events after
it are sent first, in order, then the events that arrived meanwhile, less those the catch-up
already sent. An id the journal no longer holds gets a `resync` message, then everything kept.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson
from aio_pika.abc import AbstractIncomingMessage
from aiohttp import WSCloseCode, web
from opentelemetry import context as otel_context
from opentelemetry import trace
from pydantic import BaseModel

from chassis.http import Revocations
from gateway.metrics import GatewayMetrics
from gateway.push.repository import Journal

log = logging.getLogger("relais.gateway")
tracer = trace.get_tracer("relais.gateway")

# Ids of the events this instance pushed lately: a copy the broker delivers again (the outbox
# publishes at least once) is not pushed twice.
RECENT_EVENTS = 10_000
# How long a socket being closed may take to answer the close frame before it is cut off.
CLOSE_GRACE = 2.0
# The payload fields every contract carries, which the message says in its own `type`.
ENVELOPE_FIELDS = frozenset({"type", "version"})


# A message as the broker delivered it, with the trace context of its delivery; an event as it
# arrived, as a push.
Delivery = tuple[AbstractIncomingMessage, otel_context.Context]
Arrival = tuple["Push", otel_context.Context]


class Token(NamedTuple):
    """What a socket keeps of its access token: when it expires, and what its revocation is
    looked up by (a tuple: every open socket holds one)."""

    expires_at: int
    jti: str
    family: str
    user_id: str
    version: Any

    @classmethod
    def of(cls, claims: dict[str, Any]) -> Token:
        """The parts of verified claims a socket keeps."""
        return cls(claims["exp"], claims["jti"], claims["fid"], claims["sub"], claims.get("ver", 0))

    def claims(self) -> dict[str, Any]:
        """The claims the revocation check reads."""
        return {"jti": self.jti, "fid": self.family, "sub": self.user_id, "ver": self.version}


@dataclass(frozen=True, slots=True)
class Push:
    """One event as a socket receives it: `{id, type, occurred_at, data}`, serialised once."""

    id: str
    type: str
    user_id: str
    occurred_at: float
    text: str


def push_of(event: BaseModel, *, event_id: str, occurred_at: float) -> Push:
    """The message that tells an event's user about it."""
    body = event.model_dump(mode="json", exclude=set(ENVELOPE_FIELDS))
    kind = str(getattr(event, "type", "event"))
    user_id = str(body["user_id"])
    text = orjson.dumps(
        {"id": event_id, "type": kind, "occurred_at": _iso(occurred_at), "data": body}
    ).decode()
    return Push(event_id, kind, user_id, occurred_at, text)


def resync_message(reason: str) -> str:
    """The control message that says the client may have missed events it cannot get back."""
    return orjson.dumps(
        {"id": None, "type": "resync", "occurred_at": _iso(time.time()), "data": {"reason": reason}}
    ).decode()


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds")


class Socket:
    """One client connection: its user, its token, and what waits to be sent to it."""

    __slots__ = (
        "__weakref__",
        "_held",
        "_queue",
        "_replayed",
        "_writer",
        "closing",
        "hub",
        "token",
        "transport",
        "user_id",
        "ws",
    )

    def __init__(
        self,
        hub: Hub,
        ws: web.WebSocketResponse,
        transport: asyncio.Transport | None,
        user_id: str,
        token: Token,
    ) -> None:
        self.hub = hub
        self.ws = ws
        self.transport = transport
        self.user_id = user_id
        self.token = token
        self.closing: str | None = None  # why the gateway closes it, once it does
        self._queue: collections.deque[Push] | None = None
        self._writer: asyncio.Task[None] | None = None
        # While a reconnecting client catches up, live events wait here; the events it was
        # sent from the journal are not sent again when they arrive live.
        self._held: list[Push] | None = None
        self._replayed: set[str] | None = None

    def offer(self, push: Push) -> None:
        """Queue a message; a socket too far behind is closed (1013) instead."""
        if self.closing is not None:
            return
        if self._held is not None:
            self._held.append(push)
            return
        if self._replayed is not None and push.id in self._replayed:
            self._replayed.discard(push.id)
            return
        queue = self._queue
        if queue is None:
            queue = self._queue = collections.deque()
        if len(queue) >= self.hub.send_queue:
            self.drop("slow_client", WSCloseCode.TRY_AGAIN_LATER, "Too far behind; reconnect")
            return
        queue.append(push)
        if self._writer is None:
            self._writer = asyncio.create_task(self._write())

    async def _write(self) -> None:
        queue, metrics = self._queue, self.hub.metrics
        try:
            while queue and self.closing is None:
                push = queue.popleft()
                await self.ws.send_str(push.text)
                metrics.latency.observe(max(0.0, time.time() - push.occurred_at))
                metrics.sent(push.type, "live")
        except (ConnectionError, RuntimeError) as exc:  # closed under it: the reader ends it
            log.debug("push to a closing socket failed: %r", exc)
        finally:
            self._queue, self._writer = None, None

    def hold(self) -> None:
        """Keep live events aside while the client catches up."""
        self._held = []

    def first_held(self) -> str | None:
        """The id of the first live event that arrived while the client catches up."""
        return self._held[0].id if self._held else None

    async def catch_up(self, kept: Iterable[tuple[str, str]], *, resync: str | None) -> None:
        """Send what the client missed (`kept`: id and message), then the events held
        meanwhile that it did not already get."""
        sent: set[str] = set()
        if resync is not None:
            await self.ws.send_str(resync_message(resync))
        for event_id, message in kept:
            await self.ws.send_str(message)
            sent.add(event_id)
            self.hub.metrics.sent(orjson.loads(message)["type"], "replay")
        held, self._held = self._held or [], None
        self._replayed = sent or None
        for push in held:
            self.offer(push)

    def drop(self, reason: str, code: int, message: str) -> None:
        """Close the socket for `reason` (once), without waiting for the client."""
        if self.closing is not None:
            return
        self.closing = reason
        self.hub.metrics.dropped(reason)
        self.hub.later(self._close(code, message))

    async def _close(self, code: int, message: str) -> None:
        # A client that reads nothing never takes the close frame either: cut it off.
        try:
            await asyncio.wait_for(self.ws.close(code=code, message=message.encode()), CLOSE_GRACE)
        except TimeoutError:
            if self.transport is not None:
                self.transport.abort()


class Hub:
    """The sockets of this instance by user, and the queue bindings that follow them."""

    def __init__(
        self,
        metrics: GatewayMetrics,
        journal: Journal,
        *,
        send_queue: int,
        sockets_per_user: int,
    ) -> None:
        self.metrics = metrics
        self.journal = journal
        self.send_queue = send_queue
        self.sockets_per_user = sockets_per_user
        # A list, not a set: most users hold one socket, and an empty set costs 216 bytes.
        self.users: dict[str, list[Socket]] = {}
        self._bound: set[str] = set()
        self._binding: dict[str, list[Any]] = {}
        self._bind: Callable[[str], Awaitable[None]] | None = None
        self._unbind: Callable[[str], Awaitable[None]] | None = None
        self._recent: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._pending: set[asyncio.Task[None]] = set()

    def route_with(
        self, bind: Callable[[str], Awaitable[None]], unbind: Callable[[str], Awaitable[None]]
    ) -> None:
        """How to bind and unbind the instance's queue to a user's events."""
        self._bind, self._unbind = bind, unbind

    def full(self, user_id: str) -> bool:
        """Whether the user holds as many sockets here as one may."""
        return len(self.users.get(user_id, ())) >= self.sockets_per_user

    async def join(self, socket: Socket) -> None:
        """Take a socket in; its user's events are routed here once this returns."""
        self.users.setdefault(socket.user_id, []).append(socket)
        self.metrics.connections.inc()
        await self._follow(socket.user_id)

    def leave(self, socket: Socket) -> None:
        """Let a closed socket go; the last of its user's unbinds the user (in a task of its
        own: aiohttp cancels the handler of a socket whose connection is gone)."""
        sockets = self.users.get(socket.user_id)
        if sockets is None or socket not in sockets:
            return
        sockets.remove(socket)
        self.metrics.connections.dec()
        if not sockets:
            del self.users[socket.user_id]
            self.later(self._follow(socket.user_id))

    async def _follow(self, user_id: str) -> None:
        """Bind or unbind the user to match whether any socket of theirs is open (one change
        of a user's binding at a time; a reconnect during an unbind binds again after it)."""
        # A lock per user only while someone follows them (a lock per socket open would cost
        # memory per socket); the count says when the last one is done with it.
        entry = self._binding.get(user_id)
        if entry is None:
            entry = self._binding[user_id] = [asyncio.Lock(), 0]
        entry[1] += 1
        try:
            async with entry[0]:
                wanted = user_id in self.users
                if wanted and user_id not in self._bound and self._bind is not None:
                    await self._bind(user_id)
                    self._bound.add(user_id)
                elif not wanted and user_id in self._bound and self._unbind is not None:
                    self._bound.discard(user_id)
                    await self._unbind(user_id)
                self.metrics.users.set(len(self._bound))
        finally:
            entry[1] -= 1
            if not entry[1]:
                del self._binding[user_id]

    def first_time(self, event_id: str) -> bool:
        """Whether this instance has not pushed this event yet (and remember it)."""
        recent = self._recent
        if event_id in recent:
            return False
        recent[event_id] = None
        if len(recent) > RECENT_EVENTS:
            recent.popitem(last=False)
        return True

    async def record(self, arrivals: Sequence[Arrival]) -> None:
        """Journal events in the order they came, in one round trip (the journal queue's one
        active consumer is the journal's only writer: its order is the order of announcement)."""
        added = await self.journal.record(
            [(push.user_id, push.id, push.text) for push, _ in arrivals]
        )
        self.metrics.journaled.inc(sum(added))

    def push(self, arrivals: Sequence[Arrival]) -> None:
        """Send events that came to this instance's queue to every socket of their user here."""
        for push, parent in arrivals:
            sockets = list(self.users.get(push.user_id, ())) if self.first_time(push.id) else []
            for socket in sockets:
                socket.offer(push)
            span = tracer.start_span(f"push {push.type}", context=parent)
            span.set_attribute("relais.event_id", push.id)
            span.set_attribute("relais.sockets", len(sockets))
            span.end()

    def sockets(self) -> list[Socket]:
        """Every socket open here."""
        return [socket for sockets in self.users.values() for socket in sockets]

    async def check_tokens(self, revocations: Revocations) -> int:
        """Close the sockets whose token expired or was revoked since they opened; how many."""
        now = time.time()
        open_sockets = [socket for socket in self.sockets() if socket.closing is None]
        expired = [socket for socket in open_sockets if socket.token.expires_at <= now]
        for socket in expired:
            socket.drop("token_expired", WSCloseCode.POLICY_VIOLATION, "Token expired")
        alive = [socket for socket in open_sockets if socket.token.expires_at > now]
        refusals = await revocations.refusals([socket.token.claims() for socket in alive])
        revoked = [socket for socket, reason in zip(alive, refusals, strict=True) if reason]
        for socket in revoked:
            socket.drop("token_revoked", WSCloseCode.POLICY_VIOLATION, "Token revoked")
        return len(expired) + len(revoked)

    def later(self, work: Awaitable[None]) -> None:
        """Run `work` in a task of the hub's (closes and unbinds: neither may stall, nor die
        with, the task that asked for it)."""

        async def run() -> None:
            try:
                await work
            except Exception as exc:  # a transport or a channel already gone
                log.warning("socket housekeeping failed: %r", exc)

        task = asyncio.create_task(run())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def close_all(self, *, grace: float) -> None:
        """Close every socket with 1001 (going away), waiting up to `grace` seconds for them."""
        for socket in self.sockets():
            socket.drop("shutdown", WSCloseCode.GOING_AWAY, "Server shutting down")
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=grace)


class Inbox:
    """The deliveries of one queue, handled in batches in the order they came by one task (a
    task per delivery, as consumers get by default, would reorder them)."""

    def __init__(
        self,
        handle: Callable[
            [list[tuple[AbstractIncomingMessage, otel_context.Context]]], Awaitable[None]
        ],
        *,
        batch: int,
    ) -> None:
        self._handle = handle
        self._batch = batch
        self._waiting: asyncio.Queue[Delivery] = asyncio.Queue()

    async def put(self, message: AbstractIncomingMessage) -> None:
        """The queue's consume callback: take the delivery, with its trace context."""
        self._waiting.put_nowait((message, otel_context.get_current()))

    async def run(self) -> None:
        """Handle what waits, a batch at a time, for the app's life."""
        waiting = self._waiting
        while True:
            batch = [await waiting.get()]
            while not waiting.empty() and len(batch) < self._batch:
                batch.append(waiting.get_nowait())
            await self._handle(batch)
