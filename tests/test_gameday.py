"""The game day: its catalogue covers the rule files, and the short game day (three real faults
against a stack of its own) raises each expected alert at the right receiver."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.gameday.faults import CATALOGUE, SHORT, Check, Expect
from scripts.gameday.report import NOT_HERE, FaultRecord, Outcome, rule_alerts
from scripts.gameday.watch import Episode

ROOT = Path(__file__).resolve().parent.parent
RUNBOOKS = ROOT / "docs" / "runbooks"


def test_every_alert_of_the_rule_files_has_a_fault_or_a_reason():
    expected = {expect.alert for fault in CATALOGUE for expect in fault.expect}
    alerts = set(rule_alerts())
    assert alerts - expected - set(NOT_HERE) == set()
    assert not expected & set(NOT_HERE), "an alert with a fault needs no excuse"
    assert expected <= alerts, f"faults expect alerts nobody defines: {expected - alerts}"
    assert set(SHORT) <= {fault.name for fault in CATALOGUE}


def test_each_fault_s_runbook_quotes_the_commands_that_showed_its_cause():
    for fault in CATALOGUE:
        runbook = (RUNBOOKS / fault.runbook).read_text()
        assert "Seen on the game day" in runbook, fault.runbook
        for evidence in fault.evidence:
            assert evidence.command in runbook, (fault.runbook, evidence.command)


def test_a_fault_passes_only_if_every_alert_fired_and_every_check_held():
    fault = CATALOGUE[0]
    episode = Episode({"alertname": "InstanceDown", "severity": "page"}, fired_at=10.0)
    record = FaultRecord(
        fault, injected_at=9.0, outcomes=[Outcome(Expect("InstanceDown"), episode)]
    )
    assert record.passed
    record.checks.append(Check("nothing failed", False, "3 failed"))
    assert not record.passed
    silent = FaultRecord(fault, injected_at=9.0, outcomes=[Outcome(Expect("InstanceDown"), None)])
    assert not silent.passed


@pytest.mark.e2e
def test_the_short_game_day_raises_each_alert_at_its_receiver(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "scripts.gameday", "--short", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    output = "\n".join(line for line in result.stdout.splitlines() if not line.startswith('{"ts'))
    assert result.returncode == 0, output + result.stderr[-3000:]
    [report] = tmp_path.glob("gameday-*.md")
    text = report.read_text()
    rows = {
        (fault, alert.split("{")[0]): receiver
        for fault, alert, _, _, receiver in re.findall(
            r"^\| ([a-z-]+) \| ([^|]+) \| ([\d.]+ s) \| ([^|]*) \| ([^|]+) \|$", text, re.MULTILINE
        )
    }
    assert rows[("core-instance-down", "InstanceDown")].startswith("pager")
    assert rows[("redis-down", "DatastoreDown")].startswith("pager")
    assert rows[("redis-down", "ApiAvailabilityBudgetBurn")].startswith("pager")
    assert rows[("poison-message", "DeadLettersWaiting")].startswith("tickets")
    assert "✓ each failure a 503 with Retry-After" in text
    assert "✓ core's metrics counted the failures customers saw" in text
    assert text.count(": passed") == len(SHORT)
