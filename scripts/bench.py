"""`make bench`: cached product reads and paid checkouts through NGINX, beside their baselines.

Starts a throwaway stack (its own database, ports, vhost and key prefix) and a bare aiohttp hello
app behind an NGINX of its own, and measures, in turn:

- cached product reads through NGINX and direct, against hello (wrk);
- the price of tracing: the same cached read through NGINX to core pairs that trace nothing, 10%
  or every request, exporting OTLP to a receiver in this process (interleaved with the above);
- paid checkouts end to end through NGINX (order, then pay with `Prefer: wait`, sandbox at zero
  latency, every guarantee on), against a raw aio-pika publish -> consume round trip.

It prints rates, p50 and p99 and the ratios between them, then tears everything down. Not a
test: it asserts nothing.
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
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import uvloop
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode_spans
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from chassis.telemetry import encode_spans
from devstack import (
    ROOT,
    StackSettings,
    down,
    http_status,
    prepare_dirs,
    program_pids,
    service_env,
    start_nginx,
    start_process,
    up,
)
from devstack.scratch import remove_scratch
from scripts.checkouts import Shop, new_customer, seed_products
from scripts.otlp import OtlpReceiver

SECONDS = int(os.environ.get("BENCH_SECONDS", "5"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "64"))
# One wrk thread drives ~19k req/s through NGINX here (as many as two), while leaving more of
# the two shared cores to what is measured.
THREADS = int(os.environ.get("BENCH_THREADS", "1"))
CHECKOUT_SECONDS = float(os.environ.get("BENCH_CHECKOUT_SECONDS", "10"))
CHECKOUT_CONCURRENCY = int(os.environ.get("BENCH_CHECKOUT_CONCURRENCY", "48"))


# Both NGINXes: the same edge, with no per-address limit (the load comes from one address: the
# services' write limit is lifted too) and no access log in the way.
UNLIMITED_EDGE: dict[str, Any] = {
    "load_test_limits": True,
    "nginx_access_log": False,
    "nginx_workers": os.environ.get("NGINX_WORKERS", "auto"),
}


# Tracing off, at a 0% and a 10% parent-based ratio, and on every request, with their targets
# against off (at 0% no root request is sampled: what the unsampled path costs on its own).
TRACING = {"off": None, "0%": 0.0, "10%": 0.1, "100%": 1.0, "100% SDK encoder": 1.0}
TRACING_TARGETS = {"10%": 0.9, "100%": 0.75, "100% SDK encoder": 0.75}


@dataclass
class Result:
    """One wrk run."""

    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us: float = 0.0  # CPU of the measured processes per request, where measured


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


def percentile(values: list[float], fraction: float) -> float:
    """The `fraction` percentile of `values` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def rate(name: str, count: int, seconds: float, latencies: list[float]) -> Result:
    """A measurement of `count` operations in `seconds`, latencies in seconds."""
    return Result(
        name,
        count / seconds,
        percentile(latencies, 0.5) * 1000,
        percentile(latencies, 0.99) * 1000,
    )


async def checkouts(
    base: str, database_url: str, products: list[str], seconds: float, concurrency: int
) -> Result:
    """Customers each ordering a product of the catalog and paying with `Prefer: wait`."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        auth = await new_customer(http, base, database_url)
        latencies: list[float] = []
        deadline = time.monotonic() + seconds

        shop = Shop(base, auth, products)

        async def customer(index: int) -> None:
            # Each customer shops in its own part of the catalog: no stock row is contended, as
            # in a shop with many products (one hot product measures row locking instead).
            while time.monotonic() < deadline:
                started = time.perf_counter()
                await shop.checkout(http, index, wait=30)
                latencies.append(time.perf_counter() - started)

        started = time.monotonic()
        await asyncio.gather(*(customer(index) for index in range(concurrency)))
        elapsed = time.monotonic() - started
    return rate("paid checkouts via nginx", len(latencies), elapsed, latencies)


async def amqp_round_trips(url: str, seconds: float, concurrency: int) -> Result:
    """Persistent, confirmed publishes to a quorum queue, each timed until its consumer acks."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.declare_queue(
            f"bench.{uuid.uuid4().hex[:8]}", durable=True, arguments={"x-queue-type": "quorum"}
        )
        consumer_channel = await connection.channel()
        await consumer_channel.set_qos(prefetch_count=concurrency * 2)
        waiting: dict[str, asyncio.Future[None]] = {}

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            await message.ack()
            future = waiting.pop(message.message_id or "", None)
            if future is not None:
                future.set_result(None)

        consuming = await consumer_channel.get_queue(queue.name)
        tag = await consuming.consume(on_message)
        latencies: list[float] = []
        deadline = time.monotonic() + seconds

        async def producer() -> None:
            loop = asyncio.get_running_loop()
            while time.monotonic() < deadline:
                message_id = uuid.uuid4().hex
                waiting[message_id] = arrived = loop.create_future()
                started = time.perf_counter()
                await channel.default_exchange.publish(
                    aio_pika.Message(
                        b"{}", message_id=message_id, delivery_mode=aio_pika.DeliveryMode.PERSISTENT
                    ),
                    routing_key=queue.name,
                )
                await arrived
                latencies.append(time.perf_counter() - started)

        started = time.monotonic()
        await asyncio.gather(*(producer() for _ in range(concurrency)))
        elapsed = time.monotonic() - started
        await consuming.cancel(tag)
        await queue.delete(if_unused=False, if_empty=False)
    finally:
        await connection.close()
    return rate("raw aio-pika publish->consume", len(latencies), elapsed, latencies)


