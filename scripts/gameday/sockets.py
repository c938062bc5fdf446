"""Customers' WebSockets through NGINX that reconnect as a browser tab would: with the id of the
last event they saw, so the gateway replays what they missed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import aiohttp

if TYPE_CHECKING:
    from scripts.gameday.stack import Customer


@dataclass
class Tab:
    """One socket of a customer, kept open: every event it received, in order, and each
    reconnection."""

    url: str
    customer: Customer
    events: list[str] = field(default_factory=list)
    # the payments whose `payment.succeeded` this tab received
    paid: set[str] = field(default_factory=set)
    reconnects: list[float] = field(default_factory=list)
    refusals: dict[int, int] = field(default_factory=dict)  # handshake status -> count
    connected: bool = False

    async def run(self, http: aiohttp.ClientSession) -> None:
        """Hold the socket open, reconnecting (from the last event) whenever it closes."""
        while True:
            token = self.customer.access
            params = {"access_token": token}
            if self.events:
                params["last_event_id"] = self.events[-1]
            try:
                async with http.ws_connect(self.url, params=params, heartbeat=5.0) as socket:
                    self.connected = True
                    async for message in socket:
                        if message.type == aiohttp.WSMsgType.TEXT:
                            event = json.loads(message.data)
                            self.events.append(event["id"])
                            if event["type"] == "payment.succeeded":
                                self.paid.add(event["data"]["payment_id"])
            except aiohttp.WSServerHandshakeError as exc:
                self.refusals[exc.status] = self.refusals.get(exc.status, 0) + 1
                if exc.status == 401:  # the access token expired: renew it, as a client does
                    await self.customer.renew(http, token)
                    continue
            except (aiohttp.ClientError, TimeoutError):
                pass
            if self.connected:
                self.reconnects.append(time.time())
            self.connected = False
            await asyncio.sleep(0.5)


class Tabs:
    """Two tabs per customer, held open for the whole game day."""

    def __init__(self, base: str, customers: list[Customer]) -> None:
        url = base.replace("http://", "ws://") + "/ws"
        self.by_customer = [[Tab(url, customer), Tab(url, customer)] for customer in customers]
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, http: aiohttp.ClientSession) -> None:
        """Open every tab."""
        self._tasks = [
            asyncio.create_task(tab.run(http)) for tabs in self.by_customer for tab in tabs
        ]

    async def stop(self) -> None:
        """Close every tab."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def all(self) -> list[Tab]:
        """Every tab."""
        return [tab for tabs in self.by_customer for tab in tabs]

    def disagreements(self) -> list[str]:
        """What a customer's two tabs disagree on: from the first event both saw, each must
        have every event once, in the same order."""
        found = []
        for number, (first, second) in enumerate(self.by_customer):
            for tab in (first, second):
                if len(set(tab.events)) != len(tab.events):
                    found.append(f"customer {number}: a tab received an event twice")
            common = set(first.events) & set(second.events)
            if not common:
                continue
            shared = next(event for event in first.events if event in common)
            a = first.events[first.events.index(shared) :]
            b = second.events[second.events.index(shared) :]
            shorter = min(len(a), len(b))
            # the last few may still be on their way to one of the two
            if a[: shorter - 3] != b[: shorter - 3]:
                found.append(f"customer {number}: its tabs saw different events or orders")
        return found
