"""Grafana provisioning: dashboards are what `scripts/dashboards.py` generates; datasources link."""

from __future__ import annotations

import json
import re
import subprocess

import yaml

from scripts import dashboards
from tests.test_prometheus import RULES, exported_names

PROVISIONING = dashboards.ROOT / "infra" / "grafana" / "provisioning"


def panel_queries() -> list[tuple[str, str]]:
    """(dashboard/panel title, PromQL) of every panel in the committed dashboards, with each
    variable as Grafana sends it by default (`All`: its `allValue`)."""
    found = []
    for path in sorted(dashboards.OUT.glob("*.json")):
        board = json.loads(path.read_text())
        defaults = {
            variable["name"]: variable["allValue"]
            if variable["current"]["value"] == "$__all"
            else variable["current"]["value"]
            for variable in board["templating"]["list"]
        }
        for panel in board["panels"]:
            for target in panel["targets"]:
                expr = target["expr"]
                for name, value in defaults.items():
                    expr = expr.replace(f"${name}", value)
                found.append((f"{board['title']} / {panel['title']}", expr))
    return found


def test_committed_dashboards_are_the_generated_ones():
    committed = {path.name: path.read_text() for path in dashboards.OUT.glob("*.json")}
    assert committed == dashboards.render(), "run `python -m scripts.dashboards`"
    assert {"relais-overview.json", "relais-core.json", "relais-payments.json"} <= set(committed)


def test_panels_use_only_metrics_and_rules_that_exist():
    recorded = set(re.findall(r"record: ([\w:]+)", RULES.read_text()))
    exported = exported_names()
    for title, expr in panel_queries():
        for name in re.findall(r"\b(relais[_:][\w:]+)\b", expr):
            assert name in exported or name in recorded, f"{title}: {name} does not exist"


def test_request_panels_follow_the_traffic_filter_and_can_show_both():
    """A panel of HTTP requests shows the traffic the `$traffic` variable selects (real, or
    marked synthetic by a load test), except one that splits by traffic."""
    boards = {path.name: json.loads(path.read_text()) for path in dashboards.OUT.glob("*.json")}
    by_traffic = []
    for board in boards.values():
        variables = {variable["name"] for variable in board["templating"]["list"]}
        for panel in board["panels"]:
            expr = panel["targets"][0]["expr"]
            if not re.search(r"relais_http_request(s_total|_duration)", expr):
                continue
            if "by (traffic)" in expr:
                by_traffic.append(expr)
                continue
            assert 'traffic=~"$traffic"' in expr, f"{board['title']} / {panel['title']}"
            assert "traffic" in variables, board["title"]
    assert by_traffic, "the overview shows real and synthetic requests side by side"
    (variable,) = boards["relais-overview.json"]["templating"]["list"]
    assert variable["allValue"] == ".*" and variable["query"] == "real,synthetic"


def test_datasources_link_exemplars_to_jaeger_and_dashboards_are_provisioned():
    sources = yaml.safe_load((PROVISIONING / "datasources" / "datasources.yml").read_text())
    by_uid = {source["uid"]: source for source in sources["datasources"]}
    assert by_uid["jaeger"]["type"] == "jaeger"
    links = by_uid["prometheus"]["jsonData"]["exemplarTraceIdDestinations"]
    assert links == [{"name": "trace_id", "datasourceUid": "jaeger"}]
    provider = yaml.safe_load((PROVISIONING / "dashboards" / "relais.yml").read_text())
    assert provider["providers"][0]["type"] == "file"


def test_every_panel_query_parses(tmp_path):
    # promtool parses recording rules' expressions: one rule per panel, no server needed.
    rules = {
        "groups": [
            {
                "name": "panels",
                "rules": [
                    {"record": f"panel:{index}", "expr": expr}
                    for index, (_, expr) in enumerate(panel_queries())
                ],
            }
        ]
    }
    path = tmp_path / "panels.yml"
    path.write_text(yaml.safe_dump(rules))
    result = subprocess.run(
        ["promtool", "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
