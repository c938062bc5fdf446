"""The capacity report's reading of a measurement: knees per journey, the first resource to
saturate, the report itself (its measuring runs in the e2e suite, against a stack)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scripts import capacity

HOST = "CPU of the host"
LAG = "Event-loop lag p99"


def step(users: int, rps: dict[str, float], broken: list[str], **resources: Any) -> dict[str, Any]:
    """A measured step: each request name's throughput (p95/p99 from it), the gates it broke
    and what its resources did."""
    names = {
        name: {
            "requests": int(rate * 45),
            "rps": rate,
            "errors": 0.0,
            "p50": 5,
            "p95": 10 * users,
            "p99": 20 * users,
        }
        for name, rate in rps.items()
    }
    names["Aggregated"] = {
        "requests": 1,
        "rps": sum(rps.values()),
        "errors": 0.0,
        "p50": 1,
        "p95": 1,
        "p99": 1,
    }
    found = {resource.title: {} for resource in capacity.RESOURCES}
    found["cpu"] = {"core": 0.1 * users / 25}
    for title, values in resources.items():
        found[title.replace("_", " ")] = values
    return {"users": users, "names": names, "broken": broken, "resources": found}


def steps() -> list[dict[str, Any]]:
    return [
        step(
            25,
            {"browse: product": 20, "ai: search": 2},
            [],
            **{HOST: {"all": 0.3}, LAG: {"ai": 0.004}},
        ),
        step(
            50,
            {"browse: product": 40, "ai: search": 4},
            [],
            **{HOST: {"all": 0.6}, LAG: {"ai": 0.2}},
        ),  # a lone spike: not saturation
        step(
            75,
            {"browse: product": 60, "ai: search": 5},
            [],
            **{HOST: {"all": 0.92}, LAG: {"ai": 0.02}},
        ),
        step(
            100,
            {"browse: product": 80, "ai: search": 3},
            ["ai: search: p95 1500 ms > 1000 ms"],
            **{HOST: {"all": 0.97}, LAG: {"ai": 0.3}},
        ),
    ]


def test_each_journey_s_knee_is_its_best_step_before_it_broke():
    knees = capacity.knees(steps())
    assert knees["ai"]["rps"] == 5 and knees["ai"]["users"] == 75
    assert knees["ai"]["broke"] == {"users": 100, "gates": ["ai: search: p95 1500 ms > 1000 ms"]}
    # browsing held: its best is the last step, a floor
    assert knees["browse"]["rps"] == 80 and knees["browse"]["broke"] is None
    assert "setup" not in knees and "Aggregated" not in knees


def test_what_saturated_first_stayed_saturated_and_a_lone_spike_does_not_count():
    first, crossed = capacity.first_saturated(steps())
    assert first is not None
    assert (first["resource"].title, first["users"]) == (HOST, 75)
    # the loop's lag passed its threshold first (50 users) but fell back: listed at its worst
    # among the crossings, not taken as the first
    worst = [(item["resource"].title, item["users"]) for item in crossed]
    assert worst == [(LAG, 100), (HOST, 100)]


def test_the_report_names_the_knees_and_the_first_saturated_with_its_plots(tmp_path: Path):
    record = {
        "measured_at": "2026-12-04 08:04 UTC",
        "machine": "2 cores",
        "commit": "abc1234",
        "stack": {
            "core_instances": 2,
            "payments_instances": 1,
            "ai_instances": 1,
            "gateway_instances": 2,
            "load_test_limits": True,
        },
        "options": {
            "step_users": 25,
            "step_seconds": 60,
            "settle_seconds": 15,
            "max_users": 500,
            "workers": 2,
        },
        "steps": steps(),
    }
    text = capacity.report(record, tmp_path)
    assert "**The run stopped at 100 users**" in text
    assert "| ai | 5.0 | 75 |" in text and "| browse | ≥ 80.0 | 100 |" in text
    assert "**CPU of the host** (all): past its 90% of all cores from 75 users on" in text
    for name in ("throughput", "latency", "errors", "cpu", "saturation"):
        assert (tmp_path / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
