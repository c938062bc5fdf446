"""`make bench` (and `make bench-gateway`): the realtime gateway's idle sockets and pushes.

Starts a throwaway stack with two gateway instances behind its NGINX, and a bare aiohttp
WebSocket app (`scripts/hello.py`, the same heartbeat) beside it, then measures:

- memory per idle socket: the gateways' resident memory before and after `BENCH_WS_SOCKETS`
  sockets (5,000: one user each, so one queue binding each) are opened through NGINX, against
  the bare app holding half as many directly (what aiohttp itself costs per socket);
- push latency with every socket open: events announced for random connected users at
  `BENCH_WS_RATE` per second (200) for `BENCH_WS_SECONDS`, as the services announce them (a
  confirmed publish on `relais.events`, copied to `user.<id>`), timed from the event's creation
  to its arrival at the client; against the same publishes consumed straight from a queue.

Not a test: it prints figures and ratios, asserts nothing, and tears everything down.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path

import aio_pika
import aiohttp
import orjson
import uvloop
from redis.asyncio import Redis

from chassis.http import TokenService
from chassis.messaging import (
    EVENTS,
    Broker,
    announcement_headers,
    message_for,
    occurred_at,
    user_key,
)
from chassis.settings import ServiceSettings
from contracts import PaymentSucceeded
from devstack import ROOT, StackSettings, down, program_pids, up
from devstack import start_process as start_program
from devstack.scratch import remove_scratch
from scripts.bench import percentile, throwaway_stack, wait_for

SOCKETS = int(os.environ.get("BENCH_WS_SOCKETS", "5000"))
RATE = float(os.environ.get("BENCH_WS_RATE", "200"))
PUSH_SECONDS = float(os.environ.get("BENCH_WS_SECONDS", "15"))
BARE_PORT = 18190
# Sockets opened at once (each a handshake through NGINX, a token check and a queue binding).
OPENING = 100


def rss_kib(pid: int) -> int:
    """A process's resident memory."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def tokens(config: StackSettings, count: int) -> list[tuple[str, str]]:
    """(user id, access token) for `count` users, signed with the stack's key (the gateway
    checks the token, not the account)."""
    settings = ServiceSettings(
        jwt_private_key_file=config.key_dir / "jwt-private.pem",
        jwt_public_key_file=config.key_dir / "jwt-public.pem",
        access_token_ttl=3600,
    )
    service = TokenService(settings, Redis(), can_sign=True)
    users = [str(uuid.uuid4()) for _ in range(count)]
    return [
        (user, service.issue_pair(user_id=user, role="customer", version=0).access_token)
        for user in users
    ]


class Clients:
    """Many sockets in this process, each noting when its messages arrive."""

    def __init__(self) -> None:
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        self.sockets: list[aiohttp.ClientWebSocketResponse] = []
        self.latencies: list[float] = []
        self._readers: set[asyncio.Task[None]] = set()

    async def open(self, url: str, headers: list[dict[str, str]]) -> None:
        """Open one socket per header set, `OPENING` at a time."""
        for start in range(0, len(headers), OPENING):
            batch = headers[start : start + OPENING]
            opened = await asyncio.gather(
                *(self.session.ws_connect(url, headers=h, autoping=True) for h in batch)
            )
            for ws in opened:
                self.sockets.append(ws)
                task = asyncio.create_task(self._read(ws))
                self._readers.add(task)

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                occurred = datetime.fromisoformat(orjson.loads(message.data)["occurred_at"])
                self.latencies.append(time.time() - occurred.timestamp())

    async def close(self) -> None:
        """Close every socket and the session."""
        await asyncio.gather(*(ws.close() for ws in self.sockets), return_exceptions=True)
        for task in self._readers:
            task.cancel()
        await self.session.close()


def event_for(user: str) -> PaymentSucceeded:
    """A payment event for `user`."""
    return PaymentSucceeded(
        payment_id=uuid.uuid4(),
        order_id=uuid.uuid4(),
        user_id=uuid.UUID(user),
        amount_cents=1250,
        currency="EUR",
    )


async def announce(broker: Broker, users: list[str], rate: float, seconds: float) -> int:
    """Announce events for random users at `rate` per second (paced, confirmed); how many."""
    count, started = int(rate * seconds), time.monotonic()
    in_flight: set[asyncio.Task[None]] = set()
    for index in range(count):
        delay = started + index / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        user = random.choice(users)  # noqa: S311 - a benchmark's draw
        message = message_for(event_for(user), headers=announcement_headers(to_user=user))
        task = asyncio.create_task(broker.publish(EVENTS, "payment.succeeded", message))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    await asyncio.gather(*in_flight)
    return count


