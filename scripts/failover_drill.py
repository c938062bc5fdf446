"""`make failover-drill`: lose the primary under a trickle of checkouts, promote its streaming
replica, and measure what that cost.

A pair of clusters of the drill's own (a primary and a replica streaming from it through a
slot, asynchronously, as `REPLICA=1` runs one) and a stack on free ports whose services list
both (`DATABASE_HOST=primary,replica`: each connection goes to the server that takes writes).
Shoppers check out through NGINX without pause; the drill stops the primary as a crash would
(`pg_ctl stop -m immediate`), promotes the replica, and the services' next connections find it.
It reports the seconds without a successful checkout, how many checkouts failed meanwhile, and
how many checkouts the API had confirmed that the promoted replica does not hold (committed on
the primary, not yet replicated: what asynchronous replication loses), then checks the books
on the promoted server. The report lands in var/reports/failover-drill.json. The machine's own
PostgreSQL is not touched."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg

from devstack.backups import COUNTS, data_checks, described
from devstack.broker import drop_broker
from devstack.postgres import (
    as_postgres,
    cluster_dir,
    pg_ctl,
    read_cluster,
    remove_cluster_dir,
    run,
    start_cluster,
    stop_cluster,
    write_server_config,
)
from devstack.scratch import clean_redis, free_ports, run_devstack, scratch_stack
from devstack.settings import ROOT, StackSettings
from scripts.checkouts import CheckoutFailed, Shop

SHOPPERS = 3
WARMUP = 15.0  # seconds of checkouts before the primary is lost
AFTER = 15.0  # seconds of checkouts once they succeed again
RESUME_LIMIT = 90.0  # the drill fails if no checkout succeeds within this after the loss
CHECKOUT_LIMIT = 15.0
SETTLE_LIMIT = 60.0  # what was in flight at the loss settles within this
REPORT = ROOT / "var" / "reports" / "failover-drill.json"


@dataclass
class Attempt:
    """One checkout: when it started and ended (monotonic seconds), its order or its error."""

    started: float
    ended: float
    order: str | None
    error: str | None = None


@dataclass
class Pair:
    """The drill's primary and replica: their folders' names and ports."""

    run: str
    bin: Path
    primary_port: int
    replica_port: int
    made: list[str] = field(default_factory=list)

    def path(self, role: str) -> Path:
        """The data folder of `primary` or `replica`."""
        return Path("/var/lib/postgresql/relais") / f"drill-{self.run}-{role}"

    def url(self, port: int, database: str = "postgres") -> str:
        """The administrator's DSN on one of them."""
        return f"postgresql://postgres@127.0.0.1:{port}/{database}"

    def start(self) -> None:
        """initdb and start the primary; stream a replica of it through a slot and start it."""
        primary = cluster_dir(f"drill-{self.run}-primary")
        self.made.append("primary")
        run(
            as_postgres(self.bin / "initdb", "-D", primary, "-U", "postgres", "--auth=trust"),
            capture=True,
        )
        write_server_config(primary, self.primary_port)
        start_cluster(self.bin, primary)
        replica = cluster_dir(f"drill-{self.run}-replica")
        self.made.append("replica")
        run(
            as_postgres(
                self.bin / "pg_basebackup",
                "--host=127.0.0.1",
                f"--port={self.primary_port}",
                "--username=postgres",
                f"--pgdata={replica}",
                "--wal-method=stream",
                "--write-recovery-conf",
                "--slot=drill",
                "--create-slot",
                "--checkpoint=fast",
            ),
            capture=True,
        )
        write_server_config(replica, self.replica_port, hot_standby="on")
        start_cluster(self.bin, replica)

    def remove(self) -> None:
        """Stop both and remove their folders."""
        for role in self.made:
            with contextlib.suppress(SystemExit):
                stop_cluster(self.bin, self.path(role), "immediate")
            remove_cluster_dir(f"drill-{self.run}-{role}")


async def shopper(
    http: aiohttp.ClientSession, shop: Shop, attempts: list[Attempt], stop: asyncio.Event
) -> None:
    """Check out one after another until `stop`, recording each attempt."""
    number = 0
    while not stop.is_set():
        started = time.monotonic()
        try:
            order = await asyncio.wait_for(shop.checkout(http, number), CHECKOUT_LIMIT)
        except (CheckoutFailed, aiohttp.ClientError, TimeoutError, ValueError) as error:
            attempts.append(Attempt(started, time.monotonic(), None, repr(error)[:300]))
            await asyncio.sleep(0.2)
        else:
            attempts.append(Attempt(started, time.monotonic(), order))
        number += 1


async def replication_behind(url: str) -> dict[str, float | None]:
    """The primary's view of its replica: bytes not yet replayed, and the replay lag."""
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow(
            """SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) AS bytes,
                      extract(epoch FROM replay_lag) AS seconds
               FROM pg_stat_replication LIMIT 1"""
        )
    finally:
        await conn.close()
    if row is None:
        return {"bytes": None, "seconds": None}
    return {"bytes": float(row["bytes"]), "seconds": float(row["seconds"] or 0.0)}