def start_traced_pair(
    core: StackSettings, index: int, mode: str, ratio: float | None, otlp_port: int
) -> StackSettings:
    """Two more core instances on the bench's database and broker, behind an NGINX of their
    own, tracing at `ratio` (None: off) and exporting to the receiver at `otlp_port`."""
    config = core.model_copy(
        update={
            "state_dir": core.state_dir.parent / f"traced-{index}",
            "core_base_port": 18301 + 10 * index,
            "metrics_base_port": 19301 + 10 * index,
            "nginx_port": 18380 + 10 * index,
            "nginx_tls_port": 18643 + 10 * index,
            "otlp_endpoint": f"http://127.0.0.1:{otlp_port}",
        }
    )
    prepare_dirs(config)
    shutil.copytree(core.key_dir, config.key_dir, dirs_exist_ok=True)
    for name, module, port, metrics_port in config.processes():
        if not name.startswith("core"):
            continue
        env = service_env(config, name, port, metrics_port, traced=ratio is not None)
        env["OTEL_TRACES_SAMPLER_ARG"] = str(ratio or 0.0)
        if "SDK encoder" in mode:
            env["RELAIS_OTLP_ENCODER"] = "sdk"
        start_process(name, [sys.executable, "-m", module], env, config)
    start_nginx(config, config.core_upstreams())
    return config


def encoding_costs(count: int = 4096) -> tuple[float, float]:
    """µs per span of the SDK's OTLP encoder and of the chassis', best of interleaved rounds,
    on server spans shaped like the edge middleware's."""
    finished = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(finished))
    tracer = provider.get_tracer("relais.http")
    for _ in range(count):
        request_id = uuid.uuid4().hex
        span = tracer.start_span("GET /api/products/{id}", kind=SpanKind.SERVER)
        span.set_attributes(
            {
                "http.request.method": "GET",
                "http.route": "/api/products/{id}",
                "url.path": f"/api/products/{uuid.uuid4()}",
                "url.scheme": "http",
                "relais.request_id": request_id,
                "http.response.status_code": 200,
            }
        )
        span.end()
    spans = finished.get_finished_spans()
    batches = [spans[start : start + 512] for start in range(0, count, 512)]
    sdk: list[float] = []
    chassis: list[float] = []
    for _ in range(5):
        for timings, encode in (
            (sdk, lambda batch: sdk_encode_spans(batch).SerializePartialToString()),
            (chassis, encode_spans),
        ):
            started = time.perf_counter()
            for batch in batches:
                encode(batch)
            timings.append((time.perf_counter() - started) / count * 1e6)
    return min(sdk), min(chassis)


def core_pids(config: StackSettings) -> list[int]:
    """The process ids of a stack's core instances."""
    return [pid for name, pid in program_pids(config).items() if name.startswith("core")]


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU seconds the processes have spent so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / ticks


def wait_for(url: str, timeout: float = 30) -> None:
    """Block until `url` answers 200."""
    deadline = time.monotonic() + timeout
    while http_status(url) != 200:
        if time.monotonic() > deadline:
            raise SystemExit(f"{url} never became ready")
        time.sleep(0.1)


