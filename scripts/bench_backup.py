"""`make bench-backup`: what backups and restores cost for the benchmark's data set.

A stack of its own takes the benchmark's checkout load (48 customers paying through NGINX for
`BENCH_CHECKOUT_SECONDS` x 3 + 2 seconds, the rounds `make bench` runs), then, timed in one run:
a full base backup of the machine's cluster and the dumps of the stack's schemas, an
incremental one after more checkouts, and restores of the newest backup into a scratch cluster,
to the end of the archive and to a time between the two loads, each checked with the stack's
invariants. Not a test: it prints the figures (the README's data safety table)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import asyncpg

from devstack import backups
from devstack.scratch import free_ports, remove_scratch, run_devstack, scratch_stack
from devstack.settings import ROOT, StackSettings
from scripts.bench import CHECKOUT_CONCURRENCY, CHECKOUT_SECONDS, checkouts
from scripts.checkouts import seed_products


def devstack(env: dict[str, str], *args: str) -> None:
    """`python -m devstack ARGS` for the bench's stack; its output on failure."""
    result = run_devstack(env, *args)
    if result.returncode != 0:
        raise SystemExit(f"devstack {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")


async def load(config: StackSettings, products: list[str], seconds: float) -> int:
    """The benchmark's checkouts for `seconds`; how many were paid."""
    result = await checkouts(
        config.public_url, config.database_url, products, seconds, CHECKOUT_CONCURRENCY
    )
    return round(result.rps * seconds)


async def database_size(config: StackSettings) -> int:
    """The stack's database's size on disk, bytes."""
    conn = await asyncpg.connect(config.admin_database_url)
    try:
        return int(await conn.fetchval("SELECT pg_database_size(current_database())"))
    finally:
        await conn.close()


def timed_restore(config: StackSettings, target: str | None) -> dict[str, Any]:
    """The newest backup restored (to `target`), checked, removed: seconds and counts."""
    port = free_ports(1)[0]
    copy = backups.restore(config, port=port, name=f"bench-{port}", target=target)
    try:
        started = time.monotonic()
        checks = asyncio.run(backups.data_checks(copy.url(config.database_name)))
        checked = time.monotonic() - started
    finally:
        copy.remove()
    return {
        "restore_seconds": copy.restore_seconds,
        "recovery_seconds": copy.recovery_seconds,
        "check_seconds": round(checked, 2),
        "counts": {name: checks[name] for name in backups.COUNTS},
        "violations": backups.described(checks),
    }


def main() -> None:
    """Load a stack of its own, back it up and restore it, timed; print the figures."""
    run = uuid.uuid4().hex[:8]
    state = ROOT / "var" / "bench-backup" / run
    env, config = scratch_stack(
        f"relais_bb_{run}", state, {"LOADTEST_LIMITS": "1", "OTEL_SDK_DISABLED": "true"}
    )
    figures: dict[str, Any] = {}
    try:
        devstack(env, "up")
        products = asyncio.run(seed_products(config, CHECKOUT_CONCURRENCY))
        figures["checkouts"] = asyncio.run(load(config, products, CHECKOUT_SECONDS * 3 + 2))
        figures["database_bytes"] = asyncio.run(database_size(config))
        full = backups.backup(config, "full")
        figures["full"] = full.__dict__
        time.sleep(2)  # the last payments' events reach core
        between = asyncio.run(backups.data_checks(config.admin_database_url))
        noted = time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime())
        time.sleep(1)
        figures["more_checkouts"] = asyncio.run(load(config, products, CHECKOUT_SECONDS))
        incremental = backups.backup(config, "incr")
        figures["incremental"] = incremental.__dict__
        figures["restore_newest"] = timed_restore(config, None)
        figures["restore_to_time"] = timed_restore(config, noted)
        figures["source_at_time"] = {name: between[name] for name in backups.COUNTS}
    finally:
        devstack(env, "down")
        remove_scratch(config)
    print(json.dumps(figures, indent=1))
    restored = figures["restore_to_time"]["counts"]
    if restored != figures["source_at_time"] or figures["restore_newest"]["violations"]:
        raise SystemExit("a restore did not hold what the stack held")


if __name__ == "__main__":
    main()
