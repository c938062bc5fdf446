"""`python -m devstack.backup_exporter --port N`: the data safety metrics Prometheus scrapes as
the `backups` job. The newest backup of each type, its size and how many are kept (pgBackRest's
`info`, read at most every 30 s); the newest logical dumps; WAL archiving's archived and failed
segments and their last times (`pg_stat_archiver`); the WAL each replication slot holds back.
The backup alerts read it; the replica's lag is each service's own measurement."""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import asyncpg
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from devstack.backups import CONFIG, STANZA, dumps_root
from devstack.postgres import as_postgres
from devstack.settings import StackSettings

INFO_TTL = 30.0
# Every series it can export (some only once there is something to say: a failure's time).
SERIES = (
    "relais_backup_watch_started_timestamp_seconds",
    "relais_backup_repository_up",
    "relais_backups",
    "relais_backup_newest_timestamp_seconds",
    "relais_backup_newest_size_bytes",
    "relais_backup_dump_newest_timestamp_seconds",
    "relais_wal_archived_total",
    "relais_wal_archive_failed_total",
    "relais_wal_archive_last_success_timestamp_seconds",
    "relais_wal_archive_last_failure_timestamp_seconds",
    "relais_replication_slot_retained_bytes",
)
ARCHIVER = """SELECT archived_count, failed_count,
                     extract(epoch FROM last_archived_time) AS last_archived,
                     extract(epoch FROM last_failed_time) AS last_failed,
                     (SELECT coalesce(json_object_agg(slot_name,
                         pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)), '{}')
                      FROM pg_replication_slots WHERE restart_lsn IS NOT NULL) AS slots
              FROM pg_stat_archiver"""


class DataSafety(Collector):
    """Collects the data safety metrics at each scrape."""

    def __init__(self, config: StackSettings) -> None:
        self.config = config
        self.started = time.time()
        self._info: tuple[float, list[dict[str, Any]] | None] = (0.0, None)

    def backups(self) -> list[dict[str, Any]] | None:
        """The repository's backups (None when pgBackRest cannot say), cached for 30 s."""
        read_at, backups = self._info
        if time.monotonic() - read_at < INFO_TTL:
            return backups
        argv = as_postgres("pgbackrest", f"--config={CONFIG}", f"--stanza={STANZA}")
        result = subprocess.run(
            [*argv, "--output=json", "info"], capture_output=True, text=True, check=False
        )
        try:
            stanzas = json.loads(result.stdout) if result.returncode == 0 else None
        except ValueError:
            stanzas = None
        backups = stanzas[0].get("backup", []) if stanzas else None
        self._info = (time.monotonic(), backups)
        return backups

    def collect(self) -> Iterator[Metric]:
        """Every metric, read now."""
        yield GaugeMetricFamily(
            "relais_backup_watch_started_timestamp_seconds",
            "When this exporter started: the backup age alert's reference while no backup exists.",
            value=self.started,
        )
        backups = self.backups()
        yield GaugeMetricFamily(
            "relais_backup_repository_up",
            "1 when pgBackRest's repository could be read at the last scrape.",
            value=0 if backups is None else 1,
        )
        if backups is not None:
            yield from self._backup_metrics(backups)
        yield from self._dump_metrics()
        yield from self._archive_metrics()

    def _backup_metrics(self, backups: list[dict[str, Any]]) -> Iterator[Metric]:
        kept = GaugeMetricFamily("relais_backups", "Backups kept, by type.", labels=["type"])
        newest = GaugeMetricFamily(
            "relais_backup_newest_timestamp_seconds",
            "When the newest backup of each type finished.",
            labels=["type"],
        )
        size = GaugeMetricFamily(
            "relais_backup_newest_size_bytes",
            "The newest backup's size: the database's, and what the repository stored for it.",
            labels=["what"],
        )
        for kind in ("full", "diff", "incr"):
            of_kind = [entry for entry in backups if entry["type"] == kind]
            kept.add_metric([kind], len(of_kind))
            if of_kind:
                newest.add_metric([kind], of_kind[-1]["timestamp"]["stop"])
        if backups:
            size.add_metric(["database"], backups[-1]["info"]["size"])
            size.add_metric(["stored"], backups[-1]["info"]["repository"]["delta"])
        yield from (kept, newest, size)

    def _dump_metrics(self) -> Iterator[Metric]:
        sums = list(dumps_root(self.config).glob("*/SHA256SUMS"))
        if sums:
            yield GaugeMetricFamily(
                "relais_backup_dump_newest_timestamp_seconds",
                "When the newest logical dumps of the stack's schemas were written.",
                value=max(path.stat().st_mtime for path in sums),
            )

    def _archive_metrics(self) -> Iterator[Metric]:
        try:
            row = asyncio.run(self._archiver())
        except Exception:  # PostgreSQL unreachable, however it fails: these series are absent
            return
        yield CounterMetricFamily(
            "relais_wal_archived", "WAL segments archived.", value=row["archived_count"]
        )
        yield CounterMetricFamily(
            "relais_wal_archive_failed",
            "WAL archiving attempts that failed.",
            value=row["failed_count"],
        )
        for name, column, text in (
            ("success", "last_archived", "the last WAL segment was archived"),
            ("failure", "last_failed", "archiving a WAL segment last failed"),
        ):
            if row[column] is not None:
                yield GaugeMetricFamily(
                    f"relais_wal_archive_last_{name}_timestamp_seconds",
                    f"When {text}.",
                    value=float(row[column]),
                )
        slots = GaugeMetricFamily(
            "relais_replication_slot_retained_bytes",
            "WAL a replication slot holds back on the primary (its replica has not received it).",
            labels=["slot"],
        )
        for slot, retained in json.loads(row["slots"]).items():
            slots.add_metric([slot], float(retained))
        yield slots

    async def _archiver(self) -> asyncpg.Record:
        url = self.config.database_url_of(self.config.monitor_database_user)
        conn = await asyncpg.connect(url, timeout=3)
        try:
            row = await conn.fetchrow(ARCHIVER)
        finally:
            await conn.close()
        assert row is not None
        return row


def serve(config: StackSettings, port: int) -> None:
    """Serve /metrics on 127.0.0.1:`port`."""
    registry = CollectorRegistry()
    registry.register(DataSafety(config))

    async def metrics(_request: web.Request) -> web.Response:
        body = await asyncio.to_thread(generate_latest, registry)
        return web.Response(body=body, content_type="text/plain", charset="utf-8")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    web.run_app(app, host="127.0.0.1", port=port, print=None)


def main() -> None:
    """Run the exporter with the stack's settings from the environment."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    serve(StackSettings(), parser.parse_args().port)


if __name__ == "__main__":
    main()
