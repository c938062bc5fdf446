"""The services' images, built with podman and started against the host's PostgreSQL, Redis and
RabbitMQ (`make test-images`; CI runs it after `make test`).

Each image is built from its Dockerfile on a base made from Debian's archive (no registry is
reachable here), migrates its own schema, and runs on the host's network with its own database
roles, vhost and key prefix; its HEALTHCHECK must pass, and a checkout must cross the core, payments
and gateway containers as it crosses the native processes.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import aiohttp
import asyncpg
import pytest

from devstack import StackSettings, drop_broker, drop_database
from devstack.broker import ensure_broker
from devstack.database import ensure_database
from devstack.scratch import clean_redis, free_ports
from devstack.services import service_env
from scripts import images
from tests import factories

pytestmark = pytest.mark.images

# What each image holds of the dependency groups: a module only its own group installs.
GROUP_MARKERS = {"core": "argon2", "payments": "tenacity", "ai": "torch"}
# Keys of a service's environment the containers take (the rest of service_env is the host's).
CONTAINER_KEYS = (
    "SERVICE_NAME",
    "HTTP_PORT",
    "METRICS_PORT",
    "DATABASE_URL",
    "DATABASE_SCHEMA",
    "AMQP_URL",
    "REDIS_URL",
    "REDIS_KEY_PREFIX",
    "PUBLIC_URL",
    "OTEL_SERVICE_NAME",
)
HEALTHY_WITHIN = 180.0


@pytest.fixture(scope="module")
def built() -> dict[str, str]:
    """Every service's image, built on the base made from Debian's archive."""
    images.ensure_tools()
    base = images.ensure_base_image()
    built = {service: images.build(service, base) for service in images.DOCKERFILES}
    images.prune()
    return built


@pytest.fixture(scope="module")
def config() -> Iterator[StackSettings]:
    """A stack's names of this run alone (database, roles, vhost, users, key prefix), made on the
    host's PostgreSQL and RabbitMQ and dropped afterwards."""
    run = uuid.uuid4().hex[:8]
    stack = StackSettings(
        database_name=f"relais_img_{run}",
        database_password=secrets.token_hex(12),
        payments_database_user=f"relais_img_{run}_payments",
        payments_owner_user=f"relais_img_{run}_payments_owner",
        ai_database_user=f"relais_img_{run}_ai",
        monitor_database_user=f"relais_img_{run}_monitor",
        rabbitmq_core_user=f"relais_img_{run}_core",
        rabbitmq_payments_user=f"relais_img_{run}_payments",
        rabbitmq_ai_user=f"relais_img_{run}_ai",
        rabbitmq_gateway_user=f"relais_img_{run}_gateway",
        rabbitmq_vhost=f"relais_img_{run}",
        redis_key_prefix=f"relais-img:{run}:",
    )
    try:
        asyncio.run(ensure_database(stack))
        ensure_broker(stack)
        yield stack
    finally:
        asyncio.run(drop_database(stack))
        drop_broker(stack)
        asyncio.run(clean_redis(stack.redis_key_prefix))


@pytest.fixture(scope="module")
def keys(key_pair: tuple[str, str]) -> dict[str, str]:
    """The secrets every container takes (inline here; compose mounts them as files)."""
    private, public = key_pair
    return {
        "JWT_PRIVATE_KEY": private,
        "JWT_PUBLIC_KEY": public,
        "PAYMENTS_WEBHOOK_SECRET": secrets.token_hex(16),
    }


def container_env(
    config: StackSettings, service: str, ports: tuple[int, int], keys: dict[str, str]
) -> dict[str, str]:
    """A service container's environment: the native stack's for that service, on 127.0.0.1."""
    env = service_env(config, f"{service}-1", *ports, traced=False)
    return {
        **{key: env[key] for key in CONTAINER_KEYS},
        **keys,
        "HTTP_HOST": "127.0.0.1",
        "OTEL_SDK_DISABLED": "true",
    }


