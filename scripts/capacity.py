"""`make capacity`: step the load until an SLO gate breaks, and write down what this machine
takes, where it breaks, and what saturates first.

Locust runs distributed (`loadtests/run.sh`: a master and two workers) with the capacity shape
(`loadtests/capacity.py`): steps of more users, each measured over its own window and judged by
`loadtests/gates.yml`, until one breaks a gate. For the same windows this reads from
Prometheus what the stack's resources did: the CPU of each process (the process exporter's
groups and each service process's own), PostgreSQL pool waits, queue depths and event-loop
lag. It writes a Markdown report with PNG plots (`docs/capacity/` by default) that names, per
journey, the highest throughput within its SLOs, and the first resource to saturate.

The stack must run with the per-address limits lifted (every request comes from 127.0.0.1):
this restarts it with `LOADTEST_LIMITS=1` unless it already runs so.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import time
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from devstack.commands import restart, running_config, up
from devstack.durations import seconds_of
from devstack.localhttp import LOCAL
from devstack.processes import supervisor_running
from devstack.settings import ROOT, StackSettings

OUT = ROOT / "docs" / "capacity"
# A request name's prefix is its journey (`checkout: pay` is the checkout's); `setup` is not one.
NOT_JOURNEYS = {"setup", "Aggregated"}


@dataclass(frozen=True)
class Resource:
    """What may saturate: a PromQL query over a window (`{w}`, in seconds) by `labels`, and the
    value past which it counts as saturated."""

    title: str
    query: str
    labels: tuple[str, ...]
    threshold: float
    unit: str
    why: str


RESOURCES = [
    Resource(
        "CPU of a service process",
        'sum by (service, instance) (rate(process_cpu_seconds_total{{job=~"relais-.*"}}[{w}s]))',
        ("service", "instance"),
        0.85,
        "cores",
        "each instance runs one event loop: one core is all it can use",
    ),
    Resource(
        "CPU of Redis",
        'sum(rate(namedprocess_namegroup_cpu_seconds_total{{groupname="redis-server"}}[{w}s]))',
        (),
        0.85,
        "cores",
        "Redis executes commands on one thread",
    ),
    Resource(
        "CPU of the host",
        "sum(rate(namedprocess_namegroup_cpu_seconds_total[{w}s])) / {cpus}",
        (),
        0.9,
        "of all cores",
        "every process of the stack and the load generator share the host's cores",
    ),
    Resource(
        "CPU of a Locust worker",
        'sum(rate(namedprocess_namegroup_cpu_seconds_total{{groupname="locust-worker"}}[{w}s]))'
        ' / sum(namedprocess_namegroup_num_procs{{groupname="locust-worker"}})',
        (),
        0.85,
        "cores",
        "past this the load generator, not the stack, sets the pace",
    ),
    Resource(
        "PostgreSQL pool wait (mean)",
        "sum by (service) (rate(relais_db_pool_acquire_seconds_sum[{w}s]))"
        " / sum by (service) (rate(relais_db_pool_acquire_seconds_count[{w}s]))",
        ("service",),
        0.005,
        "s",
        "requests queue for a connection once the pool is exhausted",
    ),
    Resource(
        "Queue depth (ready messages, peak)",
        "max by (queue) (max_over_time("
        'rabbitmq_detailed_queue_messages_ready{{queue!~".*\\\\.dlq"}}[{w}s]))',
        ("queue",),
        100,
        "messages",
        "consumers fall behind their producers",
    ),
    Resource(
        "Event-loop lag p99",
        "histogram_quantile(0.99, sum by (service, le) "
        "(rate(relais_event_loop_lag_seconds_bucket[{w}s])))",
        ("service",),
        0.05,
        "s",
        "callbacks wait this long for a loop busy with other work",
    ),
]
CPU_BY_PROCESS = "sum by (groupname) (rate(namedprocess_namegroup_cpu_seconds_total[{w}s]))"


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--step-users", type=int, default=int(os.environ.get("STEP_USERS", 25)))
    parser.add_argument("--step-seconds", type=int, default=int(os.environ.get("STEP_SECONDS", 60)))
    parser.add_argument(
        "--settle-seconds", type=int, default=int(os.environ.get("SETTLE_SECONDS", 15))
    )
    parser.add_argument("--max-users", type=int, default=int(os.environ.get("MAX_USERS", 500)))
    parser.add_argument("--min-judged", type=int, default=int(os.environ.get("MIN_JUDGED", 20)))
    parser.add_argument("--workers", type=int, default=int(os.environ.get("LOADTEST_WORKERS", 2)))
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("CAPACITY_OUT", OUT)))
    parser.add_argument(
        "--prepare",
        action="store_true",
        help="only bring the stack up (or restart it) with LOADTEST_LIMITS=1 (`make loadtest`)",
    )
    parser.add_argument(
        "--from",
        dest="source",
        type=Path,
        help="draw the report again from a measurement's steps.json, measuring nothing",
    )
    parser.add_argument(
        "--as-configured",
        action="store_true",
        default=bool(os.environ.get("CAPACITY_AS_CONFIGURED")),
        help="run against the stack as it runs, limits and all (a small run, a test)",
    )
    return parser.parse_args()


def load_stack(as_configured: bool) -> StackSettings:
    """The running stack's configuration, restarted with the load test's limits if need be."""
    config = running_config(StackSettings())
    running = supervisor_running(config)
    if as_configured:
        if not running:
            raise SystemExit("the stack is not running: `make up` first")
        return config
    if running and config.load_test_limits:
        return config
    action = "restart" if running else "up"
    print(
        f"{action} of the stack with LOADTEST_LIMITS=1 (every request of a load comes "
        "from 127.0.0.1: the per-address limits would be measured, not the stack); "
        "`make restart` puts the shipped limits back"
    )
    requested = StackSettings(load_test_limits=True)
    (restart if running else up)(requested)
    return running_config(requested)


def run_load(config: StackSettings, options: argparse.Namespace, steps_file: Path) -> int:
    """Run the capacity steps with Locust; its exit status."""
    steps = math.ceil(options.max_users / options.step_users)
    report = steps_file.parent / "locust"
    env = {
        **os.environ,
        "LOADTEST_HOST": f"http://127.0.0.1:{config.nginx_port}",
        "LOADTEST_WORKERS": str(options.workers),
        "LOAD_SHAPE": "capacity",
        "STEP_USERS": str(options.step_users),
        "STEP_SECONDS": str(options.step_seconds),
        "MAX_USERS": str(options.max_users),
        "SHAPE_SECONDS": str((steps + 1) * options.step_seconds),
        "REPORT": str(report),
    }
    command = [
        "bash",
        str(ROOT / "loadtests" / "run.sh"),
        "--settle-seconds",
        str(options.settle_seconds),
        "--capacity-out",
        str(steps_file),
        "--min-judged",
        str(options.min_judged),
    ]
    timeout = (steps + 2) * options.step_seconds + 180
    return subprocess.run(command, env=env, cwd=ROOT, timeout=timeout, check=False).returncode


def query(config: StackSettings, promql: str, at: float) -> list[dict[str, Any]]:
    """An instant query's result rows."""
    params = urllib.parse.urlencode({"query": promql, "time": f"{at:.3f}"})
    url = f"http://127.0.0.1:{config.prometheus_port}/api/v1/query?{params}"
    with LOCAL.open(url, timeout=30) as response:
        body = json.load(response)
    if body.get("status") != "success":
        raise RuntimeError(f"Prometheus refused {promql}: {body}")
    rows: list[dict[str, Any]] = body["data"]["result"]
    return rows


