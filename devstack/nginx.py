"""NGINX: the config rendered from the template, started or reloaded."""

from __future__ import annotations

import copy
import grp
import ipaddress
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from contracts import MAX_MEDIA
from devstack.processes import _pid, nginx_group, prepare_runtime_dir
from devstack.services import run_service_command
from devstack.settings import ROOT, TEMPLATE, StackSettings

# What a multipart form adds to the file it carries (boundaries, part headers), at most.
MULTIPART_FRAMING = 64 * 1024


# How NGINX rests a server that failed: out of rotation for 10 s after 3 failures. Not the
# gateways: once every gateway had been out (a game day stopped both), NGINX kept answering "no
# live upstreams" long after they were back; a refused connection costs nothing, so a dead
# gateway is simply skipped on each handshake.
PASSIVE_CHECK = " max_fails=3 fail_timeout=10s"
NO_PASSIVE_CHECK = " max_fails=0"


def upstream_servers(upstreams: list[str], check: str = PASSIVE_CHECK) -> str:
    """An upstream block's servers (`host:port` or `unix:/path`); one that is always down when
    there are none (a stack without that service answers 503)."""
    if not upstreams:
        return "        server 127.0.0.1:1 down;"
    return "\n".join(f"        server {address}{check};" for address in upstreams)


def render_nginx(
    config: StackSettings, upstreams: list[str], payments: list[str], gateways: list[str]
) -> Path:
    """Write NGINX' config for this stack: `upstreams` serve the API, `payments` the providers'
    webhooks, `gateways` the WebSockets."""
    group = grp.getgrgid(nginx_group(config)).gr_name
    runtime = prepare_runtime_dir(config)
    values = {
        **edge_values(config, upstreams, payments, gateways),
        # Only a master running as root can switch its workers to another user.
        "nginx_user": f"user {config.nginx_user} {group};" if os.geteuid() == 0 else "",
        "nginx_workers": config.nginx_workers,
        "nginx_run_dir": str(config.run_dir / "nginx"),
        "nginx_runtime_dir": str(runtime),
        "nginx_error_log": str(config.log_dir / "nginx-error.log"),
        "nginx_access_log": f"{config.log_dir / 'nginx-access.log'} relais_json"
        if config.nginx_access_log
        else "off",
        "nginx_status_listen": f"unix:{nginx_status_socket(config)}",
        "nginx_listen_host": "127.0.0.1:",
        "nginx_http_port": str(config.nginx_port),
        "nginx_tls_port": str(config.nginx_tls_port),
        "nginx_tls_certificate": str(config.key_dir / "tls.crt"),
        "nginx_tls_key": str(config.key_dir / "tls.key"),
        "nginx_api_document": str(api_document_path(config)),
        "nginx_docs_dir": str(docs_path(config)),
        "nginx_conf_dir": str(TEMPLATE.parent),
    }
    (config.run_dir / "nginx").mkdir(parents=True, exist_ok=True)
    path = config.run_dir / "nginx" / "nginx.conf"
    path.write_text(fill_template(values))
    return path


def edge_values(
    config: StackSettings, upstreams: list[str], payments: list[str], gateways: list[str]
) -> dict[str, str]:
    """What the edge does, whichever stack it fronts: its limits, upstreams, CORS and trace
    policy, and the problem documents' base URL."""
    rate, burst, connections = config.edge_limits()
    return {
        "nginx_rate_limit": str(rate),
        "nginx_rate_burst": str(burst),
        "nginx_conn_limit": str(connections),
        "nginx_media_body_bytes": str(MAX_MEDIA + MULTIPART_FRAMING),
        "nginx_media_limit_text": f"{MAX_MEDIA // 2**20} MiB",
        "nginx_core_servers": upstream_servers(upstreams),
        "nginx_payments_servers": upstream_servers(payments),
        "nginx_gateway_servers": upstream_servers(gateways, NO_PASSIVE_CHECK),
        "nginx_problem_base": f"{config.public_url}/api/problems/",
        "nginx_cors_origins": "\n".join(
            f'        "{origin}" $http_origin;' for origin in cors_origins(config)
        ),
        "nginx_trusted_trace_callers": "\n".join(
            f"        {network} 1;" for network in trusted_trace_networks(config)
        ),
    }


def fill_template(values: dict[str, str]) -> str:
    """NGINX' template with every double-braced name filled."""
    return re.sub(r"{{ (\w+) }}", lambda m: values[m.group(1)], TEMPLATE.read_text())