def run_command(image: str, env: dict[str, str], *argv: str) -> str:
    """Run one of the image's own commands (`migrate`, `declare`) in a throwaway container."""
    result = images.run_once(image, *argv, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def running(
    built: dict[str, str], config: StackSettings, keys: dict[str, str]
) -> Iterator[dict[str, Any]]:
    """Every service in its container, migrated by its own image, each healthy by its own
    HEALTHCHECK: {service: {"port", "metrics", "healthy_after"}}."""
    ports = free_ports(2 * len(built))
    services: dict[str, Any] = {}
    envs = {
        service: container_env(config, service, (ports[2 * i], ports[2 * i + 1]), keys)
        for i, service in enumerate(built)
    }
    # Each image migrates its own schema, as its owner, and grants its runtime role.
    run_command(
        built["core"], envs["core"], "python", "-m", "services.core", "migrate",
        "--grant", config.ai_database_user,
    )  # fmt: skip
    run_command(built["ai"], envs["ai"], "python", "-m", "services.ai", "migrate")
    owner = {**envs["payments"], "DATABASE_URL": config.database_url_of(config.payments_owner_user)}
    run_command(
        built["payments"], owner, "python", "-m", "services.payments", "migrate",
        "--grant", config.payments_database_user,
    )  # fmt: skip
    for service, module in (("ai", "services.ai"), ("gateway", "gateway")):
        run_command(built[service], envs[service], "python", "-m", module, "declare")
    run = uuid.uuid4().hex[:6]
    with ExitStack() as stack:
        for service, image in built.items():
            name = stack.enter_context(
                images.container(f"relais-{service}-{run}", image, envs[service])
            )
            services[service] = {
                "name": name,
                "port": int(envs[service]["HTTP_PORT"]),
                "metrics": int(envs[service]["METRICS_PORT"]),
            }
        # Each one's wait starts when the previous one is healthy (they all started together).
        for service in built:
            services[service]["healthy_after"] = images.wait_healthy(
                services[service]["name"], HEALTHY_WITHIN
            )
        yield services


def inspect(image: str) -> dict[str, Any]:
    """podman's view of an image's configuration."""
    data: list[dict[str, Any]] = json.loads(images.podman("image", "inspect", image).stdout)
    return data[0]


def test_every_image_runs_as_a_non_root_user_with_its_health_check_and_labels(built):
    revision = images.revision()
    for service, image in built.items():
        found = inspect(image)
        config = found["Config"]
        assert config["User"] == "10001:10001", service
        assert config["StopSignal"] == "SIGTERM", service
        assert found["Healthcheck"]["Test"] == [
            "CMD",
            "python",
            "-m",
            "chassis.healthcheck",
            "/health/ready",
        ]
        labels = config["Labels"]
        assert labels["org.opencontainers.image.title"] == f"relais-{service}"
        assert labels["org.opencontainers.image.revision"] == revision
        assert labels["org.opencontainers.image.version"]
        assert labels["org.opencontainers.image.created"] != "unknown"
        assert labels["org.opencontainers.image.base.name"] == images.BASE_IMAGE
        assert images.run_once(image, "id", "-u").stdout.strip() == "10001", service


def test_each_image_holds_only_its_own_dependency_group_and_code(built):
    probe = """
import importlib.util, json, sys
def found(module):
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # its parent package is not there either
        return False
print(json.dumps({module: found(module) for module in sys.argv[1:]}))
"""
    modules = [*GROUP_MARKERS.values(), "services.core", "services.payments", "services.ai"]
    for service, image in built.items():
        result = images.run_once(image, "python", "-c", probe, *modules)
        found = json.loads(result.stdout)
        for group, module in GROUP_MARKERS.items():
            assert found[module] is (group == service), (service, module)
        for other in ("core", "payments", "ai"):
            assert found[f"services.{other}"] is (other == service), (service, other)
        # No build tool is left in the image the service runs in.
        compilers = images.run_once(image, "sh", "-c", "command -v gcc cc || true")
        assert compilers.stdout.strip() == "", service


def test_the_ai_image_loads_its_models_with_no_network(built):
    result = images.run_once(built["ai"], "python", "-m", "services.ai.models", network="none")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "embeddings: 384 dimensions" in result.stdout


async def test_every_container_is_healthy_against_the_host_datastores(running):
    async with aiohttp.ClientSession() as http:
        for service, found in running.items():
            assert found["healthy_after"] < HEALTHY_WITHIN
            print(f"{service}: healthy {found['healthy_after']:.1f} s after the previous")
            url = f"http://127.0.0.1:{found['port']}/health/ready"
            async with http.get(url) as response:
                body = await response.json()
                assert response.status == 200, (service, body)
            async with http.get(f"http://127.0.0.1:{found['metrics']}/metrics") as response:
                assert response.status == 200
                assert "relais_" in await response.text(), service


async def test_a_checkout_crosses_the_containers(running, config):
    core = f"http://127.0.0.1:{running['core']['port']}"
    gateway = f"ws://127.0.0.1:{running['gateway']['port']}/ws"
    async with aiohttp.ClientSession(base_url=core) as http, aiohttp.ClientSession() as ws:
        db = await asyncpg.connect(
            config.admin_database_url, server_settings={"search_path": "core"}
        )
        try:
            customer = await factories.register(http, db=db)
            admin = await factories.admin(http, db)
        finally:
            await db.close()
        product = await factories.create_product(http, admin, price_cents=2500)
        order = await factories.place_order(http, customer, product, quantity=2)
        # The gateway's container pushes the outcome to the customer's socket.
        socket = await ws.ws_connect(gateway, headers=customer.auth)
        status, payment = await factories.pay(http, customer, order["id"], wait=15)
        assert status == 200, payment
        assert (payment["status"], payment["amount_cents"]) == ("succeeded", 5000)
        response = await http.get(f"/api/orders/{order['id']}", headers=customer.auth)
        assert (await response.json())["status"] == "paid"
        pushed: dict[str, Any] = {}
        while not {"payment.succeeded", "order.paid"} <= set(pushed):
            body = json.loads((await socket.receive(timeout=5.0)).data)
            pushed[body["type"]] = body
        assert pushed["order.paid"]["data"]["order_id"] == order["id"]
        await socket.close()


def test_the_exporters_image_runs_debian_s_exporters(built):
    image = images.build("exporters", images.ensure_base_image())
    port = free_ports(1)[0]
    argv = ["prometheus-redis-exporter", "-redis.addr=redis://127.0.0.1:6379"]
    argv.append(f"-web.listen-address=127.0.0.1:{port}")
    with images.container(f"relais-exporter-{uuid.uuid4().hex[:6]}", image, {}, *argv) as name:
        deadline = time.monotonic() + 30
        while True:
            # the compose stack's health check of an exporter
            check = images.podman(
                "exec", name, "curl", "-fsS", f"http://127.0.0.1:{port}/metrics", check=False
            )
            if check.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert "redis_up 1" in check.stdout, images.logs(name)
        user = images.podman("exec", name, "id", "-un").stdout.strip()
        assert user == "nobody"


def test_a_stopped_container_finishes_and_exits_cleanly(built, config, keys):
    port, metrics = free_ports(2)
    env = container_env(config, "gateway", (port, metrics), keys)
    with images.container(f"relais-stop-{uuid.uuid4().hex[:6]}", built["gateway"], env) as name:
        images.wait_healthy(name, HEALTHY_WITHIN)
        started = time.monotonic()
        images.podman("stop", "--time", "30", name)
        took = time.monotonic() - started
        exit_code = images.podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout
        assert exit_code.strip() == "0", images.logs(name)
        assert took < 30, took  # SIGTERM did it: no SIGKILL after the grace