def valued(rows: Iterable[dict[str, Any]], labels: tuple[str, ...]) -> dict[str, float]:
    """{what (its labels' values), value} of query rows, without NaN (nothing to divide)."""
    found = {}
    for row in rows:
        value = float(row["value"][1])
        if not math.isnan(value):
            found[" ".join(row["metric"].get(label, "") for label in labels) or "all"] = value
    return found


def read_resources(config: StackSettings, step: dict[str, Any]) -> dict[str, Any]:
    """What each resource did in a step's window, and the CPU of each group of processes."""
    # a rate needs two scrapes in its range: a window shorter than three scrape intervals is
    # read over the three before its end
    seconds = max(int(step["end"] - step["start"]), int(3 * seconds_of(config.scrape_interval)))
    cpus = os.cpu_count() or 1
    found: dict[str, Any] = {
        resource.title: valued(
            query(config, resource.query.format(w=seconds, cpus=cpus), step["end"]),
            resource.labels,
        )
        for resource in RESOURCES
    }
    cpu = query(config, CPU_BY_PROCESS.format(w=seconds), step["end"])
    found["cpu"] = valued(cpu, ("groupname",))
    return found


def journeys_of(step: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per journey: requests/s, its worst p95 and p99, its error ratio, and whether it held."""
    found: dict[str, dict[str, float]] = {}
    for name, figures in step["names"].items():
        journey = name.split(":", 1)[0]
        if journey in NOT_JOURNEYS:
            continue
        mine = found.setdefault(
            journey, {"rps": 0.0, "p95": 0.0, "p99": 0.0, "requests": 0, "failures": 0.0}
        )
        mine["rps"] += figures["rps"]
        mine["p95"] = max(mine["p95"], figures["p95"])
        mine["p99"] = max(mine["p99"], figures["p99"])
        mine["requests"] += figures["requests"]
        mine["failures"] += figures["errors"] * figures["requests"]
    for journey, mine in found.items():
        mine["errors"] = mine["failures"] / mine["requests"] if mine["requests"] else 0.0
        mine["held"] = not any(gate.startswith(f"{journey}: ") for gate in step["broken"])
    return found


def knees(steps: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per journey: its highest throughput at a step before any of its gates broke, and the
    step where one broke (if one did)."""
    found: dict[str, dict[str, Any]] = {}
    for step in steps:
        for journey, figures in journeys_of(step).items():
            knee = found.setdefault(journey, {"rps": 0.0, "users": 0, "broke": None})
            if knee["broke"] is not None:
                continue
            if not figures["held"]:
                gates = [gate for gate in step["broken"] if gate.startswith(f"{journey}: ")]
                knee["broke"] = {"users": step["users"], "gates": gates}
            elif figures["rps"] > knee["rps"]:
                knee.update(rps=figures["rps"], users=step["users"], p95=figures["p95"])
                knee["p99"] = figures["p99"]
    return found


def first_saturated(
    steps: list[dict[str, Any]],
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The first resource to saturate: past its threshold from a step to the last (a lone
    spike is not saturation); of several from the same step, the furthest past it. Also every
    resource past its threshold at some step, at its worst."""
    sustained: list[dict[str, Any]] = []
    worst: dict[tuple[str, str], dict[str, Any]] = {}
    for resource in RESOURCES:
        whats = {what for step in steps for what in step["resources"][resource.title]}
        for what in whats:
            ratios = [
                step["resources"][resource.title].get(what, 0.0) / resource.threshold
                for step in steps
            ]
            for index, ratio in enumerate(ratios):
                if ratio >= 1 and ratio > worst.get((resource.title, what), {}).get("ratio", 0):
                    worst[resource.title, what] = entry(resource, what, steps[index], ratio)
            since = len(ratios)
            while since > 0 and ratios[since - 1] >= 1:
                since -= 1
            if since < len(ratios):
                sustained.append(entry(resource, what, steps[since], ratios[since]))
    first = min(sustained, key=lambda item: (item["users"], -item["ratio"]), default=None)
    return first, sorted(worst.values(), key=lambda item: (item["users"], -item["ratio"]))


def entry(resource: Resource, what: str, step: dict[str, Any], ratio: float) -> dict[str, Any]:
    """A resource's value at a step, and how far past its threshold."""
    value = step["resources"][resource.title].get(what, 0.0)
    return {
        "resource": resource,
        "what": what,
        "value": value,
        "ratio": ratio,
        "users": step["users"],
    }


def plot(steps: list[dict[str, Any]], out: Path) -> list[tuple[str, str]]:
    """The report's PNG plots: (file name, caption) of each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    users = [step["users"] for step in steps]
    per_step = [journeys_of(step) for step in steps]
    journeys = sorted({journey for figures in per_step for journey in figures})
    broke = next((step["users"] for step in steps if step["broken"]), None)
    made = []

    def finish(axes: Any, name: str, caption: str, ylabel: str) -> None:
        for ax in axes:
            if broke is not None:
                ax.axvline(broke, color="red", linestyle=":", label="a gate broke")
            ax.set_xlabel("users")
            ax.grid(alpha=0.3)
            ax.legend(fontsize="small")
        axes[0].set_ylabel(ylabel)
        axes[0].figure.tight_layout()
        axes[0].figure.savefig(out / name, dpi=100)
        plt.close(axes[0].figure)
        made.append((name, caption))

    def series(journey: str, key: str) -> list[float]:
        return [figures.get(journey, {}).get(key, math.nan) for figures in per_step]

    _, ax = plt.subplots(figsize=(9, 5))
    total = [step["names"].get("Aggregated", {}).get("rps", 0.0) for step in steps]
    ax.plot(users, total, marker="o", color="black", label="all requests")
    for journey in journeys:
        ax.plot(users, series(journey, "rps"), marker=".", label=journey)
    finish([ax], "throughput.png", "Throughput against users, in all and per journey", "req/s")

    _, axes = plt.subplots(1, 2, figsize=(12, 5), sharey=True)
    for ax, key in zip(axes, ("p95", "p99"), strict=True):
        for journey in journeys:
            ax.plot(users, series(journey, key), marker=".", label=journey)
        ax.set_yscale("log")
        ax.set_title(f"{key} (the journey's slowest request name)")
    finish(list(axes), "latency.png", "p95 and p99 against users, per journey", "ms")

    _, ax = plt.subplots(figsize=(9, 5))
    for journey in journeys:
        ax.plot(users, [100 * v for v in series(journey, "errors")], marker=".", label=journey)
    finish([ax], "errors.png", "Error rate against users, per journey", "% of requests")

    _, ax = plt.subplots(figsize=(9, 5))
    groups = sorted(
        {group for step in steps for group in step["resources"]["cpu"]},
        key=lambda group: -steps[-1]["resources"]["cpu"].get(group, 0.0),
    )
    ax.stackplot(
        users,
        [[step["resources"]["cpu"].get(group, 0.0) for step in steps] for group in groups],
        labels=groups,
        colors=[plt.get_cmap("tab20")(index) for index in range(len(groups))],
    )
    ax.axhline(os.cpu_count() or 1, color="black", linestyle="--", label="the host's cores")
    finish([ax], "cpu.png", "CPU of each process group against users, stacked", "cores")

    _, axes = plt.subplots(2, 2, figsize=(12, 8))
    for ax, resource in zip(axes.flat, RESOURCES[4:] + RESOURCES[:1], strict=False):
        for what, values in busiest_series(steps, resource.title):
            ax.plot(users, values, marker=".", label=what)
        ax.axhline(resource.threshold, color="orange", linestyle="--", label="saturated")
        ax.set_title(f"{resource.title} ({resource.unit})")
    finish(list(axes.flat), "saturation.png", "Saturation signals against users", "")
    return made


def busiest_series(
    steps: list[dict[str, Any]], title: str, most: int = 6
) -> list[tuple[str, list[float]]]:
    """A resource's series per step (a queue's, a service's …): the `most` that went highest,
    or their maximum alone while every one stays at 0."""
    whats = sorted({what for step in steps for what in step["resources"][title]})
    series = [
        (what, [step["resources"][title].get(what, math.nan) for step in steps]) for what in whats
    ]
    moving = [item for item in series if max(item[1], default=0.0) > 0]
    if not moving:
        peak = [max(step["resources"][title].values(), default=math.nan) for step in steps]
        return [("all", peak)]
    return sorted(moving, key=lambda item: -max(item[1]))[:most]


def machine() -> str:
    """This machine, as the report's first lines describe it."""
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if "model name" in line),
        platform.processor() or "unknown CPU",
    )
    memory = 0
    if Path("/proc/meminfo").exists():
        first = Path("/proc/meminfo").read_text().splitlines()[0]
        memory = int(first.split()[1]) // 2**20
    return (
        f"{os.cpu_count()} cores ({model}), {memory} GiB, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}"
    )


