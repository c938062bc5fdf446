"""Where the native stack's alerts go: a local receiver for Alertmanager's webhooks, and
`make alerts` (what fires now, who was paged for what and when).

The receiver (`python -m devstack.receiver --port P --store FILE`, a program of the stack's
supervisord) appends every notification Alertmanager posts to `/alerts/<receiver>` to a JSON
Lines file, one line per notification. In production the receivers of
`infra/alertmanager/alertmanager.yml` are replaced by the on-call tool's (PagerDuty, Opsgenie,
a chat channel): see the README.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from devstack.durations import scaled
from devstack.localhttp import LOCAL
from devstack.settings import ALERTMANAGER_CONFIG, StackSettings
from devstack.tail import tail_lines

# How many notifications `make alerts` shows.
SHOWN = 20


def notification_store(config: StackSettings) -> Path:
    """The file the receiver keeps notifications in."""
    return config.state_dir / "data" / "alerts" / "notifications.jsonl"


def render_alertmanager(config: StackSettings) -> Path:
    """Alertmanager's config for this stack: the checked-in one (the default ports), its
    receivers pointed at this stack's receiver, its grouping waits from the settings if they
    say, and its timers on the game day's clock."""
    base = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    routes = [base["route"], *base["route"].get("routes", [])]
    for route in routes:
        if config.alert_group_wait:
            route["group_wait"] = config.alert_group_wait
        for timer in ("group_wait", "group_interval", "repeat_interval"):
            if timer in route:
                route[timer] = scaled(route[timer], config.alert_time_scale)
    for receiver in base["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = f"http://127.0.0.1:{config.alert_receiver_port}/alerts/{receiver['name']}"
    path = config.run_dir / "alertmanager.yml"
    path.write_text(yaml.safe_dump(base, sort_keys=False))
    return path


def summarize(receiver: str, payload: dict[str, Any]) -> dict[str, Any]:
    """One notification as kept: when, to whom, and for which alerts."""
    return {
        "received_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "receiver": receiver,
        "status": payload.get("status"),
        "alerts": [
            {
                "alertname": alert.get("labels", {}).get("alertname"),
                "severity": alert.get("labels", {}).get("severity"),
                "status": alert.get("status"),
                "labels": alert.get("labels", {}),
                "summary": alert.get("annotations", {}).get("summary"),
                "runbook_url": alert.get("annotations", {}).get("runbook_url"),
                "starts_at": alert.get("startsAt"),
            }
            for alert in payload.get("alerts", [])
        ],
    }


def firing(config: StackSettings) -> list[dict[str, Any]]:
    """The alerts Alertmanager holds as active (neither silenced nor inhibited)."""
    url = (
        f"http://127.0.0.1:{config.alertmanager_port}/api/v2/alerts"
        "?active=true&silenced=false&inhibited=false"
    )
    with LOCAL.open(url, timeout=5) as response:
        alerts: list[dict[str, Any]] = json.load(response)
    return alerts


def notifications(config: StackSettings, count: int = SHOWN) -> list[dict[str, Any]]:
    """The last `count` notifications the receiver kept, oldest first."""
    store = notification_store(config)
    if not store.exists():
        return []
    return [json.loads(line) for line in tail_lines(store, count) if line.strip()]


def show_alerts(config: StackSettings) -> None:
    """Print what fires now and the last notifications."""
    try:
        active = firing(config)
    except OSError as exc:
        print(f"Alertmanager does not answer on port {config.alertmanager_port}: {exc}")
        active = []
    print(f"firing now ({len(active)}):")
    for alert in sorted(active, key=lambda a: a.get("startsAt", "")):
        labels = alert.get("labels", {})
        where = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != "alertname")
        print(f"  {alert.get('startsAt', '')[:19]}  {labels.get('alertname')}  {where}")
        annotations = alert.get("annotations", {})
        print(f"      {annotations.get('summary', '')}")
        if annotations.get("runbook_url"):
            print(f"      runbook: {annotations['runbook_url']}")
    kept = notifications(config)
    print(f"last notifications ({len(kept)}, kept in {notification_store(config)}):")
    for note in kept:
        for alert in note["alerts"]:
            print(
                f"  {note['received_at']}  to {note['receiver']:<7} {alert['status']:<8} "
                f"{alert['alertname']} ({alert['severity']}): {alert['summary']}"
            )
