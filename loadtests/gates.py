"""The SLO gates of `gates.yml`, checked on the master when a run ends: the process exits 1 and
names every gate a journey broke."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import yaml
from locust import events
from locust.runners import WorkerRunner

# The versioned gates; LOADTEST_GATES names another file (a stricter one, say).
GATES = Path(os.environ.get("LOADTEST_GATES") or Path(__file__).with_name("gates.yml"))
log = logging.getLogger("loadtests.gates")


def broken(stats: Any, gates: dict[str, Any]) -> list[str]:
    """What each request name broke of its gate (none: the run passes)."""
    found = []
    for entry in stats.entries.values():
        if not entry.num_requests:
            continue
        gate = {**gates["default"], **gates.get("gates", {}).get(entry.name, {})}
        p95, p99 = (
            entry.get_response_time_percentile(0.95),
            entry.get_response_time_percentile(0.99),
        )
        errors = entry.num_failures / entry.num_requests
        for what, value, limit in (
            ("p95", p95, gate["p95"]),
            ("p99", p99, gate["p99"]),
            ("errors", errors, gate["errors"]),
        ):
            if value > limit:
                found.append(f"{entry.name}: {what} {value:.3g} > {limit}")
    return found


@events.quitting.add_listener
def _judge(environment, **_: Any) -> None:  # type: ignore[no-untyped-def]
    if isinstance(environment.runner, WorkerRunner):
        return
    failures = broken(environment.stats, yaml.safe_load(GATES.read_text()))
    if failures:
        log.error("SLO gates failed:\n  %s", "\n  ".join(failures))
        environment.process_exit_code = 1
    else:
        log.info("SLO gates passed (%d request names)", len(environment.stats.entries))
