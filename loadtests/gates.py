"""The SLO gates of `gates.yml`, checked on the master when a run ends: the process exits 1 and
names every gate a journey broke. A capacity run (`--load-shape capacity`) judges each step
instead (`capacity.py`)."""

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


def load_gates() -> dict[str, Any]:
    """The gates file's content."""
    gates: dict[str, Any] = yaml.safe_load(GATES.read_text())
    return gates


# A percentile is judged once it is more than one request's time: p95 from 20 requests on, p99
# from 100 (below that, p99 is the slowest request of the run, and one slow request is not a
# breach of a 1% tail). The error ratio is judged from the first request.
JUDGED_FROM = {"p95": 20, "p99": 100}


def judge(
    name: str, p95: float, p99: float, errors: float, gates: dict[str, Any], requests: int
) -> list[str]:
    """What a request name's figures (milliseconds; errors as a ratio) over `requests` requests
    break of its gate."""
    gate = {**gates["default"], **gates.get("gates", {}).get(name, {})}
    return [
        f"{name}: {what} {value:.0f} ms > {gate[what]} ms"
        if what != "errors"
        else f"{name}: errors {value:.2%} > {gate[what]:.2%}"
        for what, value in (("p95", p95), ("p99", p99), ("errors", errors))
        if value > gate[what] and requests >= JUDGED_FROM.get(what, 1)
    ]


def broken(stats: Any, gates: dict[str, Any]) -> list[str]:
    """What each request name of a run broke of its gate (none: the run passes)."""
    found = []
    for entry in stats.entries.values():
        if entry.num_requests:
            found += judge(
                entry.name,
                entry.get_response_time_percentile(0.95),
                entry.get_response_time_percentile(0.99),
                entry.num_failures / entry.num_requests,
                gates,
                entry.num_requests,
            )
    return found


@events.quitting.add_listener
def _judge(environment, **_: Any) -> None:  # type: ignore[no-untyped-def]
    if isinstance(environment.runner, WorkerRunner):
        return
    options = environment.parsed_options
    if options is not None and options.load_shape == "capacity":
        return  # its steps were judged one by one; a broken gate is what it looks for
    failures = broken(environment.stats, load_gates())
    if failures:
        log.error("SLO gates failed:\n  %s", "\n  ".join(failures))
        environment.process_exit_code = 1
    else:
        log.info("SLO gates passed (%d request names)", len(environment.stats.entries))
