"""deploy/ and docker-compose.yml: they parse, and every metric they name is one the server exports.

The metric names come from the PromQL of the alert rules and of every dashboard
panel; the exported names from a live in-process server's /metrics after a few
RPCs (labelled series appear on first use). Names the rules and dashboard use
ahead of the server are listed in PROPOSED and must be absent: when the server
starts exporting one, this test fails until the name is removed from PROPOSED.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from ..conftest import scrape_metrics

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "evalstream.json"
DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARDS = DEPLOY / "grafana" / "provisioning" / "dashboards" / "dashboards.yml"
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"

#: Names a rule or the dashboard may use before the server exports them (none now:
#: store commit latency, queue capacities, ingest lag and the concurrency limit,
#: once proposed, are all exported). Mark them ``# PROPOSED`` in the rules too.
PROPOSED: set[str] = set()
#: Series Prometheus makes itself, not the server.
SYNTHETIC = {"up"}

_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
    "and", "or", "unless", "offset", "inf", "nan", "le",
}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (functions, keywords and labels left out)."""
    text = re.sub(r"#[^\n]*", " ", expr)  # comments
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', text)  # strings
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges
    text = re.sub(
        r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text
    )  # label lists
    text = text.replace("$__rate_interval", " ")
    names = set()
    for match in re.finditer(r"(?<![\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(\s*\()?", text):
        name, call = match.group(1), match.group(2)
        if call or name in _KEYWORDS:
            continue
        names.add(name)
    return names


def balanced(expr: str) -> bool:
    pairs, stack = {")": "(", "]": "[", "}": "{"}, []
    for ch in re.sub(r'"(?:[^"\\]|\\.)*"', "", re.sub(r"#[^\n]*", "", expr)):
        if ch in "([{":
            stack.append(ch)
        elif ch in pairs and (not stack or stack.pop() != pairs[ch]):
            return False
    return not stack


def alert_rules() -> list[dict]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    doc = json.loads(DASHBOARD.read_text())
    exprs = []
    for panel in doc["panels"]:
        for target in panel.get("targets", []):
            exprs.append(target["expr"])
    return exprs


def test_deploy_files_parse() -> None:
    for path in (ALERTS, PROMETHEUS, DATASOURCES, DASHBOARDS, COMPOSE):
        assert yaml.safe_load(path.read_text()), path
    doc = json.loads(DASHBOARD.read_text())
    assert doc["uid"] == "evalstream"
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"


def test_alert_rules_are_well_formed() -> None:
    rules = alert_rules()
    assert rules
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names)), "alert names repeat"
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert balanced(rule["expr"]), f"{rule['alert']}: unbalanced brackets"
        assert rule["labels"]["severity"] in ("page", "ticket"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        if "for" in rule:
            assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
    for expr in dashboard_exprs():
        assert balanced(expr), expr


def test_prometheus_scrapes_evalstream_and_loads_the_rules() -> None:
    doc = yaml.safe_load(PROMETHEUS.read_text())
    assert doc["rule_files"] == ["/etc/prometheus/alerts.yml"]
    (job,) = doc["scrape_configs"]
    assert job["job_name"] == "evalstream"
    assert job["static_configs"][0]["targets"] == ["evalstream:9464"]


@pytest.fixture
def exported(live_server) -> set[str]:
    """Sample names on a live server's /metrics."""
    body = scrape_metrics(live_server)
    return {
        re.split(r"[{ ]", line, maxsplit=1)[0]
        for line in body.splitlines()
        if line and not line.startswith("#")
    }


def test_every_metric_in_rules_and_dashboard_is_exported(exported: set[str]) -> None:
    used: dict[str, set[str]] = {}
    for rule in alert_rules():
        for name in metric_names(rule["expr"]):
            used.setdefault(name, set()).add(f"alert {rule['alert']}")
    for expr in dashboard_exprs():
        for name in metric_names(expr):
            used.setdefault(name, set()).add("dashboard")
    assert used, "no metric names found"
    unknown = {
        name: sorted(where)
        for name, where in used.items()
        if name not in exported and name not in PROPOSED and name not in SYNTHETIC
    }
    assert not unknown, f"not exported by the server: {unknown}"
    assert PROPOSED <= set(used), f"PROPOSED names no longer used: {PROPOSED - set(used)}"


def test_proposed_metrics_are_not_exported_yet(exported: set[str]) -> None:
    # When the server exports one of these, remove it from PROPOSED: from then on
    # the test above checks it like any other name.
    assert not PROPOSED & exported, f"now exported, remove from PROPOSED: {PROPOSED & exported}"


def test_metric_names_parser() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (grpc_method, le) (rate(a_bucket{x="y"}[5m]))) '
        '/ on () max(b) > 0.5 # c_total\nor up{job="e"} == 0'
    )
    assert metric_names(expr) == {"a_bucket", "b", "up"}


def _dockerfile_healthcheck() -> list[str]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    match = re.search(r"^HEALTHCHECK .*?CMD (\[.*\])", text, re.M)
    assert match, "no HEALTHCHECK in the Dockerfile"
    return json.loads(match.group(1))


def test_compose_runs_the_dockerfile_commands() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    server = services["evalstream"]
    assert server["build"]["context"] == "."
    assert server["healthcheck"]["test"] == ["CMD", *_dockerfile_healthcheck()]
    cmd = re.search(r"^CMD (\[.*\])", DOCKERFILE.read_text(), re.M)
    assert cmd and server["command"] == json.loads(cmd.group(1))
    # Published on loopback only: this stack runs without tokens or TLS.
    assert {"127.0.0.1:50051:50051", "127.0.0.1:9464:9464"} <= set(server["ports"])
    assert server["environment"]["EVALSTREAM_NO_AUTH"] == "1"
    assert "evalstream-data:/data" in server["volumes"]
    assert "evalstream-data" in compose["volumes"]
    # The image's set-up steps are the Makefile's targets with the image's venv.
    dockerfile = DOCKERFILE.read_text()
    assert re.search(r"^model:", (ROOT / "Makefile").read_text(), re.M)
    assert "make model VENV=$VENV EXTRAS=server MODEL_DIR=/models" in dockerfile
    # The model cache is outside the data volume, so any volume serves.
    assert "EVALSTREAM_MODEL_DIR=/models" in dockerfile
    assert "make install VENV=$VENV EXTRAS=server" in dockerfile
    assert "ENV VENV=/opt/venv" in dockerfile
    prometheus = services["prometheus"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    grafana = services["grafana"]
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]
    dashboards_dir = yaml.safe_load(DASHBOARDS.read_text())["providers"][0]["options"]["path"]
    assert f"./deploy/grafana/dashboards:{dashboards_dir}:ro" in grafana["volumes"]
    datasource = yaml.safe_load(DATASOURCES.read_text())["datasources"][0]
    assert datasource["url"] == "http://prometheus:9090"
    assert datasource["type"] == "prometheus"
    assert shlex.join(server["healthcheck"]["test"][1:]).startswith("evalstream --target")
