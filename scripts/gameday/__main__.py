"""`python -m scripts.gameday`: run the catalogue of faults (see the package docstring)."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from devstack.settings import ROOT
from scripts.gameday.faults import CATALOGUE, SHORT, Check, Evidence, Expect, Fault
from scripts.gameday.report import FaultRecord, Outcome, render
from scripts.gameday.stack import TIME_SCALE, GameDayStack, game_day_stack, until
from scripts.gameday.watch import Episode

# Seconds of calm trickle before the first fault: every rate and ratio has its windows (the
# short game day needs only its availability page's hundred requests a minute).
WARM_UP = 30.0
SHORT_WARM_UP = 15.0
# How long the alerts of the last fault may take to end before the next is injected (a burn
# rate's page ends once its shorter window, 30 s on the game day's clock, is clean; its ticket
# once its 6 h window is: 6 min).
CALM_WITHIN = 420.0
# How long a fault's page alerts may take to resolve once it is undone.
RESOLVE_WITHIN = 120.0
# At the end, how long the last alerts (tickets on long windows) may take to resolve.
FINAL_RESOLVE = 480.0


async def run_fault(stack: GameDayStack, fault: Fault) -> FaultRecord:
    """Inject, hold until the expected alerts fire, gather evidence, restore, check."""

    # One fault at a time: a page, or an alert this fault must raise, still firing from the
    # last one would hide this one's.
    def in_the_way() -> list[Episode]:
        return open_pages(stack) + [
            episode for e in fault.expect for episode in stack.watch.firing(e.alert, e.labels)
        ]

    calm = await until(lambda: not in_the_way(), CALM_WITHIN, every=1.0)
    print(f"[gameday] {fault.name}: {fault.what}", flush=True)
    record = FaultRecord(fault=fault, injected_at=time.time())
    if not calm:
        still = ", ".join(sorted({e.describe() for e in in_the_way()}))
        record.checks.append(Check("nothing it must raise fired before the fault", False, still))
    try:
        await asyncio.wait_for(fault.inject(stack), timeout=fault.fire_within + 60)
    except Exception as exc:
        record.checks.append(Check("the fault was injected", False, repr(exc)))
    before = [e for e in fault.expect if not e.after_restore]
    await fired(stack, record, before, since=record.injected_at, within=fault.fire_within)
    record.checks += await fault.during(stack, record.injected_at, time.time())
    record.evidence = [(item.command, *await run_evidence(stack, item)) for item in fault.evidence]
    record.restored_at = time.time()
    try:
        await fault.restore(stack)
    except Exception as exc:
        record.checks.append(Check("the fault was undone", False, repr(exc)))
    after = [e for e in fault.expect if e.after_restore]
    await fired(stack, record, after, since=record.injected_at, within=fault.fire_within)
    record.checks += await fault.after(stack, record.injected_at, time.time())
    await resolved(stack, record)
    record.ended_at = time.time()
    for check in record.checks:
        print(
            f"[gameday]   {'ok  ' if check.ok else 'FAIL'} {check.what} {check.detail}", flush=True
        )
    return record


def open_pages(stack: GameDayStack) -> list[Episode]:
    """The pages firing now."""
    return [e for e in stack.watch.open_episodes() if e.labels.get("severity") == "page"]


async def fired(
    stack: GameDayStack, record: FaultRecord, expected: list[Expect], since: float, within: float
) -> None:
    """Wait (bounded) until each expected alert has fired since the fault; record each."""

    def found() -> list[Episode | None]:
        return [stack.watch.first(e.alert, e.labels, since) for e in expected]

    def delivered() -> bool:
        # fired, and reached its receiver or was silenced by the alert that explains it (or
        # already ended: an episode shorter than its route's grouping wait is never sent)
        return all(
            e is not None and (e.notified or e.inhibited_by or e.resolved_at) for e in found()
        )

    await until(delivered, within)
    for expect, episode in zip(expected, found(), strict=True):
        record.outcomes.append(Outcome(expect, episode))
        when = (
            f"fired +{episode.fired_at - record.injected_at:.1f} s" if episode else "DID NOT FIRE"
        )
        print(f"[gameday]   {expect.alert}{expect.labels or ''}: {when}", flush=True)


async def resolved(stack: GameDayStack, record: FaultRecord) -> None:
    """Wait (bounded) until the fault's pages have resolved: the stack is back to calm."""
    pages = [
        o.episode
        for o in record.outcomes
        if o.episode and o.episode.labels.get("severity") == "page"
    ]
    await until(lambda: all(episode.resolved_at for episode in pages), RESOLVE_WITHIN, every=1.0)


