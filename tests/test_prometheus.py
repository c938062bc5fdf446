"""Prometheus and Alertmanager configuration as tested code: promtool, amtool, runbooks."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from chassis.telemetry import Metrics
from devstack import backup_exporter
from devstack.alerts import render_alertmanager
from devstack.observability import RUNBOOK_BASE, render_prometheus, render_rules
from devstack.settings import StackSettings
from gateway.metrics import GatewayMetrics
from services.ai.catalog.service import IndexMetrics
from services.ai.embeddings import EmbeddingMetrics
from services.ai.metrics import AiMetrics
from services.ai.recommendations.service import RecommendationMetrics
from services.core.metrics import CheckoutMetrics

ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS = ROOT / "infra" / "prometheus"
RULES = PROMETHEUS / "rules" / "relais.rules.yml"
RULE_TESTS = PROMETHEUS / "tests" / "relais.test.yml"
# Jobs of the native stack alone: its backups are pgBackRest's on the machine's PostgreSQL (the
# compose stack's PostgreSQL is a container's, backed up by whoever runs it).
NATIVE_ONLY = {"backups"}


def run(tool: str, *args: str) -> str:
    binary = shutil.which(tool)
    if binary is None:
        pytest.fail(f"{tool} is missing: `make test` installs it (Debian's prometheus packages)")
    result = subprocess.run(
        [binary, *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def alerts() -> list[dict]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_prometheus_config_and_rules_are_valid():
    out = run("promtool", "check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert "SUCCESS" in out
    assert "SUCCESS" in run("promtool", "check", "rules", str(RULES))


def test_the_compose_config_scrapes_the_same_jobs_with_the_same_labels():
    assert "SUCCESS" in run(
        "promtool", "check", "config", str(PROMETHEUS / "prometheus.compose.yml")
    )

    def jobs(name: str) -> dict[str, tuple[str, str]]:
        config = yaml.safe_load((PROMETHEUS / name).read_text())
        found = {}
        for job in config["scrape_configs"]:
            labels = [c["labels"]["service"] for c in job.get("static_configs", [])]
            labels += [r["replacement"] for r in job.get("relabel_configs", [])]
            found[job["job_name"]] = (labels[0], job.get("metrics_path", "/metrics"))
        return found

    native = {name: job for name, job in jobs("prometheus.yml").items() if name not in NATIVE_ONLY}
    assert jobs("prometheus.compose.yml") == native


def test_every_alert_passes_its_unit_tests():
    assert "SUCCESS" in run("promtool", "test", "rules", str(RULE_TESTS))


def test_every_alert_is_unit_tested_and_has_a_runbook():
    tested = set(re.findall(r"alertname: (\w+)", RULE_TESTS.read_text()))
    for alert in alerts():
        assert alert["alert"] in tested, f"{alert['alert']} has no promtool test"
        # An absolute URL (clickable in Prometheus and Alertmanager): the default stack's NGINX
        # serving docs/, which `make up` rebases on RUNBOOK_BASE_URL.
        runbook = alert["annotations"]["runbook_url"]
        assert runbook.startswith(RUNBOOK_BASE), runbook
        page = ROOT / "docs" / "runbooks" / runbook.removeprefix(RUNBOOK_BASE)
        assert page.is_file(), f"{alert['alert']}: {runbook} does not exist"
        assert alert["labels"]["severity"] in {"page", "ticket"}


def test_alertmanager_config_is_valid_and_instance_down_inhibits_slo_alerts():
    assert "SUCCESS" in run("amtool", "check-config", "infra/alertmanager/alertmanager.yml")
    config = yaml.safe_load((ROOT / "infra" / "alertmanager" / "alertmanager.yml").read_text())
    inhibit = config["inhibit_rules"][0]
    assert inhibit["source_matchers"] == ['alertname="InstanceDown"']
    assert inhibit["equal"] == ["service"]
    slo_alerts = [alert for alert in alerts() if "slo" in alert["labels"]]
    assert len(slo_alerts) == 8
    # The inhibition matches on `service`: every SLI the SLO alerts use keeps that label.
    groups = yaml.safe_load(RULES.read_text())["groups"]
    records = [rule for group in groups for rule in group["rules"] if "record" in rule]
    assert records
    assert all(rule["expr"].count("sum by (service)") >= 2 for rule in records)


def exported_names() -> set[str]:
    """Every series name the services' metrics registries can export, children or not."""
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"], "gauge": [""]}
    metrics = Metrics("probe")
    CheckoutMetrics(metrics)  # core's business metrics live in the same registry
    AiMetrics(metrics)  # and the AI worker's
    IndexMetrics(metrics)
    EmbeddingMetrics(metrics)
    RecommendationMetrics(metrics)
    GatewayMetrics(metrics)  # and the gateway's
    return {
        family.name + suffix
        for family in metrics.registry.collect()
        for suffix in suffixes.get(family.type, [""])
    } | set(backup_exporter.SERIES)


def test_rules_use_only_metrics_the_services_export():
    used = set(re.findall(r"\b(relais_[a-z_]+)\b", RULES.read_text()))
    assert "relais_http_requests_total" in used
    missing = used - exported_names()
    assert not missing, f"rules use metrics nobody exports: {sorted(missing)}"