_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")


def cors_origins(config: StackSettings) -> list[str]:
    """The browser origins CORS admits, each `scheme://host[:port]` exactly."""
    origins = [origin.strip() for origin in config.cors_allowed_origins.split(",")]
    for origin in filter(None, origins):
        if not _ORIGIN.fullmatch(origin):
            raise SystemExit(f"CORS_ALLOWED_ORIGINS: {origin!r} is not scheme://host[:port]")
    return [origin for origin in origins if origin]


def trusted_trace_networks(config: StackSettings) -> list[str]:
    """The networks whose callers keep their trace context, normalized."""
    networks = filter(None, (text.strip() for text in config.trusted_trace_callers.split(",")))
    try:
        return [str(ipaddress.ip_network(network, strict=False)) for network in networks]
    except ValueError as exc:
        raise SystemExit(f"NGINX_TRUSTED_TRACE_CALLERS: {exc}") from exc


def nginx_status_socket(config: StackSettings) -> Path:
    """NGINX' `stub_status`, on a Unix socket no client can reach."""
    return config.runtime_dir / "nginx-status.sock"


def nginx_binary() -> str:
    """The nginx executable (installed by `make up` when missing)."""
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if found is None:
        raise SystemExit("nginx is not installed: run `make up`, which installs it")
    return found


def api_document_path(config: StackSettings) -> Path:
    """Where the API's published document is (NGINX serves it as `/api/openapi.json`): in the
    runtime folder, which NGINX' workers may read whatever the mode of the state folder."""
    return config.runtime_dir / "openapi.json"


def start_nginx(
    config: StackSettings,
    upstreams: list[str],
    payments: list[str] | None = None,
    gateways: list[str] | None = None,
) -> None:
    """Start NGINX, or reload it with a freshly rendered config if it runs."""
    conf = render_nginx(config, upstreams, payments or [], gateways or [])
    prefix = str(config.run_dir / "nginx")
    base = [
        nginx_binary(),
        "-p",
        prefix,
        "-c",
        str(conf),
        "-e",
        str(config.log_dir / "nginx-error.log"),
    ]
    subprocess.run([*base, "-t", "-q"], check=True)
    if _pid(config.run_dir / "nginx" / "nginx.pid"):
        subprocess.run([*base, "-s", "reload"], check=True)
    else:
        subprocess.run(base, check=True)


# The services whose operations NGINX serves (the API's one document is theirs, merged).
DOCUMENTED = ["services.core", "services.payments"]


def api_document() -> str:
    """The API's one document, merged from the services' own (`python -m <module> openapi`):
    the operations of every service behind NGINX."""
    documents = [
        json.loads(run_service_command(module, ["openapi"], dict(os.environ)))
        for module in DOCUMENTED
    ]
    return json.dumps(merge_documents(documents))


def publish_api_document(config: StackSettings) -> Path:
    """Write the API's one document where the native stack's NGINX serves it."""
    prepare_runtime_dir(config)
    path = api_document_path(config)
    path.write_text(api_document())
    path.chmod(0o640)  # the owner writes it, NGINX' workers (the folder's group) read it
    return path


def docs_path(config: StackSettings) -> Path:
    """Where the published copy of `docs/` is (NGINX serves it as `/docs/`)."""
    return config.runtime_dir / "docs"


def publish_docs(config: StackSettings) -> Path:
    """Copy `docs/` where NGINX' workers may read it (the checkout may be a private folder)."""
    target = docs_path(config)
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(ROOT / "docs", target)
    for folder, _, files in os.walk(target):
        Path(folder).chmod(0o2750)
        for name in files:
            (Path(folder) / name).chmod(0o640)
    return target


def merge_documents(documents: list[dict[str, Any]]) -> dict[str, Any]:
    """One OpenAPI document from several: the first one's `info`, every path, and every
    component (one named twice must be the same in both)."""
    merged = copy.deepcopy(documents[0])
    for document in documents[1:]:
        for path, operations in document.get("paths", {}).items():
            if path in merged["paths"]:
                raise SystemExit(f"two services document {path}")
            merged["paths"][path] = operations
        for kind, components in document.get("components", {}).items():
            known = merged.setdefault("components", {}).setdefault(kind, {})
            for name, component in components.items():
                if known.setdefault(name, component) != component:
                    raise SystemExit(f"two services define the component {kind}/{name} apart")
    return merged
