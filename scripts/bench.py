"""`make bench`: cached product reads through NGINX against the baselines, side by side.

Starts a throwaway stack (its own database, ports and key prefix) and a bare aiohttp hello app
behind an NGINX of its own, loads each with wrk in turn, prints requests/s, p50 and p99 and the
ratios between them, then tears everything down. Not a test: it asserts nothing.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
from redis.asyncio import Redis

from scripts.stack import (
    ROOT,
    StackConfig,
    down,
    drop_database,
    http_status,
    prepare_dirs,
    start_nginx,
    start_process,
    up,
)

SECONDS = int(os.environ.get("BENCH_SECONDS", "5"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "64"))
# One wrk thread drives ~19k req/s through NGINX here (as many as two), while leaving more of
# the two shared cores to what is measured.
THREADS = int(os.environ.get("BENCH_THREADS", "1"))


# Both NGINXes: the same edge, with no per-address limit and no access log in the way.
UNLIMITED_EDGE: dict[str, Any] = {
    "nginx_rate_limit": 10_000_000,
    "nginx_rate_burst": 10_000_000,
    "nginx_access_log": False,
    "nginx_workers": os.environ.get("NGINX_WORKERS", "auto"),
}


@dataclass
class Result:
    """One wrk run."""

    name: str
    rps: float
    p50_ms: float
    p99_ms: float


def wrk(name: str, url: str, seconds: int = SECONDS) -> Result:
    """Load `url` with wrk and parse its summary."""
    binary = shutil.which("wrk")
    if binary is None:
        raise SystemExit("wrk is not installed: `make bench` installs it")
    out = subprocess.run(
        [binary, f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"{name}: {errors.group(1)} failed responses\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return Result(name, rps, _latency(out, "50%"), _latency(out, "99%"))


def _median(results: list[Result]) -> Result:
    ordered = sorted(results, key=lambda result: result.rps)
    return ordered[len(ordered) // 2]


def _latency(out: str, percentile: str) -> float:
    match = re.search(rf"{percentile}\s+([\d.]+)(us|ms|s)\b", out)
    assert match is not None, out
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


async def seed_product(config: StackConfig) -> str:
    """Insert one product straight into the bench database; its id."""
    conn = await asyncpg.connect(config.database_url, server_settings={"search_path": "core"})
    try:
        product_id = await conn.fetchval(
            """INSERT INTO products (sku, name, description, price_cents, currency, stock, category)
               VALUES ('BENCH-1', 'Benchmark kettle', 'A kettle that is read a lot', 3999, 'EUR',
                       100, 'kitchen') RETURNING id"""
        )
    finally:
        await conn.close()
    return str(product_id)


async def clean_redis(prefix: str) -> None:
    """Delete the bench's keys."""
    client = Redis.from_url(StackConfig().redis_url)
    async for key in client.scan_iter(match=prefix + "*"):
        await client.delete(key)
    await client.aclose()


def wait_for(url: str, timeout: float = 30) -> None:
    """Block until `url` answers 200."""
    deadline = time.monotonic() + timeout
    while http_status(url) != 200:
        if time.monotonic() > deadline:
            raise SystemExit(f"{url} never became ready")
        time.sleep(0.1)


def main() -> None:
    """Run every measurement and print the table and ratios."""
    run = uuid.uuid4().hex[:8]
    state = ROOT / "var" / "bench"
    core = StackConfig(
        state_dir=state / "core",
        core_base_port=18001,
        metrics_base_port=19101,
        nginx_port=18080,
        nginx_tls_port=18443,
        database_name=f"relais_bench_{run}",
        redis_key_prefix=f"relais-bench:{run}:",
        **UNLIMITED_EDGE,
    )
    hello = StackConfig(
        state_dir=state / "hello",
        core_base_port=18101,
        nginx_port=18180,
        nginx_tls_port=18543,
        **UNLIMITED_EDGE,
    )
    hello_ports = [port for port, _ in hello.core_ports()]
    try:
        up(core)
        prepare_dirs(hello)
        hello.key_dir.mkdir(parents=True, exist_ok=True)
        for name in ("tls.crt", "tls.key"):
            shutil.copy(core.key_dir / name, hello.key_dir / name)
        upstreams = []
        for index, port in enumerate(hello_ports, start=1):
            name = f"hello-{index}"
            argv = [sys.executable, "-m", "scripts.hello", "--port", str(port)]
            if hello.nginx_upstream == "unix":
                argv += ["--unix", str(hello.unix_socket(name))]
            start_process(name, argv, dict(os.environ), hello)
            upstreams.append(hello.upstream(name, port))
        start_nginx(hello, upstreams)
        for port in hello_ports:
            wait_for(f"http://127.0.0.1:{port}/api/hello")
        product_id = asyncio.run(seed_product(core))
        product_path = f"/api/products/{product_id}"
        wait_for(f"http://127.0.0.1:{core.nginx_port}{product_path}")

        plan = [
            ("product via nginx, 2 instances", f"http://127.0.0.1:{core.nginx_port}{product_path}"),
            ("product direct, 1 instance", f"http://127.0.0.1:{core.core_base_port}{product_path}"),
            ("hello via nginx, 2 instances", f"http://127.0.0.1:{hello.nginx_port}/api/hello"),
            ("hello direct, 1 instance", f"http://127.0.0.1:{hello_ports[0]}/api/hello"),
        ]
        for _, url in plan:
            wrk("warm-up", url, seconds=2)
        # Interleaved rounds, median per measurement: a noisy moment hits every measurement alike.
        runs: dict[str, list[Result]] = {name: [] for name, _ in plan}
        for _ in range(ROUNDS):
            for name, url in plan:
                runs[name].append(wrk(name, url))
        results = {name: _median(found) for name, found in runs.items()}
    finally:
        down(core)
        down(hello)
        asyncio.run(drop_database(core))
        asyncio.run(clean_redis(core.redis_key_prefix))

    load = f"median of {ROUNDS} interleaved runs of wrk -t{THREADS} -c{CONNECTIONS} -d{SECONDS}s"
    print(f"\n{load} on {os.cpu_count()} cores, everything on 127.0.0.1")
    print(f"{'measurement':<34}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
    for result in results.values():
        print(f"{result.name:<34}{result.rps:>10.0f}{result.p50_ms:>10.2f}{result.p99_ms:>10.2f}")
    product_nginx = results["product via nginx, 2 instances"].rps
    ratios = [
        (
            "product via nginx / hello via nginx",
            product_nginx / results["hello via nginx, 2 instances"].rps,
            0.6,
        ),
        (
            "product via nginx / product direct",
            product_nginx / results["product direct, 1 instance"].rps,
            1.3,
        ),
    ]
    print()
    for name, ratio, target in ratios:
        verdict = "meets" if ratio >= target else "MISSES"
        print(f"{name:<40}{ratio:>6.2f}   target >= {target}  ({verdict})")


if __name__ == "__main__":
    main()