def hello_stack(state_dir: Path) -> StackSettings:
    """Where the bare aiohttp hello runs: two instances behind an NGINX of their own."""
    return StackSettings(
        state_dir=state_dir,
        core_base_port=18101,
        nginx_port=18180,
        nginx_tls_port=18543,
        **UNLIMITED_EDGE,
    )


def start_hello(hello: StackSettings, core: StackSettings) -> None:
    """Start the hello instances and their NGINX (with `core`'s TLS pair), once they answer."""
    prepare_dirs(hello)
    hello.key_dir.mkdir(parents=True, exist_ok=True)
    for name in ("tls.crt", "tls.key"):
        shutil.copy(core.key_dir / name, hello.key_dir / name)
    upstreams = []
    for index, (port, _) in enumerate(hello.core_ports(), start=1):
        name = f"hello-{index}"
        argv = [sys.executable, "-m", "scripts.hello", "--port", str(port)]
        if hello.nginx_upstream == "unix":
            argv += ["--unix", str(hello.unix_socket(name))]
        start_process(name, argv, dict(os.environ), hello)
        upstreams.append(hello.upstream(name, port))
    start_nginx(hello, upstreams)
    for port, _ in hello.core_ports():
        wait_for(f"http://127.0.0.1:{port}/api/hello")


def throwaway_stack(run: str, state_dir: Path, **settings: Any) -> StackSettings:
    """A stack of the bench's own: its ports, and a database, broker users, vhost and key
    prefix named after `run` (dropped at the end)."""
    return StackSettings(
        state_dir=state_dir,
        core_base_port=18001,
        metrics_base_port=19101,
        nginx_port=18080,
        nginx_tls_port=18443,
        payments_base_port=18201,
        payments_metrics_base_port=19201,
        ai_base_port=18301,
        ai_metrics_base_port=19301,
        gateway_base_port=18401,
        gateway_metrics_base_port=19401,
        prometheus_port=19090,
        alertmanager_port=19093,
        alert_receiver_port=19095,
        nginx_exporter_port=19113,
        postgres_exporter_port=19187,
        redis_exporter_port=19121,
        process_exporter_port=19256,
        database_name=f"relais_bench_{run}",
        payments_database_user=f"relais_bench_{run}_payments",
        payments_owner_user=f"relais_bench_{run}_payments_owner",
        ai_database_user=f"relais_bench_{run}_ai",
        monitor_database_user=f"relais_bench_{run}_monitor",
        rabbitmq_core_user=f"relais_bench_{run}_core",
        rabbitmq_payments_user=f"relais_bench_{run}_payments",
        rabbitmq_ai_user=f"relais_bench_{run}_ai",
        rabbitmq_gateway_user=f"relais_bench_{run}_gateway",
        rabbitmq_vhost=f"relais_bench_{run}",
        redis_key_prefix=f"relais-bench:{run}:",
        **UNLIMITED_EDGE,
        **settings,
    )