async def held(url: str, orders: list[str]) -> set[str]:
    """The orders of `orders` whose payment succeeded on the server at `url`."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            """SELECT o.id::text FROM core.orders o
               JOIN payments.payments p ON p.order_id = o.id AND p.status = 'succeeded'
               WHERE o.id = ANY($1::uuid[])""",
            orders,
        )
    finally:
        await conn.close()
    return {row["id"] for row in rows}


async def drill(pair: Pair, config: StackSettings) -> dict[str, object]:
    """The trickle, the loss, the promotion; the figures."""
    attempts: list[Attempt] = []
    stop = asyncio.Event()
    async with aiohttp.ClientSession() as http:
        shop = await Shop.open(http, config)
        shoppers = [
            asyncio.create_task(shopper(http, shop, attempts, stop)) for _ in range(SHOPPERS)
        ]
        await asyncio.sleep(WARMUP)
        behind = await replication_behind(pair.url(pair.primary_port))
        lost_at = time.monotonic()
        stop_cluster(pair.bin, pair.path("primary"), "immediate")
        stopped = time.monotonic()
        pg_ctl(pair.bin, pair.path("replica"), "-w", "promote")
        promoted = time.monotonic()
        deadline = lost_at + RESUME_LIMIT
        while not any(a.order and a.started > promoted for a in attempts):
            if time.monotonic() > deadline:
                stop.set()
                await asyncio.gather(*shoppers)
                raise SystemExit(f"no checkout succeeded within {RESUME_LIMIT:.0f} s")
            await asyncio.sleep(0.1)
        await asyncio.sleep(AFTER)
        stop.set()
        await asyncio.gather(*shoppers)
    confirmed = [a for a in attempts if a.order]
    before = [a for a in confirmed if a.ended <= lost_at]
    after = [a for a in confirmed if a.ended > lost_at]
    last_before = max(a.ended for a in before)
    first_after = min(a.ended for a in after)
    failed = [a for a in attempts if a.error]
    promoted_url = pair.url(pair.replica_port, config.database_name)
    orders = [a.order for a in confirmed if a.order]
    missing = sorted(set(orders) - await held(promoted_url, orders))
    # What was in flight at the loss settles on the promoted server (its retries): the books
    # must converge there.
    deadline = time.monotonic() + SETTLE_LIMIT
    checks = await data_checks(promoted_url)
    while described(checks) and time.monotonic() < deadline:
        await asyncio.sleep(1)
        checks = await data_checks(promoted_url)
    return {
        "shoppers": SHOPPERS,
        "checkouts_confirmed_before_loss": len(before),
        "checkouts_confirmed_after_loss": len(after),
        "checkouts_failed": len(failed),
        "replica_behind_at_loss": behind,
        "primary_stop_seconds": round(stopped - lost_at, 3),
        "promotion_seconds": round(promoted - stopped, 3),
        "seconds_without_a_checkout": round(first_after - last_before, 3),
        "seconds_from_loss_to_first_checkout": round(first_after - lost_at, 3),
        "confirmed_checkouts_lost": len(missing),
        "lost_orders": missing,
        "books_on_the_promoted_server": described(checks) or "consistent",
        "counts_on_the_promoted_server": {name: checks[name] for name in COUNTS},
        "errors_seen": sorted({a.error.split("(")[0] for a in failed if a.error}),
    }


def main() -> None:
    """Run the drill on clusters and a stack of its own; print and keep its report."""
    machine = StackSettings()
    bin_dir = asyncio.run(read_cluster(machine.postgres_admin_url)).bin
    run_id = uuid.uuid4().hex[:8]
    primary_port, replica_port = free_ports(2)
    pair = Pair(run_id, bin_dir, primary_port, replica_port)
    state = ROOT / "var" / "drill" / run_id
    env, config = scratch_stack(
        f"relais_drill_{run_id}",
        state,
        {
            "POSTGRES_ADMIN_URL": pair.url(primary_port),
            "DATABASE_HOST": f"127.0.0.1:{primary_port},127.0.0.1:{replica_port}",
            "LOADTEST_LIMITS": "1",
            "OTEL_SDK_DISABLED": "true",
        },
    )
    finished = False
    try:
        pair.start()
        up = run_devstack(env, "up")
        if up.returncode != 0:
            raise SystemExit(f"the drill's stack did not come up:\n{up.stdout}\n{up.stderr}")
        report = asyncio.run(drill(pair, config))
        finished = True
    finally:
        run_devstack(env, "down")
        pair.remove()
        drop_broker(config)
        asyncio.run(clean_redis(config.redis_key_prefix))
        if finished:
            shutil.rmtree(state, ignore_errors=True)
        else:
            print(f"the drill's logs: {config.log_dir}", file=sys.stderr)
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))
    if report["books_on_the_promoted_server"] != "consistent":
        raise SystemExit("the books do not balance on the promoted server")


if __name__ == "__main__":
    main()
