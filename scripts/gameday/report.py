"""The game day's record as Markdown: per fault, each alert's time to fire, receiver and time to
resolve; the inhibitions that held; the checks; the evidence; and which alerts of the rule files
no fault fired, with why."""

from __future__ import annotations

import platform
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime

import yaml

from devstack.settings import PROMETHEUS_DIR, ROOT
from scripts.gameday.faults import Check, Expect, Fault
from scripts.gameday.watch import Episode

# Alerts no fault of the catalogue raises, and why.
NOT_HERE = {
    "PaymentRefundedAutomatically": "needs a provider's success to arrive after the order was "
    "given up and cancelled (a late webhook); the sandbox settles only payments still "
    "processing, so the game day cannot stage it. tests/test_payments.py covers the refund, "
    "the promtool tests the rule.",
    "AiSearchIndexBehind": "the worker catches up from the catalog in PostgreSQL within "
    "`ai_index_max_lag` (10 s) whatever the broker does; its lag passes 60 s only when "
    "embedding falls a minute behind the catalog (thousands of product writes), which a game "
    "day on two cores does not generate. The promtool tests cover the rule.",
    "AiRpcFailing": "fires only when a handler raises on a request it accepted: a bug. The "
    "game day found recommendations answering 500 while PostgreSQL was down (the worker's "
    "database error counted as a handler failure); a worker's unreachable database or cache is "
    "now a 503 with `Retry-After` (outcome `unavailable`), so no outage raises it, and the "
    "game day does not plant a bug. tests/test_messaging.py and the promtool tests cover it.",
    "BackupTooOld": "its threshold is a backup's age (26 hours), not a window the faster clock "
    "shortens: the game day would wait 26 hours. The promtool tests cover it, with a stack "
    "that never took a backup among them.",
    "WalArchivingFailing": "WAL archiving is the machine's PostgreSQL's, shared by every stack "
    "and test on it: breaking it would break their backups too. tests/test_restore.py proves "
    "archiving end to end (a restore to a point in time), the promtool tests the rule.",
    "ReplicaLagging": "the game day's stack runs without a replica (`REPLICA=1`); on one "
    "machine the replica replays within milliseconds. `make failover-drill` measures a real "
    "replica; the promtool tests cover the rule.",
    "ReplicaDown": "the game day's stack runs without a replica (`REPLICA=1`); "
    "tests/test_replica.py stops one and sees the reads fall back to the primary, the "
    "promtool tests cover the rule.",
    "GatewayDroppingSlowClients": "needs over 20 clients that stop reading while megabytes of "
    "events fill their kernel buffers; tests/test_gateway.py drops a slow client for real, the "
    "promtool tests cover the rule.",
}


@dataclass
class Outcome:
    """An expected alert and the episode that fired it (None: it never fired)."""

    expect: Expect
    episode: Episode | None


@dataclass
class FaultRecord:
    """What happened during one fault."""

    fault: Fault
    injected_at: float
    restored_at: float = 0.0
    ended_at: float = 0.0
    outcomes: list[Outcome] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    evidence: list[tuple[str, bool, str]] = field(default_factory=list)
    also: list[Episode] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Every expected alert fired, every check held, every command showed the cause."""
        return (
            all(o.episode is not None for o in self.outcomes)
            and all(check.ok for check in self.checks)
            and all(ok for _, ok, _ in self.evidence)
        )


def receiver_of(episode: Episode) -> str:
    """Who took the alert: its receivers with their delay, or the alert that inhibited it."""
    if episode.notified:
        return ", ".join(
            f"{name} (+{at - episode.fired_at:.1f} s)"
            for name, at in sorted(episode.notified.items())
        )
    if episode.inhibited_by:
        return "inhibited by " + ", ".join(sorted(episode.inhibited_by))
    return "nobody"


def resolve_of(episode: Episode, restored_at: float) -> str:
    """Seconds from the restore to the alert's end."""
    if episode.resolved_at is None:
        return "still firing"
    if episode.resolved_at < restored_at:  # a window that forgets: it ends on its own
        return f"by itself, {episode.resolved_at - episode.fired_at:.0f} s after firing"
    return f"{episode.resolved_at - restored_at:.1f} s"