async def raw_latencies(amqp_url: str, rate: float, seconds: float) -> list[float]:
    """The same announcements consumed straight from a queue bound to one user's key."""
    broker = await Broker.connect(amqp_url, name="bench-raw")
    latencies: list[float] = []
    user = str(uuid.uuid4())
    try:
        channel = await broker.connection.channel()
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(EVENTS, routing_key=user_key(user))

        async def consume(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            body = orjson.loads(message.body)
            assert body["user_id"] == user
            latencies.append(time.time() - occurred_at(message))
            await message.ack()

        await queue.consume(consume)
        await announce(broker, [user], rate, seconds)
        await asyncio.sleep(0.5)
        await channel.close()
    finally:
        await broker.close()
    return latencies


async def measure(config: StackSettings) -> dict[str, float]:
    """Every figure, with the stack and the bare app running."""
    figures: dict[str, float] = {}
    programs = program_pids(config)
    gateways = [pid for name, pid in programs.items() if name.startswith("gateway-")]
    bare = programs["bare-ws"]
    users = tokens(config, SOCKETS)
    headers = [{"Authorization": f"Bearer {token}"} for _, token in users]
    base = f"ws://127.0.0.1:{config.nginx_port}/ws"
    clients = Clients()
    try:
        # warm-up: every code path taken once, then gone
        await clients.open(base, headers[:OPENING])
        await clients.open(f"ws://127.0.0.1:{BARE_PORT}/ws", headers[:OPENING])
        await clients.close()
        await asyncio.sleep(1)
        clients = Clients()
        before = sum(rss_kib(pid) for pid in gateways)
        bare_before = rss_kib(bare)
        started = time.monotonic()
        await clients.open(base, headers)
        figures["open_seconds"] = time.monotonic() - started
        await clients.open(f"ws://127.0.0.1:{BARE_PORT}/ws", headers[: SOCKETS // 2])
        await asyncio.sleep(3)  # the last bindings, the first heartbeats
        figures["gateway_kib"] = (sum(rss_kib(pid) for pid in gateways) - before) / SOCKETS
        figures["bare_kib"] = (rss_kib(bare) - bare_before) / (SOCKETS // 2)
        broker = await Broker.connect(config.amqp_url, name="bench-announcer")
        try:
            sent = await announce(broker, [user for user, _ in users], RATE, PUSH_SECONDS)
        finally:
            await broker.close()
        await asyncio.sleep(1)
        figures["pushed_kib"] = (sum(rss_kib(pid) for pid in gateways) - before) / SOCKETS
        figures["sent"], figures["received"] = sent, len(clients.latencies)
        figures["p50"] = percentile(clients.latencies, 0.5)
        figures["p99"] = percentile(clients.latencies, 0.99)
    finally:
        await clients.close()
    raw = await raw_latencies(config.amqp_url, RATE, PUSH_SECONDS / 3)
    figures["raw_p50"], figures["raw_p99"] = percentile(raw, 0.5), percentile(raw, 0.99)
    return figures


def main() -> None:
    """Run the measurements and print the figures and ratios."""
    run = uuid.uuid4().hex[:8]
    config = throwaway_stack(
        run, ROOT / "var" / "bench" / "gateway", ai_instances=0, payments_instances=0
    )
    try:
        up(config)
        argv = [sys.executable, "-m", "scripts.hello", "--port", str(BARE_PORT)]
        start_program("bare-ws", argv, dict(os.environ), config)
        wait_for(f"http://127.0.0.1:{BARE_PORT}/api/hello")
        uvloop.install()
        figures = asyncio.run(measure(config))
    finally:
        with contextlib.suppress(Exception):
            down(config)
        remove_scratch(config)

    ms = 1000
    print(f"\nrealtime gateway: {SOCKETS} sockets through NGINX to 2 instances, one user each")
    print(
        f"opened in {figures['open_seconds']:.1f} s; memory per idle socket: gateway "
        f"{figures['gateway_kib']:.1f} KiB, bare aiohttp {figures['bare_kib']:.1f} KiB "
        f"({figures['gateway_kib'] / figures['bare_kib']:.2f}x); target <= 20 KB "
        f"({'meets' if figures['gateway_kib'] * 1.024 <= 20 else 'MISSES'})"
    )
    print(
        f"memory per socket after the pushes below: {figures['pushed_kib']:.1f} KiB "
        "(no per-message deflate: a zlib stream would cost each socket hundreds of KiB)"
    )
    print(
        f"push latency at {RATE:.0f} events/s for {PUSH_SECONDS:.0f} s "
        f"({figures['received']:.0f} of {figures['sent']:.0f} received): "
        f"p50 {figures['p50'] * ms:.1f} ms, p99 {figures['p99'] * ms:.1f} ms; target p99 <= 50 ms "
        f"({'meets' if figures['p99'] <= 0.05 else 'MISSES'})"
    )
    print(
        f"the same publishes consumed straight from a queue: p50 {figures['raw_p50'] * ms:.1f} "
        f"ms, p99 {figures['raw_p99'] * ms:.1f} ms (gateway p99 / raw p99 "
        f"{figures['p99'] / figures['raw_p99']:.1f}x)"
    )


if __name__ == "__main__":
    main()