def commit() -> str:
    result = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    )
    return result.stdout.strip() or "unknown"


def fmt(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value * 1000:.1f} ms"
    if unit == "of all cores":
        return f"{100 * value:.0f}% {unit}"
    return f"{value:.2f} {unit}"


def report(record: dict[str, Any], out: Path) -> str:
    """The Markdown report of a measurement (`record`), its plots written to `out`."""
    steps, options, stack = record["steps"], record["options"], record["stack"]
    made = plot(steps, out)
    found = knees(steps)
    saturated, crossed = first_saturated(steps)
    last = steps[-1]
    lines = [
        "# Capacity of this machine",
        "",
        f"Measured {record['measured_at']} on {record['machine']}, at commit "
        f"`{record['commit']}`. The stack as `make up` runs it ({stack['core_instances']} core "
        f"instances, {stack['payments_instances']} payments worker, {stack['ai_instances']} AI "
        f"worker, {stack['gateway_instances']} gateway instances, NGINX, PostgreSQL, Redis, "
        "RabbitMQ)"
        + (", with the per-address limits lifted" if stack["load_test_limits"] else "")
        + f"; Locust's master and {options['workers']} workers on the same cores.",
        "",
        "Remake it with `ADMIN_PASSWORD=... make capacity` (`STEP_USERS`, `STEP_SECONDS`, "
        "`SETTLE_SECONDS`, `MAX_USERS` change the steps; `python -m scripts.capacity --from "
        "docs/capacity/steps.json` draws this report again from its figures).",
        "",
        f"Steps of {options['step_users']} users, each held {options['step_seconds']} s and "
        f"measured over its last {options['step_seconds'] - options['settle_seconds']} s, "
        "judged by `loadtests/gates.yml`. Requests/s count every request of a journey's steps "
        "(a checkout is an order, a payment and a status check).",
        "",
    ]
    if last["broken"]:
        lines += [
            f"**The run stopped at {last['users']} users**, where these gates broke: "
            + "; ".join(f"`{gate}`" for gate in last["broken"])
            + ".",
            "",
        ]
    else:
        lines += [
            f"**No gate broke up to {last['users']} users** (the top step): raise `MAX_USERS`.",
            "",
        ]
    lines += [
        "## The highest throughput within the SLOs, per journey",
        "",
        "A journey that held to the last step could take more: its figure is a floor.",
        "",
        "| journey | req/s | at users | p95 / p99 there | first broke |",
        "|---|---:|---:|---|---|",
    ]
    for journey, knee in sorted(found.items()):
        broke = knee["broke"]
        where = (
            f"at {broke['users']} users: " + "; ".join(f"`{g}`" for g in broke["gates"])
            if broke
            else "held to the last step"
        )
        rps = f"{knee['rps']:.1f}" if broke else f"≥ {knee['rps']:.1f}"
        there = f"{knee.get('p95', 0):.0f} / {knee.get('p99', 0):.0f} ms" if knee["users"] else "-"
        lines.append(f"| {journey} | {rps} | {knee['users']} | {there} | {where} |")
    lines += ["", "## What saturated first", ""]
    if saturated is not None:
        resource = saturated["resource"]
        lines.append(
            f"**{resource.title}** ({saturated['what']}): past its "
            f"{fmt(resource.threshold, resource.unit)} from {saturated['users']} users on "
            f"({fmt(saturated['value'], resource.unit)} there): {resource.why}."
        )
    else:
        lines.append("No resource stayed past its threshold.")
    if crossed:
        lines += ["", "Every resource past its threshold at some step, at its worst:", ""]
        lines += [
            f"- {item['resource'].title} ({item['what']}): "
            f"{fmt(item['value'], item['resource'].unit)} at {item['users']} users"
            for item in crossed
        ]
    lines += [
        "",
        "| resource | saturated past | why |",
        "|---|---|---|",
        *(f"| {r.title} | {fmt(r.threshold, r.unit)} | {r.why} |" for r in RESOURCES),
        "",
        "## Step by step",
        "",
        "| users | req/s | p95 ms | p99 ms | errors | host CPU | busiest processes (cores) | "
        "pool wait | loop lag p99 | gates broken |",
        "|---:|---:|---:|---:|---:|---:|---|---:|---:|---|",
    ]
    for step in steps:
        total = step["names"].get("Aggregated", {})
        resources = step["resources"]
        host = max(resources["CPU of the host"].values(), default=0.0)
        busiest = sorted(resources["cpu"].items(), key=lambda item: -item[1])[:2]
        pool = max(resources["PostgreSQL pool wait (mean)"].values(), default=0.0)
        lag = max(resources["Event-loop lag p99"].items(), key=lambda item: item[1])
        lines.append(
            f"| {step['users']} | {total.get('rps', 0):.0f} | {total.get('p95', 0):.0f} | "
            f"{total.get('p99', 0):.0f} | {100 * total.get('errors', 0):.2f}% | "
            f"{100 * host:.0f}% | {', '.join(f'{g} {v:.2f}' for g, v in busiest)} | "
            f"{pool * 1000:.1f} ms | {lag[1] * 1000:.0f} ms ({lag[0]}) | "
            f"{'; '.join(step['broken']) or '-'} |"
        )
    lines += ["", "## Plots", ""]
    for name, caption in made:
        lines += [f"![{caption}]({name})", "", f"*{caption}.*", ""]
    lines += [
        "`steps.json` holds the measurement: every step's figures per request name and every "
        "resource's values.",
        "",
    ]
    return "\n".join(lines)


