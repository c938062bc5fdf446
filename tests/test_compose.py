"""The compose stack, validated here without a Docker engine: docker-compose.yml against the
compose specification, its NGINX config by `nginx -t` (the compose names resolvable for the
check), every path it and the Dockerfiles reference, its secrets, and a compose twin for every
process the native stack runs. `make test-images` builds and starts the images themselves."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack import StackSettings
from devstack.commands import expected_processes
from devstack.compose import (
    CONTAINER_PATHS,
    NGINX_CONF,
    SERVICE_PORTS,
    compose_settings,
    init,
    render_compose_nginx,
)
from devstack.nginx import nginx_binary
from scripts.images import DOCKERFILES

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
# What the native stack runs that compose leaves to the installation: the development stand-in
# for an on-call tool, which Alertmanager's webhooks reach in its place; the backups' exporter
# and the streaming replica, which are the machine's PostgreSQL's (pgBackRest, `REPLICA=1`).
NOT_IN_COMPOSE = {"alert-receiver", "backup-exporter", "postgres-replica"}
# Only these publish ports to the host.
PUBLISHING = {"nginx", "grafana", "jaeger", "prometheus"}
ONE_SHOT = {"migrate", "migrate-ai", "migrate-payments"}
_VARIABLE = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def dotenv() -> dict[str, str]:
    """The values docker compose reads from .env."""
    pairs = (
        line.split("=", 1)
        for line in (ROOT / ".env").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )
    return {key.strip(): value.strip() for key, value in pairs}


def interpolate(text: str, values: dict[str, str]) -> str:
    """Compose's `${VAR}` / `${VAR:-default}`, from `values` else the default."""
    return _VARIABLE.sub(lambda m: values.get(m.group(1)) or m.group(2) or "", text)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """docker-compose.yml as compose reads it (merge keys resolved, .env interpolated)."""
    loaded: dict[str, Any] = yaml.safe_load(interpolate(COMPOSE_FILE.read_text(), dotenv()))
    return loaded


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `make compose-init` writes, in a folder of this test's."""
    target = tmp_path_factory.mktemp("compose")
    init(target)
    return target


