"""Capacity steps (`--load-shape capacity`): the step load, measured and judged step by step.

Each step holds `--step-users` more users than the last for `--step-seconds`; its window is
what follows the first `--settle-seconds` (the new users have started and registered). For
each window the master computes, per request name, its throughput, p50/p95/p99 and error
ratio, from that window's requests alone, and judges them by the SLO gates. The run stops
after the first step that breaks a gate, or after the `--max-users` step. Every step is a JSON
line in `--capacity-out`, with its window's wall-clock start and end, for the report
(`make capacity`) to read the stack's own metrics of the same windows from Prometheus.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from gates import judge, load_gates
from locust import events
from locust.stats import calculate_response_time_percentile, diff_response_time_dicts

log = logging.getLogger("loadtests.capacity")


@events.init_command_line_parser.add_listener
def _arguments(parser) -> None:  # type: ignore[no-untyped-def]
    parser.add_argument(
        "--settle-seconds",
        type=int,
        default=15,
        include_in_web_ui=False,
        help="capacity: seconds of each step before its measured window",
    )
    parser.add_argument(
        "--min-judged",
        type=int,
        default=20,
        include_in_web_ui=False,
        help="capacity: a request name with fewer requests in a window is reported, not "
        "judged (its p99 would be one request's time)",
    )
    parser.add_argument(
        "--capacity-out",
        default="",
        include_in_web_ui=False,
        help="capacity: the JSON-lines file each measured step is written to",
    )


# What a window starts from, per request name: (response times, requests, failures).
Snapshot = dict[str, tuple[dict[int, int], int, int]]


def snapshot(stats: Any) -> Snapshot:
    """Every request name's counts so far (and the total's, as `Aggregated`)."""
    entries = [*stats.entries.values(), stats.total]
    return {
        entry.name: (dict(entry.response_times), entry.num_requests, entry.num_failures)
        for entry in entries
    }


def window(before: Snapshot, after: Snapshot, seconds: float) -> dict[str, dict[str, float]]:
    """Each request name's figures between two snapshots: requests/s, failures, p50/p95/p99."""
    figures = {}
    for name, (times, requests, failures) in after.items():
        old_times, old_requests, old_failures = before.get(name, ({}, 0, 0))
        count = requests - old_requests
        if count <= 0:
            continue
        recent = diff_response_time_dicts(times, old_times)
        figures[name] = {
            "requests": count,
            "rps": count / seconds,
            "errors": (failures - old_failures) / count,
            **{
                label: calculate_response_time_percentile(recent, count, percent)
                for label, percent in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
            },
        }
    return figures


class Steps:
    """The capacity shape's state on the master: the step it is in, its window's start."""

    def __init__(self) -> None:
        self.index = -1
        self.opened: tuple[float, Snapshot] | None = None
        self.stopping = False

    def tick(self, runner: Any, elapsed: float) -> tuple[int, float] | None:
        """The users and spawn rate now, or None once a step broke a gate or the top is done."""
        options = runner.environment.parsed_options
        width, step = options.step_seconds, options.step_users
        index = int(elapsed // width)
        if index != self.index:
            if self.opened is not None:
                self.close(runner, step * (self.index + 1))
            self.index, self.opened = index, None
            if self.stopping or step * (index + 1) > options.max_users:
                return None
        if self.opened is None and elapsed - index * width >= options.settle_seconds:
            self.opened = (time.time(), snapshot(runner.stats))
        return step * (index + 1), max(1.0, step / 2)

    def close(self, runner: Any, users: int) -> None:
        """Measure and judge the window that ends now, and write it down."""
        assert self.opened is not None
        started, before = self.opened
        ended = time.time()
        figures = window(before, snapshot(runner.stats), ended - started)
        gates, options = load_gates(), runner.environment.parsed_options
        broken = [
            failure
            for name, values in figures.items()
            if name != "Aggregated" and values["requests"] >= options.min_judged
            for failure in judge(
                name, values["p95"], values["p99"], values["errors"], gates, values["requests"]
            )
        ]
        record = {
            "step": self.index + 1,
            "users": users,
            "running": runner.user_count,
            "start": started,
            "end": ended,
            "names": figures,
            "broken": broken,
        }
        if options.capacity_out:
            with Path(options.capacity_out).open("a", encoding="utf-8") as file:
                file.write(json.dumps(record) + "\n")
        total = figures.get("Aggregated", {})
        log.info(
            "step %d: %d users, %.0f requests/s%s",
            record["step"],
            users,
            total.get("rps", 0.0),
            f", gates broken: {'; '.join(broken)}" if broken else "",
        )
        self.stopping = bool(broken)