def measure(options: argparse.Namespace) -> dict[str, Any]:
    """Run the steps and read their windows from Prometheus: the measurement's record."""
    config = load_stack(options.as_configured)
    scratch = ROOT / "var" / "reports" / f"capacity-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    scratch.mkdir(parents=True, exist_ok=True)
    steps_file = scratch / "steps.jsonl"
    status = run_load(config, options, steps_file)
    if not steps_file.exists():
        raise SystemExit(f"no step was measured (Locust exited {status}): see its output above")
    steps = [json.loads(line) for line in steps_file.read_text().splitlines() if line]
    time.sleep(2 + seconds_of(config.scrape_interval))  # the last window's last scrape
    for step in steps:
        step["resources"] = read_resources(config, step)
    print(f"Locust's own report: {scratch}")
    return {
        "measured_at": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "machine": machine(),
        "commit": commit(),
        "stack": {
            "core_instances": config.core_instances,
            "payments_instances": config.payments_instances,
            "ai_instances": config.ai_instances,
            "gateway_instances": config.gateway_instances,
            "load_test_limits": config.load_test_limits,
        },
        "options": {
            key: getattr(options, key)
            for key in ("step_users", "step_seconds", "settle_seconds", "max_users", "workers")
        },
        "steps": steps,
    }


def main() -> None:
    options = arguments()
    if options.prepare:
        load_stack(as_configured=False)
        return
    if options.source is not None:
        record = json.loads(options.source.read_text())
    else:
        record = measure(options)
    options.out.mkdir(parents=True, exist_ok=True)
    (options.out / "steps.json").write_text(json.dumps(record, indent=1) + "\n")
    (options.out / "README.md").write_text(report(record, options.out))
    print(f"capacity report: {options.out / 'README.md'}")


if __name__ == "__main__":
    main()
