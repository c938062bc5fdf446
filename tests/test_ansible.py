"""infra/ansible, checked without touching a host: the playbooks' syntax for every inventory,
ansible-lint's production profile, the production inventory's files rendered (NGINX's
upstreams, Prometheus' targets, the grafana and jaeger roles' templates that cannot run here)
and checked by their own tools, and the refusal of the example vault's placeholders."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from devstack.nginx import nginx_binary
from devstack.secrets import NATIVE_KEY_NAMES, write_keys

ROOT = Path(__file__).resolve().parent.parent
ANSIBLE = ROOT / "infra" / "ansible"
BIN = ROOT / ".venv" / "bin"
INVENTORIES = ["local", "production"]
VAULT = ANSIBLE / "inventories" / "production" / "group_vars" / "all" / "vault.yml"


def playbook(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(BIN / "ansible-playbook"), *args],
        cwd=ANSIBLE,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if check:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def inventory_hosts(group: str) -> dict[str, dict[str, object]]:
    data = yaml.safe_load((ANSIBLE / "inventories/production/hosts.yml").read_text())
    hosts: dict[str, dict[str, object]] = data["all"]["children"][group]["hosts"]
    return hosts


@pytest.mark.parametrize("inventory", INVENTORIES)
@pytest.mark.parametrize("book", ["site.yml", "render.yml"])
def test_the_playbooks_pass_their_syntax_check(inventory, book):
    playbook("-i", f"inventories/{inventory}", book, "--syntax-check")


def test_ansible_lint_passes_with_the_production_profile():
    result = subprocess.run(
        [
            str(BIN / "ansible-lint"),
            "--offline",
            "--profile",
            "production",
            "site.yml",
            "render.yml",
        ],
        cwd=ANSIBLE,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Profile 'production' was required, and it passed" in result.stdout + result.stderr


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("rendered")
    playbook("-i", "inventories/production", "render.yml", "-e", f"render_dir={folder}")
    return folder


def test_nginx_s_upstreams_are_every_core_and_gateway_host_of_the_inventory(rendered, tmp_path):
    edge = next(iter(inventory_hosts("edge")))
    conf = (rendered / edge / "nginx.conf").read_text()

    def servers(upstream: str) -> list[str]:
        block = conf.split(f"upstream {upstream} {{", 1)[1].split("}", 1)[0]
        return [
            line.split()[1] for line in block.splitlines() if line.strip().startswith("server ")
        ]

    core = [
        f"{host['ansible_host']}:{8001 + i}"
        for host in inventory_hosts("core").values()
        for i in range(2)
    ]
    assert servers("core") == core
    gateway = [f"{host['ansible_host']}:8401" for host in inventory_hosts("gateway").values()]
    assert servers("gateway") == gateway
    payments = [
        f"{host['ansible_host']}:8201"
        for host in inventory_hosts("workers").values()
        if "payments" in host["relais_workers"]  # type: ignore[operator]
    ]
    assert servers("payments") == payments
    # and NGINX takes it (this machine's certificate in place of the host's)
    write_keys(tmp_path, NATIVE_KEY_NAMES)
    conf = conf.replace("/etc/ssl/certs/ssl-cert-snakeoil.pem", str(tmp_path / "tls.crt"))
    conf = conf.replace("/etc/ssl/private/ssl-cert-snakeoil.key", str(tmp_path / "tls.key"))
    conf = conf.replace("/etc/nginx/relais", str(ROOT / "infra" / "nginx"))
    (tmp_path / "nginx.conf").write_text(conf)
    result = subprocess.run(
        [nginx_binary(), "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_prometheus_scrapes_every_host_of_the_inventory(rendered, tmp_path):
    monitoring = next(iter(inventory_hosts("monitoring")))
    path = rendered / monitoring / "prometheus.yml"
    promtool = shutil.which("promtool")
    assert promtool is not None
    check = subprocess.run(
        [promtool, "check", "config", "--syntax-only", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    jobs = {job["job_name"]: job for job in yaml.safe_load(path.read_text())["scrape_configs"]}
    native = yaml.safe_load((ROOT / "infra/prometheus/prometheus.yml").read_text())[
        "scrape_configs"
    ]
    # The backups' exporter is the native stack's (its pgBackRest on the machine's PostgreSQL).
    assert {job["job_name"] for job in native} - {"backups"} <= set(jobs)
    core = jobs["relais-core"]["static_configs"][0]["targets"]
    assert len(core) == 2 * len(inventory_hosts("core"))
    every_host = jobs["process"]["static_configs"][0]["targets"]
    groups = ["edge", "core", "gateway", "workers", "data", "replicas", "monitoring"]
    assert len(every_host) == sum(len(inventory_hosts(group)) for group in groups)


def test_the_roles_that_cannot_run_here_still_render(rendered):
    monitoring = rendered / next(iter(inventory_hosts("monitoring")))
    datasources = yaml.safe_load((monitoring / "datasources.yml").read_text())
    assert {source["uid"] for source in datasources["datasources"]} == {"prometheus", "jaeger"}
    unit = (monitoring / "jaeger.service").read_text()
    assert "ExecStart=" in unit and "NoNewPrivileges=true" in unit


def test_production_refuses_the_example_vault_s_placeholders():
    refused = playbook("-i", "inventories/production", "site.yml", "--tags", "none", check=False)
    assert refused.returncode != 0
    assert "example vault's placeholder" in refused.stdout
    real = {
        line.split(":", 1)[0]: f"a-real-{index}"
        for index, line in enumerate(VAULT.read_text().splitlines())
        if line.startswith("vault_")
    }
    accepted = playbook(
        "-i", "inventories/production", "site.yml", "--tags", "none", "-e", json.dumps(real)
    )
    assert "failed=0" in accepted.stdout
