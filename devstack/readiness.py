"""Readiness: every component's health, and a real API request through NGINX last."""

from __future__ import annotations

import shutil
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from devstack.processes import show_logs
from devstack.settings import READY_TIMEOUT, StackSettings


def http_status(url: str) -> int | None:
    """The status of a GET, or None if nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - local URLs only
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return None


def api_probe_url(config: StackSettings) -> str:
    """A real API request through NGINX: the last proof that the stack serves."""
    return f"http://127.0.0.1:{config.nginx_port}/api/products?limit=1"


def readiness(config: StackSettings) -> dict[str, int | None]:
    """Each component's health URL and its status now, ending with a real API request."""
    checks = {
        f"http://127.0.0.1:{config.nginx_port}/healthz": http_status(
            f"http://127.0.0.1:{config.nginx_port}/healthz"
        )
    }
    for _, _, port, _ in config.processes():
        url = f"http://127.0.0.1:{port}/health/ready"
        checks[url] = http_status(url)
    if shutil.which("prometheus") and shutil.which("prometheus-alertmanager"):
        for port in (config.prometheus_port, config.alertmanager_port):
            url = f"http://127.0.0.1:{port}/-/ready"
            checks[url] = http_status(url)
    # Last, once everything behind it is ready: NGINX counts a refused connection against the
    # instance, and a probe before the instances listen would take them out of rotation.
    ready = all(status == 200 for status in checks.values())
    checks[api_probe_url(config)] = http_status(api_probe_url(config)) if ready else None
    return checks


def report(config: StackSettings, checks: dict[str, int | None]) -> bool:
    """Print each check; for a failed API request, the logs that say why. True if all pass."""
    for url, code in checks.items():
        print(f"{'ready' if code == 200 else 'NOT READY':<10} {url} -> {code}")
    if checks[api_probe_url(config)] != 200:
        print(
            f"the API does not answer through NGINX: read {config.log_dir / 'nginx-error.log'}"
            f" and the instances' logs ({config.log_dir / 'core-*.log'})",
            file=sys.stderr,
        )
    return all(code == 200 for code in checks.values())


def wait_ready(config: StackSettings, timeout: float = READY_TIMEOUT) -> None:
    """Block until every component answers 200, or fail with the logs' tails."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(status == 200 for status in readiness(config).values()):
            return
        time.sleep(0.2)
    show_logs(config, lines=30)
    report(config, readiness(config))
    print("Relais is NOT up", file=sys.stderr)
    raise SystemExit(1)