def long_running(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = compose["services"]
    return {name: service for name, service in services.items() if name not in ONE_SHOT}


def test_the_compose_file_is_valid_by_the_compose_specification():
    checker = shutil.which("check-jsonschema", path=str(ROOT / ".venv" / "bin"))
    assert checker is not None
    result = subprocess.run(
        [checker, "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_long_running_service_is_healthchecked_limited_and_waits_for_health(compose):
    for name, service in long_running(compose).items():
        assert service["healthcheck"]["test"], name
        assert service["deploy"]["resources"]["limits"]["memory"], name
        assert service.get("restart") in {"unless-stopped", "no"}, name
        for dependency, condition in service.get("depends_on", {}).items():
            wanted = (
                "service_completed_successfully" if dependency in ONE_SHOT else "service_healthy"
            )
            assert condition["condition"] == wanted, (name, dependency)
    assert compose["services"]["core"]["deploy"]["replicas"] == 3
    assert compose["services"]["gateway"]["deploy"]["replicas"] == 2
    for name in SERVICE_PORTS:  # the application services wait for the migrations
        needs = compose["services"][name]["depends_on"]
        assert needs["migrate"] == {"condition": "service_completed_successfully"}, name
    locust = [
        name
        for name, service in compose["services"].items()
        if "load" in service.get("profiles", [])
    ]
    assert sorted(locust) == ["locust-master", "locust-worker"]


def test_every_image_is_pinned_in_the_env_file(compose):
    raw = yaml.safe_load(COMPOSE_FILE.read_text())
    env = dotenv()
    for name, service in raw["services"].items():
        image = service["image"]
        variables = _VARIABLE.findall(image)
        assert variables, f"{name}: {image} is not taken from .env"
        for variable, _ in variables:
            assert variable in env, (name, variable)
    for name, service in compose["services"].items():
        tag = service["image"].rsplit(":", 1)[-1]
        assert tag and tag != "latest" and "/" not in tag, (name, service["image"])


def test_only_the_edge_and_the_operator_uis_publish_ports(compose):
    publishing = {name for name, service in compose["services"].items() if service.get("ports")}
    assert publishing == PUBLISHING
    assert compose["services"]["nginx"]["ports"] == ["80:80", "443:443"]
    for name in PUBLISHING - {"nginx"}:
        for port in compose["services"][name]["ports"]:
            assert port.startswith("127.0.0.1:"), (name, port)


def test_secrets_come_from_files_never_from_environment_literals(compose, generated):
    secret_words = re.compile(r"(?i)(password|secret|private|token)")
    for name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if key.endswith("_FILE"):
                assert str(value).startswith("/run/secrets/"), (name, key)
            elif not key.endswith("_DIR"):
                assert not secret_words.search(key), (name, key)
            assert not re.search(r"://[^/@\s]+:[^/@\s]+@", str(value)), (name, key, value)
    folder = generated / "secrets"
    assert (folder.stat().st_mode & 0o777) == 0o700
    for name, secret in compose["secrets"].items():
        path = Path(secret["file"].replace("./var/compose", str(generated)))
        assert path.is_file(), name
    # The URLs name the roles and users the databases and the broker were made with.
    config = compose_settings()
    roles, users = config.database_roles(), config.broker_accounts()
    assert f"//{roles['core']}:" in (folder / "core_database_url").read_text()
    assert f"//{users['gateway']}:" in (folder / "gateway_amqp_url").read_text()
    init_sql = (folder / "postgres_init.sql").read_text()
    assert all(f"CREATE ROLE {role} LOGIN" in init_sql for role in roles.values())
    definitions = json.loads((folder / "rabbitmq_definitions.json").read_text())
    assert {user["name"] for user in definitions["users"]} == set(users.values())
    assert all("password" not in user for user in definitions["users"])
    commands = {name: " ".join(compose["services"][name]["command"]) for name in ONE_SHOT}
    assert f"--grant {roles['ai']}" in commands["migrate"]
    assert f"--grant {roles['payments']}" in commands["migrate-payments"]


def test_compose_init_keeps_its_passwords_and_keys(generated):
    folder = generated / "secrets"
    before = {path.name: path.read_bytes() for path in folder.iterdir()}
    init(generated)
    after = {path.name: path.read_bytes() for path in folder.iterdir()}
    kept = [name for name in before if "password" in name or "key" in name or "tls" in name]
    assert kept and all(before[name] == after[name] for name in kept)


def test_the_services_read_their_secrets_from_compose_s_files(tmp_path, monkeypatch):
    from services.payments.settings import PaymentsSettings

    (tmp_path / "database_url").write_text("postgresql://relais_payments:s3cret@postgres/relais\n")
    (tmp_path / "payments_webhook_secret").write_text("whsec_from_a_file\n")
    monkeypatch.setenv("RELAIS_SECRETS_DIR", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    settings = PaymentsSettings()
    assert settings.database_url == "postgresql://relais_payments:s3cret@postgres/relais"
    assert settings.payments_webhook_secret is not None
    assert settings.payments_webhook_secret.get_secret_value() == "whsec_from_a_file"
    # The environment still wins over a file, as it does over every default.
    monkeypatch.setenv("DATABASE_URL", "postgresql://other@db/relais")
    assert PaymentsSettings().database_url == "postgresql://other@db/relais"


def test_the_committed_compose_nginx_config_is_the_template_s():
    assert NGINX_CONF.read_text() == render_compose_nginx(), "run `make compose-nginx`"


def test_the_compose_nginx_config_passes_nginx_t(tmp_path, generated):
    """`nginx -t` on the compose config, its container paths made local and the compose
    services' names resolvable (an /etc/hosts of the check's own, in a mount namespace)."""
    share = tmp_path / "share"
    (share / "docs").mkdir(parents=True)
    (tmp_path / "cache").mkdir()  # the official image's
    shutil.copy(generated / "openapi.json", share / "openapi.json")
    local = {
        CONTAINER_PATHS["conf"]: str(ROOT / "infra" / "nginx"),
        CONTAINER_PATHS["share"]: str(share),
        CONTAINER_PATHS["secrets"]: str(generated / "secrets"),
        CONTAINER_PATHS["cache"]: str(tmp_path / "cache"),
        "/var/run/nginx.pid": str(tmp_path / "nginx.pid"),
    }
    text = NGINX_CONF.read_text()
    for container, here in local.items():
        assert container in text, container
        text = text.replace(container, here)
    conf = tmp_path / "nginx.conf"
    conf.write_text(text)
    hosts = tmp_path / "hosts"
    names = " ".join(SERVICE_PORTS)
    hosts.write_text(f"127.0.0.1 localhost {names}\n")
    check = f"mount --bind {hosts} /etc/hosts && {nginx_binary()} -t -p {tmp_path} -c {conf}"
    unshare = ["unshare", "--mount"] if os.geteuid() == 0 else ["unshare", "-rm"]
    result = subprocess.run(
        [*unshare, "sh", "-c", check], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr
    # without the names, the same config fails: the check does resolve them
    unresolved = subprocess.run(
        [nginx_binary(), "-t", "-p", str(tmp_path), "-c", str(conf)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert unresolved.returncode != 0 and "host not found" in unresolved.stderr


def test_every_path_the_dockerfiles_and_the_compose_file_name_exists(compose):
    dockerfiles = [ROOT / path for path in DOCKERFILES.values()]
    for name, service in compose["services"].items():
        build = service.get("build")
        if build:
            assert (ROOT / build["context"]).is_dir(), name
            dockerfiles.append(ROOT / build["context"] / build["dockerfile"])
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./") and not source.startswith("./var/"):
                assert (ROOT / source).exists(), (name, source)
    ignored = (ROOT / ".dockerignore").read_text()
    for dockerfile in set(dockerfiles):
        assert dockerfile.is_file(), dockerfile
        for line in dockerfile.read_text().splitlines():
            parts = line.split()
            if parts[:1] == ["COPY"] and not any(p.startswith("--from") for p in parts):
                for source in parts[1:-1]:
                    assert (ROOT / source).exists(), (dockerfile, source)
                    top = source.split("/")[0]
                    assert f"!{top}" in ignored, f"{source}: not in the build context"


def test_every_process_of_the_native_stack_has_its_compose_twin(compose):
    native = {re.sub(r"-\d+$", "", name) for name in expected_processes(StackSettings())}
    native |= {"postgres", "redis", "rabbitmq"}  # the machine's own, natively
    assert native - NOT_IN_COMPOSE <= set(compose["services"]), native - set(compose["services"])
    # and Prometheus scrapes each of them there as it does natively
    scraped = yaml.safe_load((ROOT / "infra/prometheus/prometheus.compose.yml").read_text())
    jobs = {job["job_name"] for job in scraped["scrape_configs"]}
    assert {f"relais-{service}" for service in SERVICE_PORTS} <= jobs
    native_jobs = yaml.safe_load((ROOT / "infra/prometheus/prometheus.yml").read_text())
    assert {job["job_name"] for job in native_jobs["scrape_configs"]} - {"backups"} <= jobs


async def test_the_images_health_check_passes_only_on_a_ready_answer(aiohttp_server):
    from aiohttp import web

    ready = {"status": 200}

    async def health(_: web.Request) -> web.Response:
        return web.json_response({}, status=ready["status"])

    app = web.Application()
    app.router.add_get("/health/ready", health)
    server = await aiohttp_server(app)

    async def check(*argv: str) -> int:
        env = {**os.environ, "HTTP_PORT": str(server.port)}
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "chassis.healthcheck", *argv, env=env, cwd=ROOT,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        return await process.wait()

    assert await check("/health/ready") == 0
    ready["status"] = 503
    assert await check("/health/ready") == 1
    assert await check("/nowhere") == 1
    await server.close()
    assert await check() == 1  # nothing listens
