"""Every alert's life during a game day: when Prometheus fired it, which receiver took it or which
alert inhibited it in Alertmanager, and when it resolved."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import aiohttp

# How often the watch looks (Prometheus evaluates every second on a game day).
POLL = 0.5


@dataclass
class Episode:
    """One alert (one set of labels) from the moment it fired to the moment it resolved."""

    labels: dict[str, str]
    fired_at: float
    resolved_at: float | None = None
    # receiver -> when its first notification of this episode arrived
    notified: dict[str, float] = field(default_factory=dict)
    resolved_notified: dict[str, float] = field(default_factory=dict)
    inhibited_by: set[str] = field(default_factory=set)

    @property
    def name(self) -> str:
        """The alert's name."""
        return self.labels["alertname"]

    def matches(self, name: str, labels: dict[str, str]) -> bool:
        """Whether this is alert `name` with at least `labels`."""
        return self.name == name and all(self.labels.get(k) == v for k, v in labels.items())

    def describe(self) -> str:
        """The alert and its distinguishing labels, for a report."""
        shown = ("service", "queue", "job", "method", "slo")
        where = ", ".join(f"{k}={self.labels[k]}" for k in shown if k in self.labels)
        return f"{self.name}{{{where}}}" if where else self.name


def _key(labels: dict[str, str]) -> frozenset[tuple[str, str]]:
    return frozenset(labels.items())


class AlertWatch:
    """Polls Prometheus' alerts, Alertmanager's and the receiver's notifications."""

    def __init__(self, prometheus: str, alertmanager: str, store: Path) -> None:
        self.prometheus, self.alertmanager, self.store = prometheus, alertmanager, store
        self.episodes: list[Episode] = []
        self._open: dict[frozenset[tuple[str, str]], Episode] = {}
        self._read = 0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> AlertWatch:
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self._http.close()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError, ValueError):
                await self.poll()
            await asyncio.sleep(POLL)

    async def poll(self) -> None:
        """Look once at the three."""
        now = time.time()
        async with self._http.get(f"{self.prometheus}/api/v1/alerts") as response:
            alerts = (await response.json())["data"]["alerts"]
        firing = {_key(a["labels"]): a["labels"] for a in alerts if a["state"] == "firing"}
        for key, labels in firing.items():
            if key not in self._open:
                self._open[key] = Episode(labels, now)
                self.episodes.append(self._open[key])
        for key in set(self._open) - set(firing):
            self._open.pop(key).resolved_at = now
        async with self._http.get(f"{self.alertmanager}/api/v2/alerts") as response:
            held = await response.json()
        names = {alert["fingerprint"]: alert["labels"]["alertname"] for alert in held}
        for alert in held:
            episode = self._open.get(_key(alert["labels"]))
            for fingerprint in alert["status"].get("inhibitedBy") or []:
                if episode is not None:
                    episode.inhibited_by.add(names.get(fingerprint, fingerprint))
        self._read_notifications()

    def _read_notifications(self) -> None:
        if not self.store.exists():
            return
        with self.store.open() as file:
            file.seek(self._read)
            lines = file.readlines()
            self._read = file.tell()
        for line in lines:
            if not line.endswith("\n"):  # a line still being written: read it next time
                self._read -= len(line.encode())
                break
            note = json.loads(line)
            at = datetime.fromisoformat(note["received_at"]).timestamp()
            for alert in note["alerts"]:
                episode = self.latest(alert["labels"], before=at)
                if episode is None:
                    continue
                notes = (
                    episode.notified if alert["status"] == "firing" else episode.resolved_notified
                )
                notes.setdefault(note["receiver"], at)

    def latest(self, labels: dict[str, str], before: float) -> Episode | None:
        """The last episode of exactly these labels that fired before `before`."""
        key = _key(labels)
        found = [e for e in self.episodes if _key(e.labels) == key and e.fired_at <= before + 5]
        return found[-1] if found else None

    def first(self, name: str, labels: dict[str, str], since: float) -> Episode | None:
        """The first episode of alert `name` (with at least `labels`) that fired since `since`."""
        found = [e for e in self.episodes if e.matches(name, labels) and e.fired_at >= since]
        return found[0] if found else None

    def firing(self, name: str, labels: dict[str, str] | None = None) -> list[Episode]:
        """The episodes of alert `name` firing now."""
        return [e for e in self._open.values() if e.matches(name, labels or {})]

    def open_episodes(self) -> list[Episode]:
        """Every alert firing now."""
        return list(self._open.values())
