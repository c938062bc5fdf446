"""Process-level behaviour: NGINX' retry policy and a core instance's graceful shutdown."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import sys
from collections import Counter
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from devstack import (
    ROOT,
    StackSettings,
    check_settings,
    ensure_keys,
    http_status,
    service_env,
    start_nginx,
    stop_pid_file,
    tracing_enabled,
)
from devstack.scratch import free_ports
from tests.conftest import WEBHOOK_SECRET
from tests.factories import PASSWORD, unique_email

pytestmark = pytest.mark.e2e


class HangUp:
    """An upstream that reads a request, then closes the connection without answering."""

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()
        self.server: asyncio.Server | None = None
        self.open: set[asyncio.StreamWriter] = set()

    async def start(self, port: int) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", port)

    async def stop(self) -> None:
        """Close the listener and every connection still open (Python 3.11's
        `Server.close()` leaves accepted connections open, and their transports leak)."""
        assert self.server is not None
        self.server.close()
        for writer in list(self.open):
            writer.close()
        await asyncio.sleep(0)  # let the transports finish closing

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open.add(writer)
        try:
            line = await reader.readline()
            if line:
                self.seen[line.split(b" ")[0].decode()] += 1
        finally:
            self.open.discard(writer)
            writer.close()


async def test_nginx_retries_only_idempotent_methods(tmp_path: Path):
    hang_port, ok_port, nginx_port, tls_port = free_ports(4)
    hang_up = HangUp()
    await hang_up.start(hang_port)
    answered: Counter[str] = Counter()

    async def ok(request: web.Request) -> web.Response:
        answered[request.method] += 1
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_route("*", "/api/{tail:.*}", ok)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", ok_port).start()
    config = StackSettings(state_dir=tmp_path, nginx_port=nginx_port, nginx_tls_port=tls_port)
    for directory in (config.run_dir, config.log_dir):
        directory.mkdir(parents=True)
    ensure_keys(config)
    nginx_pid = config.run_dir / "nginx" / "nginx.pid"
    base = f"http://127.0.0.1:{nginx_port}/api/x"
    try:
        # A fresh NGINX per method: after max_fails it would stop choosing the hanging instance.
        start_nginx(config, [f"127.0.0.1:{hang_port}", f"127.0.0.1:{ok_port}"])
        async with aiohttp.ClientSession() as http:
            gets = [await http.get(base) for _ in range(20)]
        stop_pid_file(nginx_pid, signal.SIGQUIT)
        start_nginx(config, [f"127.0.0.1:{hang_port}", f"127.0.0.1:{ok_port}"])
        async with aiohttp.ClientSession() as http:
            posts = [await http.post(base, json={}) for _ in range(20)]
        assert [r.status for r in gets] == [200] * 20  # a failed GET went on to the next instance
        assert hang_up.seen["GET"] > 0
        failed = [r for r in posts if r.status != 200]
        assert hang_up.seen["POST"] > 0
        # each POST the hanging instance received failed: none was sent a second time
        assert len(failed) == hang_up.seen["POST"]
        assert answered["POST"] == 20 - len(failed)
        assert all(r.content_type == "application/problem+json" for r in failed)
    finally:
        stop_pid_file(nginx_pid, signal.SIGQUIT)
        shutil.rmtree(config.runtime_dir, ignore_errors=True)  # NGINX' temp folders
        await runner.cleanup()
        await hang_up.stop()


async def test_nginx_passes_a_load_test_s_mark_not_an_outsider_s_baggage_and_lifts_limits(
    tmp_path: Path,
):
    upstream_port, nginx_port, tls_port = free_ports(3)
    seen: list[dict[str, str]] = []

    async def echo(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/api/{tail:.*}", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", upstream_port).start()
    config = StackSettings(
        state_dir=tmp_path, nginx_port=nginx_port, nginx_tls_port=tls_port, load_test_limits=True
    )
    for directory in (config.run_dir, config.log_dir):
        directory.mkdir(parents=True)
    ensure_keys(config)
    nginx_pid = config.run_dir / "nginx" / "nginx.pid"
    base = f"http://127.0.0.1:{nginx_port}/api/x"
    marks = [
        {"baggage": "tenant=t1, synthetic=true;source=locust"},
        {"X-Relais-Synthetic": "true"},
        {"baggage": "synthetic=false, tenant=t1"},
        {},
    ]
    try:
        start_nginx(config, [f"127.0.0.1:{upstream_port}"])
        async with aiohttp.ClientSession() as http:
            for headers in marks:
                async with http.get(base, headers=headers) as response:
                    assert response.status == 200

            # the shipped 200 requests/s and burst of 400 per address would refuse most of these
            async def get() -> int:
                async with http.get(base) as response:
                    return response.status

            statuses = await asyncio.gather(*(get() for _ in range(1000)))
    finally:
        stop_pid_file(nginx_pid, signal.SIGQUIT)
        shutil.rmtree(config.runtime_dir, ignore_errors=True)
        await runner.cleanup()
    # 127.0.0.1 is no trusted trace caller: its baggage stops at NGINX, its synthetic mark passes
    assert [headers.get("X-Relais-Synthetic") for headers in seen[:4]] == ["1", "1", None, None]
    assert not any("baggage" in {key.lower() for key in headers} for headers in seen)
    assert set(statuses) == {200}
    assert service_env(config, "core-1", 1, 2, traced=False)["WRITE_RATE_LIMIT"] != "300/minute"


async def test_sigterm_lets_in_flight_requests_finish(
    database_url, redis_prefix, key_pair, amqp_url
):
    port, metrics_port = free_ports(2)
    env = {
        **os.environ,
        "HTTP_PORT": str(port),
        "METRICS_PORT": str(metrics_port),
        "DATABASE_URL": database_url,
        "AMQP_URL": amqp_url,
        "REDIS_KEY_PREFIX": redis_prefix,
        "JWT_PRIVATE_KEY": key_pair[0],
        "JWT_PUBLIC_KEY": key_pair[1],
        "PAYMENTS_WEBHOOK_SECRET": WEBHOOK_SECRET,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.core",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        if await asyncio.to_thread(http_status, f"{url}/health/ready") == 200:
            break
        await asyncio.sleep(0.1)
    async with aiohttp.ClientSession() as http:

        async def register() -> int:
            body = {"email": unique_email(), "password": PASSWORD, "name": "Shutdown"}
            async with http.post(f"{url}/api/auth/register", json=body) as response:
                return response.status

        async def received() -> tuple[float, float]:
            """(requests in flight, registrations answered) as core counts them."""
            async with http.get(f"http://127.0.0.1:{metrics_port}/metrics") as response:
                text = await response.text()
            # Only the two families read here: parsing every series (200 kB) took 120 ms of
            # this loop, in which the registrations below could not even be sent.
            wanted = ("relais_http_requests_in_flight", "relais_http_requests_total")
            families = text_string_to_metric_families(
                "".join(line + "\n" for line in text.splitlines() if line.startswith(wanted))
            )
            counts = {"in_flight": 0.0, "answered": 0.0}
            for family in families:
                for sample in family.samples:
                    if sample.name == "relais_http_requests_in_flight":
                        counts["in_flight"] += sample.value
                    elif sample.name == "relais_http_requests_total" and (
                        sample.labels["route"] == "/api/auth/register"
                    ):
                        counts["answered"] += sample.value
            return counts["in_flight"], counts["answered"]

        # argon2 keeps each registration busy for tens of milliseconds: signal once core has
        # received all of them (a request still on its way when core stops listening is
        # refused, which is right, but not what this test is about)
        in_flight = [asyncio.create_task(register()) for _ in range(8)]
        for _ in range(500):
            busy, answered = await received()
            if busy + answered >= 8:
                break
            await asyncio.sleep(0.005)
        process.send_signal(signal.SIGTERM)
        statuses = await asyncio.gather(*in_flight)
    assert busy > 0  # some were in flight when the signal was sent
    assert statuses == [201] * 8
    assert await asyncio.wait_for(process.wait(), timeout=15) == 0


def test_make_up_traces_only_when_an_otlp_endpoint_answers(monkeypatch):
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    (port,) = free_ports(1)
    config = StackSettings(otlp_endpoint=f"http://127.0.0.1:{port}")
    assert not tracing_enabled(config)  # nothing listens: spans would only fill the logs
    # The kernel completes a connection to a listening socket before anyone accepts it:
    # a plain listener, never accepting, leaves no transport behind for the event loop.
    with socket.create_server(("127.0.0.1", port)):
        assert tracing_enabled(config)
        monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
        assert not tracing_enabled(config)
    monkeypatch.setenv("OTEL_SDK_DISABLED", "false")
    assert tracing_enabled(config)


def test_make_up_refuses_the_generated_secrets_in_production(monkeypatch, tmp_path):
    # Everything else is fit for production: only the secrets `make up` generated are not.
    for name, value in {
        "RELAIS_ENV": "production",
        "DATABASE_PASSWORD": "a production password",
        "PAYMENT_PROVIDER": "stripe",
        "STRIPE_SECRET_KEY": "sk_live_x",
    }.items():
        monkeypatch.setenv(name, value)
    config = StackSettings(state_dir=tmp_path / "var")
    ensure_keys(config)
    with pytest.raises(SystemExit, match="generated development key"):
        check_settings(config, traced=False)
    monkeypatch.setenv("JWT_PRIVATE_KEY", "-----BEGIN PRIVATE KEY-----...")
    monkeypatch.setenv("JWT_PUBLIC_KEY", "-----BEGIN PUBLIC KEY-----...")
    with pytest.raises(SystemExit, match="PAYMENTS_WEBHOOK_SECRET"):
        check_settings(config, traced=False)
    monkeypatch.setenv("PAYMENTS_WEBHOOK_SECRET", "whsec_a production secret")
    check_settings(config, traced=False)  # nothing left to refuse
