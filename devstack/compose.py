"""What `docker compose up` needs beside docker-compose.yml: the compose variant of NGINX' config
(rendered from the native stack's template into infra/compose/nginx.conf and committed), and the
installation's own files under var/compose/ (`make compose-init`): its secrets, generated once and
kept, PostgreSQL's roles and RabbitMQ's users made from them, and the API's merged document.

    python -m devstack.compose nginx [--check]   write (or check) infra/compose/nginx.conf
    python -m devstack.compose init [--dir DIR]  write what var/compose/ lacks (DIR elsewhere)
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import secrets
import sys
from pathlib import Path

from devstack.broker import broker_users
from devstack.nginx import api_document, edge_values, fill_template
from devstack.secrets import write_keys
from devstack.settings import ROOT, StackSettings

COMPOSE_DIR = ROOT / "infra" / "compose"
NGINX_CONF = COMPOSE_DIR / "nginx.conf"
STATE_DIR = ROOT / "var" / "compose"
# The compose stack's address as its clients see it (NGINX' own problem documents link there).
PUBLIC_URL = "http://localhost"
# NGINX' fixed address on the compose network: the only proxy the services trust.
NGINX_ADDRESS = "172.30.0.10"
# Where each container finds what NGINX serves, its includes and its secrets.
CONTAINER_PATHS = {
    "conf": "/etc/nginx/relais",
    "share": "/usr/share/nginx/relais",
    "secrets": "/run/secrets",
    "cache": "/var/cache/nginx",
}
STATUS_PORT = 8081
# Services by compose name: their port.
SERVICE_PORTS = {"core": 8001, "payments": 8201, "ai": 8301, "gateway": 8401}


def compose_settings() -> StackSettings:
    """The compose stack's names and limits: the native stack's defaults, whatever this shell's
    environment says."""
    return StackSettings.model_validate({})


def render_compose_nginx() -> str:
    """NGINX' config for the compose stack: the native template, listening on every address of
    the container, its upstreams the compose services (Docker's DNS gives every replica of a
    scaled service when NGINX starts or reloads), logs to the container's output."""
    config = compose_settings()
    servers = {name: [f"{name}:{port}"] for name, port in SERVICE_PORTS.items()}
    paths = CONTAINER_PATHS
    values = {
        **edge_values(config, servers["core"], servers["payments"], servers["gateway"]),
        "nginx_problem_base": f"{PUBLIC_URL}/api/problems/",
        # The official image's nginx runs its workers as its own unprivileged `nginx` user.
        "nginx_user": "",
        "nginx_workers": "auto",
        "nginx_run_dir": "/var/run",
        "nginx_runtime_dir": paths["cache"],
        "nginx_error_log": "/dev/stderr",
        "nginx_access_log": "/dev/stdout relais_json",
        "nginx_status_listen": str(STATUS_PORT),
        "nginx_listen_host": "",
        "nginx_http_port": "80",
        "nginx_tls_port": "443",
        "nginx_tls_certificate": f"{paths['secrets']}/tls_certificate",
        "nginx_tls_key": f"{paths['secrets']}/tls_key",
        "nginx_api_document": f"{paths['share']}/openapi.json",
        "nginx_docs_dir": f"{paths['share']}/docs",
        "nginx_conf_dir": paths["conf"],
    }
    header = (
        "# Generated from infra/nginx/relais.conf.template by `make compose-nginx`: edit the\n"
        "# template (or devstack/compose.py), not this file.\n"
    )
    return header + fill_template(values)


def postgres_init_sql(config: StackSettings, passwords: dict[str, str]) -> str:
    """The roles and database of a new cluster (what `make up` does on an existing one): core's
    role owns the database, the payments owner and the AI role may create their schemas, the
    monitoring role has pg_monitor."""
    roles = config.database_roles()
    lines = [f"CREATE ROLE {roles[kind]} LOGIN PASSWORD '{passwords[kind]}';" for kind in roles]
    lines += [
        f"GRANT pg_monitor TO {roles['monitor']};",
        f"CREATE DATABASE {config.database_name} OWNER {roles['core']};",
        *(
            f"GRANT CONNECT, CREATE ON DATABASE {config.database_name} TO {roles[kind]};"
            for kind in ("payments_owner", "ai")
        ),
    ]
    return "\n".join(lines) + "\n"