def rule_alerts() -> list[str]:
    """Every alert of the shipped rule files."""
    names = []
    for rules in sorted((PROMETHEUS_DIR / "rules").glob("*.yml")):
        for group in yaml.safe_load(rules.read_text())["groups"]:
            names += [rule["alert"] for rule in group["rules"] if "alert" in rule]
    return names


def commit() -> str:
    result = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() or "unknown"


def render(
    records: list[FaultRecord],
    seconds: float,
    scale: int,
    episodes: list[Episode],
    health: dict[str, float],
    started: float,
) -> str:
    """The report."""
    lines = [
        f"# Game day, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Commit {commit()}, {platform.node() or 'this machine'}: {len(records)} faults in "
        f"{seconds / 60:.1f} min. Rules as shipped on a clock {scale} times faster (windows and "
        "`for:` divided; thresholds as they are), scraped and evaluated every second; "
        "Alertmanager's routes and inhibitions as shipped, posting to the stack's receiver. "
        "Times are seconds on this game day's clock: time to fire from the injection, time to "
        "resolve from the restore. `make gameday` writes this file.",
        "",
        "| fault | alert | time to fire | time to resolve | receiver |",
        "|---|---|---|---|---|",
    ]
    for record in records:
        for outcome in record.outcomes:
            episode = outcome.episode
            if episode is None:
                lines.append(
                    f"| {record.fault.name} | {outcome.expect.alert} | **did not fire** | | |"
                )
                continue
            lines.append(
                f"| {record.fault.name} | {episode.describe()} | "
                f"{episode.fired_at - record.injected_at:.1f} s | "
                f"{resolve_of(episode, record.restored_at)} | {receiver_of(episode)} |"
            )
    lines += ["", "## Faults", ""]
    for record in records:
        verdict = "passed" if record.passed else "**failed**"
        lines += [f"### {record.fault.name}: {verdict}", "", record.fault.what + ".", ""]
        lines.append(
            f"Held {record.restored_at - record.injected_at:.0f} s; "
            f"runbook [{record.fault.runbook}](../runbooks/{record.fault.runbook})."
        )
        lines.append("")
        if record.also:
            lines.append(
                "Also fired: "
                + "; ".join(
                    f"{e.describe()} (+{e.fired_at - record.injected_at:.0f} s, {receiver_of(e)})"
                    for e in record.also
                )
                + "."
            )
            lines.append("")
        for check in record.checks:
            lines.append(f"- {'✓' if check.ok else '✗'} {check.what}: {check.detail or 'yes'}")
        for command, ok, shown in record.evidence:
            lines.append(f"- {'✓' if ok else '✗'} `{command}` showed:")
            lines += [
                "",
                "  ```",
                *(f"  {line}" for line in (shown or "(nothing)").splitlines()),
                "  ```",
            ]
        lines.append("")
    fired = {o.episode.name for r in records for o in r.outcomes if o.episode is not None} | {
        e.name for r in records for e in r.also
    }
    lines += ["## Coverage of the rule files", ""]
    for name in rule_alerts():
        if name in fired:
            lines.append(f"- {name}: fired")
        else:
            reason = NOT_HERE.get(name, "not in the faults of this run")
            lines.append(f"- {name}: not fired here. {reason}")
    still_firing = sorted({e.describe() for e in episodes if e.resolved_at is None})
    if still_firing:
        lines += ["", "Still firing at the end: " + ", ".join(still_firing) + "."]
    lines += ["", "## Prometheus on the faster clock", ""]
    lines += [f"- {name}: {value:g}" for name, value in health.items()]
    lines += [
        "",
        "## Every alert, in order",
        "",
        "Seconds since the game day began; faults as they were injected and restored.",
        "",
        "| at | event |",
        "|---|---|",
    ]
    events = [(r.injected_at, f"**{r.fault.name}** injected") for r in records]
    events += [(r.restored_at, f"**{r.fault.name}** restored") for r in records]
    for episode in episodes:
        events.append((episode.fired_at, f"{episode.describe()} fired: {receiver_of(episode)}"))
        if episode.resolved_at is not None:
            events.append((episode.resolved_at, f"{episode.describe()} resolved"))
    lines += [f"| {at - started:.1f} | {what} |" for at, what in sorted(events)]
    return "\n".join(lines) + "\n"