def test_runbook_urls_follow_the_setting(tmp_path):
    config = StackSettings(state_dir=tmp_path, runbook_base_url="https://wiki.example.com/rb")
    rendered = yaml.safe_load((render_rules(config) / RULES.name).read_text())
    urls = [
        rule["annotations"]["runbook_url"]
        for group in rendered["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]
    assert urls and all(url.startswith("https://wiki.example.com/rb/") for url in urls)
    assert "SUCCESS" in run("promtool", "check", "rules", str(render_rules(config) / RULES.name))
    default = StackSettings(state_dir=tmp_path, nginx_port=18080)
    assert default.runbooks_url == "http://127.0.0.1:18080/docs/runbooks/"


def test_a_game_day_runs_the_shipped_rules_on_a_faster_clock(tmp_path):
    fast = StackSettings(state_dir=tmp_path / "fast", alert_time_scale=60)
    normal = StackSettings(state_dir=tmp_path / "normal")
    shipped = yaml.safe_load(RULES.read_text())
    rendered = yaml.safe_load((render_rules(fast) / RULES.name).read_text())
    assert (render_rules(normal) / RULES.name).read_text().replace(
        normal.runbooks_url, RUNBOOK_BASE
    ) == RULES.read_text()
    pairs = [
        (old, new)
        for old_group, new_group in zip(shipped["groups"], rendered["groups"], strict=True)
        for old, new in zip(old_group["rules"], new_group["rules"], strict=True)
    ]
    # the same rules, thresholds and labels; only windows and `for:` shrink, sixty times
    for old, new in pairs:
        assert {k: v for k, v in old.items() if k not in ("expr", "for", "annotations")} == {
            k: v for k, v in new.items() if k not in ("expr", "for", "annotations")
        }
        assert re.sub(r"\[[^\]]+\]", "[w]", old["expr"]) == re.sub(
            r"\[[^\]]+\]", "[w]", new["expr"]
        )
    windows = {
        (old["record"], new["expr"].count("[60s]"))
        for old, new in pairs
        if old.get("record", "").endswith("1h")
    }
    assert windows and all(count >= 2 for _, count in windows)
    timed = {old["alert"]: (old["for"], new["for"]) for old, new in pairs if "for" in old}
    assert timed["InstanceDown"] == ("1m", "1s") and timed["DeadLettersWaiting"] == ("30m", "30s")
    assert "SUCCESS" in run("promtool", "check", "rules", str(render_rules(fast) / RULES.name))
    routed = yaml.safe_load(render_alertmanager(fast).read_text())["route"]
    assert (routed["group_wait"], routed["group_interval"], routed["repeat_interval"]) == (
        "5s",
        "5s",
        "240s",
    )
    [pages] = routed["routes"]
    assert (pages["receiver"], pages["group_wait"], pages["repeat_interval"]) == (
        "pager",
        "500ms",
        "60s",
    )
    assert "SUCCESS" in run("amtool", "check-config", str(render_alertmanager(fast)))
    # scraped every second, but PostgreSQL's exporter gets the 2 s it needs to say `pg_up 0`
    every_second = StackSettings(
        state_dir=tmp_path / "fast", alert_time_scale=60, scrape_interval="1s"
    )
    rendered_config = render_prometheus(every_second)
    jobs = {
        job["job_name"]: job
        for job in yaml.safe_load(rendered_config.read_text())["scrape_configs"]
    }
    assert (jobs["postgres"]["scrape_interval"], jobs["postgres"]["scrape_timeout"]) == ("2s", "2s")
    assert "scrape_timeout" not in jobs["redis"]
    assert "SUCCESS" in run("promtool", "check", "config", "--syntax-only", str(rendered_config))


# A Markdown link `[text](target)` or an autolink-free bare reference to a repository file.
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def test_every_link_in_the_docs_resolves():
    pages = [*sorted((ROOT / "docs").rglob("*.md")), ROOT / "README.md"]
    checked = 0
    for page in pages:
        text = page.read_text()
        for target in LINK.findall(text):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            path, _, anchor = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            assert resolved.exists(), f"{page.relative_to(ROOT)}: {target} does not resolve"
            if anchor:
                headings = {
                    re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-")
                    for h in re.findall(r"^#+ (.+)$", resolved.read_text(), re.M)
                }
                assert anchor in headings, f"{page.relative_to(ROOT)}: #{anchor} is no heading"
            checked += 1
        # Prose that points at a section must name one that exists.
        for section in re.findall(r"the README's ([a-z -]+?) (?:section|notes)", text):
            readme = (ROOT / "README.md").read_text().lower()
            assert f"## {section}" in readme or f"### {section}" in readme, (page, section)
    assert checked > 0


def test_a_runbook_that_points_at_grafana_or_jaeger_gives_the_native_command_too():
    for runbook in sorted((ROOT / "docs" / "runbooks").glob("*.md")):
        text = runbook.read_text()
        if re.search(r"Grafana|Jaeger|dashboard", text):
            native = ("make logs", "make dlq", "127.0.0.1:9090")
            assert any(command in text for command in native), runbook.name