def rabbitmq_password_hash(password: str) -> str:
    """RabbitMQ's salted SHA-256 password hash (rabbit_password_hashing_sha256)."""
    salt = secrets.token_bytes(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def rabbitmq_definitions(config: StackSettings, passwords: dict[str, str]) -> dict[str, object]:
    """The vhost and users RabbitMQ imports at boot: the operator's, with every permission, and
    each service's, with only its own (as the service itself declares them)."""
    vhost = config.rabbitmq_vhost
    services = broker_users(config)
    users = [{"name": config.rabbitmq_user, "tags": ["administrator"]}]
    users += [{"name": user, "tags": []} for user in services]
    everything = {"configure": ".*", "write": ".*", "read": ".*"}
    permissions = [{"user": config.rabbitmq_user, "vhost": vhost, **everything}]
    topics = []
    for user, allowed in services.items():
        permissions.append(
            {
                "user": user,
                "vhost": vhost,
                "configure": allowed.configure,
                "write": allowed.write,
                "read": allowed.read,
            }
        )
        topics += [
            {"user": user, "vhost": vhost, "exchange": exchange, "write": write, "read": read}
            for exchange, (write, read) in allowed.topics.items()
        ]
    return {
        "users": [
            {
                **user,
                "password_hash": rabbitmq_password_hash(passwords[str(user["name"])]),
                "hashing_algorithm": "rabbit_password_hashing_sha256",
            }
            for user in users
        ],
        "vhosts": [{"name": vhost}],
        "permissions": permissions,
        "topic_permissions": topics,
    }


def _kept(path: Path) -> str:
    """A password kept in `path`, made there the first time."""
    if not path.exists():
        _write(path, secrets.token_urlsafe(24) + "\n")
    return path.read_text().strip()


def _write(path: Path, text: str) -> None:
    """Write a file the containers' users may read: compose mounts a secret with its file's own
    mode, and the services run as an unprivileged user (the secrets folder itself is 0700)."""
    path.unlink(missing_ok=True)  # read-only once written
    path.write_text(text)
    path.chmod(0o444)


# The names compose's secrets give the generated keys (see devstack.secrets.write_keys).
COMPOSE_KEY_NAMES = {
    "webhook": "payments_webhook_secret",
    "jwt_private": "jwt_private_key",
    "jwt_public": "jwt_public_key",
    "tls_certificate": "tls_certificate",
    "tls_key": "tls_key",
}


def init(target: Path) -> list[str]:
    """Write what `target` (var/compose) lacks for `docker compose up`: passwords and keys are
    made once and kept; what derives from them (connection URLs, PostgreSQL's first roles,
    RabbitMQ's definitions) and the API document are written again. The files written."""
    config = compose_settings()
    folder = target / "secrets"
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    before = {path.name for path in folder.iterdir()}
    _kept(folder / "postgres_password")
    _kept(folder / "grafana_admin_password")
    _kept(folder / "admin_password")  # the API's first admin (README), and the load tests'
    roles = config.database_roles()
    db = {kind: _kept(folder / f"database_password_{kind}") for kind in roles}
    for kind in ("core", "payments", "payments_owner", "ai"):
        dsn = f"postgresql://{roles[kind]}:{db[kind]}@postgres:5432/{config.database_name}"
        _write(folder / f"{kind}_database_url", dsn + "\n")
    _write(folder / "postgres_init.sql", postgres_init_sql(config, db))
    users = config.broker_accounts()
    amqp = {kind: _kept(folder / f"rabbitmq_password_{kind}") for kind in users}
    for kind in ("core", "payments", "ai", "gateway"):
        url = f"amqp://{users[kind]}:{amqp[kind]}@rabbitmq:5672/{config.rabbitmq_vhost}"
        _write(folder / f"{kind}_amqp_url", url + "\n")
    definitions = rabbitmq_definitions(config, {users[kind]: amqp[kind] for kind in users})
    _write(folder / "rabbitmq_definitions.json", json.dumps(definitions, indent=1) + "\n")
    write_keys(folder, COMPOSE_KEY_NAMES, mode=0o444)
    (target / "openapi.json").write_text(api_document())
    (target / "openapi.json").chmod(0o644)
    written = sorted(path.name for path in folder.iterdir() if path.name not in before)
    return [f"secrets/{name}" for name in written] + ["openapi.json"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["nginx", "init"])
    parser.add_argument("--check", action="store_true", help="`nginx`: fail if it is stale")
    parser.add_argument("--dir", type=Path, default=STATE_DIR, help="`init`: where to write")
    args = parser.parse_args()
    if args.command == "nginx":
        text = render_compose_nginx()
        if args.check:
            if NGINX_CONF.read_text() != text:
                sys.exit(f"{NGINX_CONF} is stale: run `make compose-nginx`")
            return
        NGINX_CONF.parent.mkdir(parents=True, exist_ok=True)
        NGINX_CONF.write_text(text)
        print(NGINX_CONF.relative_to(ROOT))
        return
    for name in init(args.dir):
        print(args.dir / name)


if __name__ == "__main__":
    main()