def main() -> None:
    """Run every measurement and print the table and ratios."""
    run = uuid.uuid4().hex[:8]
    state = ROOT / "var" / "bench"
    # The reads measured here do not reach the AI worker (its models take 0.7 GB).
    core = throwaway_stack(run, state / "core", ai_instances=0, gateway_instances=0)
    hello = hello_stack(state / "hello")
    hello_ports = [port for port, _ in hello.core_ports()]
    collector = OtlpReceiver(keep=False)
    traced: dict[str, StackSettings] = {}
    try:
        up(core)
        collector.start_thread()
        for index, (mode, ratio) in enumerate(TRACING.items()):
            traced[mode] = start_traced_pair(core, index, mode, ratio, collector.port)
        start_hello(hello, core)
        products = asyncio.run(seed_products(core, CHECKOUT_CONCURRENCY))
        product_id = products[0]
        product_path = f"/api/products/{product_id}"
        wait_for(f"http://127.0.0.1:{core.nginx_port}{product_path}")

        plan = [
            ("product via nginx, 2 instances", f"http://127.0.0.1:{core.nginx_port}{product_path}"),
            ("product direct, 1 instance", f"http://127.0.0.1:{core.core_base_port}{product_path}"),
            ("hello via nginx, 2 instances", f"http://127.0.0.1:{hello.nginx_port}/api/hello"),
            ("hello direct, 1 instance", f"http://127.0.0.1:{hello_ports[0]}/api/hello"),
        ] + [
            (
                f"product via nginx, tracing {mode}",
                f"http://127.0.0.1:{pair.nginx_port}{product_path}",
            )
            for mode, pair in traced.items()
        ]
        for pair in traced.values():
            for port, _ in pair.core_ports():
                wait_for(f"http://127.0.0.1:{port}/health/ready")
        for _, url in plan:
            wrk("warm-up", url, seconds=2)
        # Interleaved rounds, median per measurement: a noisy moment hits every measurement alike.
        runs: dict[str, list[Result]] = {name: [] for name, _ in plan}
        # CPU the traced pairs' core processes spend per read: tracing's price without the
        # noise of the other processes sharing the cores.
        pids = {
            f"product via nginx, tracing {mode}": core_pids(pair) for mode, pair in traced.items()
        }
        for _ in range(ROUNDS):
            for name, url in plan:
                spent = cpu_seconds(pids.get(name, []))
                result = wrk(name, url)
                if name in pids:
                    reads = result.rps * SECONDS
                    result.cpu_us = (cpu_seconds(pids[name]) - spent) / reads * 1e6
                runs[name].append(result)
        results = {name: _median(found) for name, found in runs.items()}
        cpu_per_read = {
            name: sorted(result.cpu_us for result in runs[name])[ROUNDS // 2] for name in pids
        }
        # The traced pairs are core instances too: left running, they would consume the
        # checkouts' events beside the stack's own instances (tracing them) and take its CPU.
        for pair in traced.values():
            down(pair)
        down(hello)
        base = f"http://127.0.0.1:{core.nginx_port}"
        uvloop.install()
        asyncio.run(
            checkouts(base, core.database_url, products, 2, CHECKOUT_CONCURRENCY)
        )  # warm-up
        flows: dict[str, list[Result]] = {"checkout": [], "amqp": []}
        for _ in range(3):
            flows["checkout"].append(
                asyncio.run(
                    checkouts(
                        base, core.database_url, products, CHECKOUT_SECONDS, CHECKOUT_CONCURRENCY
                    )
                )
            )
            flows["amqp"].append(
                asyncio.run(amqp_round_trips(core.amqp_url, CHECKOUT_SECONDS, CHECKOUT_CONCURRENCY))
            )
        for found in flows.values():
            median = _median(found)
            results[median.name] = median
    finally:
        collector.stop_thread()
        for pair in traced.values():
            down(pair)
        down(core)
        down(hello)
        remove_scratch(core)

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
            0.9,
        ),
        (
            "product via nginx / product direct",
            product_nginx / results["product direct, 1 instance"].rps,
            1.3,
        ),
    ]
    checkout = results["paid checkouts via nginx"].rps
    print()
    print(
        f"paid checkouts/s end to end: {checkout:.0f}   target >= 200  "
        f"({'meets' if checkout >= 200 else 'MISSES'}); "
        f"raw broker round trips/s: {results['raw aio-pika publish->consume'].rps:.0f} "
        f"({CHECKOUT_CONCURRENCY} in flight; a checkout is 2 HTTP requests, about 8 PostgreSQL "
        "transactions writing 18 rows, 2 confirmed outbox publishes and 2 consumed messages)"
    )
    off = results["product via nginx, tracing off"].rps
    ratios += [
        (
            f"tracing {mode} / tracing off",
            results[f"product via nginx, tracing {mode}"].rps / off,
            target,
        )
        for mode, target in TRACING_TARGETS.items()
    ]
    for name, ratio, target in ratios:
        verdict = "meets" if ratio >= target else "MISSES"
        print(f"{name:<40}{ratio:>6.2f}   target >= {target}  ({verdict})")
    unsampled = results["product via nginx, tracing 0%"].rps / off
    print(f"{'tracing 0% / tracing off':<40}{unsampled:>6.2f}   (the unsampled path alone)")
    print(
        f"the OTLP receiver took {collector.exports} exports ({collector.bytes / 1e6:.1f} MB); "
        "a traced read is one server span (the product comes from the near cache)"
    )
    print(
        "core CPU per read (both instances, median): "
        + ", ".join(
            f"tracing {mode} {cpu_per_read[f'product via nginx, tracing {mode}']:.0f} µs"
            for mode in TRACING
        )
    )
    sdk, chassis = encoding_costs()
    print(
        f"OTLP encoding of a server span: SDK {sdk:.1f} µs, chassis {chassis:.1f} µs "
        f"({sdk / chassis:.1f}x faster; the export thread's main cost)"
    )


if __name__ == "__main__":
    main()