async def run_evidence(stack: GameDayStack, item: Evidence) -> tuple[bool, str]:
    """Run one evidence command: whether its output shows the cause, and the lines that do."""
    argv = item.argv()
    if argv is None:
        result = await stack.query(item.command)
        lines = [json.dumps({**row["metric"], "value": row["value"][1]}) for row in result]
    else:
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=ROOT,
            env={**stack.env, "AMQP_URL": stack.config.amqp_url},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await process.communicate()
        lines = out.decode(errors="replace").splitlines()
    shown = [line for line in lines if item.shows in line]
    return bool(shown), "\n".join(shown[:4])[:600]


async def game_day(
    names: list[str], warm_up: float, final_wait: float
) -> tuple[list[FaultRecord], float, list[Episode], dict[str, float], float]:
    """Bring the stack up, run the chosen faults one at a time, wait (up to `final_wait`) for
    the last alerts to resolve."""
    chosen = [fault for fault in CATALOGUE if fault.name in names]
    records = []
    started = time.time()
    async with game_day_stack() as stack:
        print(f"[gameday] stack up at {stack.base}; trickle for {warm_up:.0f} s", flush=True)
        await asyncio.sleep(warm_up)
        for fault in chosen:
            records.append(await run_fault(stack, fault))
        await calm(stack, final_wait)
        health = await rule_health(stack)
        record_all = stack.watch.episodes
        for record in records:
            record.also = [
                e
                for e in record_all
                if record.injected_at <= e.fired_at <= record.ended_at
                and all(o.episode is not e for o in record.outcomes)
            ]
    return records, time.time() - started, record_all, health, started


async def rule_health(stack: GameDayStack) -> dict[str, float]:
    """Whether Prometheus kept its faster clock: its slowest rule group's last evaluation, and
    the evaluations it missed (an evaluation longer than the interval skips the next)."""
    async with stack.http.get(f"{stack.prometheus}/api/v1/rules") as response:
        groups = (await response.json())["data"]["groups"]
    async with stack.http.get(f"{stack.prometheus}/metrics") as response:
        exposition = await response.text()
    missed = sum(
        float(line.rsplit(" ", 1)[1])
        for line in exposition.splitlines()
        if line.startswith("prometheus_rule_group_iterations_missed_total{")
    )
    return {
        "slowest rule group's last evaluation (s)": max(g["evaluationTime"] for g in groups),
        "rule group evaluations missed": missed,
    }


async def calm(stack: GameDayStack, within: float) -> None:
    """Wait (bounded) until no alert fires."""
    await until(lambda: not stack.watch.open_episodes(), within, every=2.0)


def main() -> None:
    """Parse arguments, run the game day, write its report; non-zero if anything failed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--faults", help=f"comma-separated (default: all; short: {','.join(SHORT)})"
    )
    parser.add_argument("--short", action="store_true", help="only the short game day's faults")
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "reports")
    parser.add_argument("--publish", type=Path, help="also write the report here")
    args = parser.parse_args()
    known = [fault.name for fault in CATALOGUE]
    names = list(SHORT) if args.short else (args.faults.split(",") if args.faults else known)
    unknown = set(names) - set(known)
    if unknown:
        parser.error(f"unknown faults {sorted(unknown)}; known: {known}")
    # the short game day does not wait for its slow-burn tickets (windows of minutes) to end
    # Stopped (SIGTERM, as by a timeout) the game day still takes its stack down and drops its
    # database, vhost and keys: the signal becomes the KeyboardInterrupt asyncio.run unwinds.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    records, seconds, episodes, health, started = asyncio.run(
        game_day(names, *((SHORT_WARM_UP, 0.0) if args.short else (WARM_UP, FINAL_RESOLVE)))
    )
    text = render(records, seconds, TIME_SCALE, episodes, health, started)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"gameday-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.md"
    path.write_text(text)
    if args.publish:
        args.publish.parent.mkdir(parents=True, exist_ok=True)
        args.publish.write_text(text)
    failed = [record.fault.name for record in records if not record.passed]
    print(f"[gameday] report: {path}")
    if failed:
        sys.exit(f"[gameday] failed: {', '.join(failed)}")
    print(f"[gameday] every fault raised its alerts and the stack came back ({seconds:.0f} s)")


if __name__ == "__main__":
    main()
