"""monitoring/: alert rules under promtool, every rule tested, every query's metric names real.

Needs ``promtool`` (Debian ``prometheus``); a missing binary fails the test with the package
to install. Metric names in rules and panels must be exported (the golden exposition
tests/golden/metrics.prom, or the GPU collector's CATALOGUE) or listed as still pending in
monitoring/pending-metrics.txt.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from gpuwatchd import config
from gpuwatchd.collectors.gpu_metrics import CATALOGUE

ROOT = Path(__file__).resolve().parents[2]
MON = ROOT / "monitoring"
ALERTS = MON / "alerts.yaml"
RULE_TESTS = MON / "tests" / "alerts_test.yml"
DASHBOARD = MON / "dashboards" / "gpuwatchd.json"
GOLDEN = ROOT / "tests" / "golden" / "metrics.prom"
PROMETHEUS_OWN = {"up"}  # series Prometheus itself adds per target
# Grafana variables -> sample values, so a panel query becomes plain PromQL.
GRAFANA_VARS = {"$__rate_interval": "1m", "$__interval": "30s", "$__range": "6h",
                "$price_per_kwh": "0.30", "$baseline_rpm": "12000",
                "$instance": "node1", "$job": "gpuwatchd"}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool",
                "and", "or", "unless", "offset", "inf", "nan", "atan2"}


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool not found: apt-get install prometheus")
    return path


def _rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(ALERTS.read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def _panels() -> list[dict[str, Any]]:
    out = []
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def _dashboard_queries() -> list[str]:
    """Every PromQL in the dashboard: panel targets and variable queries, variables filled."""
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in _panels() for t in p.get("targets", [])]
    for var in dash["templating"]["list"]:
        if var["type"] == "query":
            inner = re.fullmatch(r"label_values\((.*),\s*\w+\)", var["query"]["query"])
            assert inner, f"variable {var['name']}: only label_values(SELECTOR, LABEL) is used"
            exprs.append(inner.group(1))
    filled = []
    for expr in exprs:
        query = expr
        for name in sorted(GRAFANA_VARS, key=len, reverse=True):
            query = query.replace(name, GRAFANA_VARS[name])
        assert "$" not in query, f"unknown Grafana variable in {expr!r}"
        filled.append(query)
    return filled


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (strings, matchers, grouping clauses removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        word, rest = match.group(0), text[match.end():].lstrip()
        if rest.startswith("(") or word.lower() in PROMQL_WORDS:
            continue  # a function call or a keyword
        if match.start() > 0 and text[match.start() - 1].isdigit():
            continue  # part of a number such as 3.6e6
        names.add(word)
    return names


def exported_names() -> set[str]:
    """Names the code exports: the golden exposition (when present) and the GPU catalogue."""
    names = set(CATALOGUE)
    if GOLDEN.exists():
        for line in GOLDEN.read_text().splitlines():
            if line.startswith("# TYPE "):
                names.add(line.split()[2])
            elif line and not line.startswith("#"):
                names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names


def pending_names() -> set[str]:
    lines = (MON / "pending-metrics.txt").read_text().splitlines()
    return {line.split()[0] for line in lines if line.strip() and not line.startswith("#")}


def test_metric_names_helper_finds_names_not_functions_or_labels() -> None:
    """The extractor itself: functions, labels, keywords, numbers and strings are not names."""
    expr = ('sum by (instance) (increase(foo_total{job="a b", x=~"c"}[5m])) / 3.6e6 * 2 '
            'and on (gpu) bar_celsius > ignoring(sensor) baz - 5 or vector(0)')
    assert metric_names(expr) == {"foo_total", "bar_celsius", "baz"}


def test_promtool_checks_the_rules() -> None:
    """`promtool check rules` accepts alerts.yaml."""
    result = subprocess.run([_promtool(), "check", "rules", str(ALERTS)],
                            check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in result.stdout


def test_promtool_rule_unit_tests_pass() -> None:
    """`promtool test rules`: every expected alert, labels and annotations, fires or stays quiet."""
    result = subprocess.run([_promtool(), "test", "rules", RULE_TESTS.name], cwd=RULE_TESTS.parent,
                            check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_is_tested_firing_and_quiet() -> None:
    """Each alert has a test case where it fires and one where it does not."""
    cases = [case for group in yaml.safe_load(RULE_TESTS.read_text())["tests"]
             for case in group["alert_rule_test"]]
    for rule in _rules():
        mine = [c for c in cases if c["alertname"] == rule["alert"]]
        assert any(c["exp_alerts"] for c in mine), f"{rule['alert']}: no test where it fires"
        assert any(not c["exp_alerts"] for c in mine), f"{rule['alert']}: no test where it is quiet"


def test_alerts_follow_the_mixin_conventions() -> None:
    """CamelCase names with the Gpuwatchd prefix, a severity, a summary and a description."""
    names = [rule["alert"] for rule in _rules()]
    assert len(names) == len(set(names))
    for rule in _rules():
        assert re.fullmatch(r"Gpuwatchd[A-Z][A-Za-z]+", rule["alert"]), rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        assert set(rule["annotations"]) >= {"summary", "description"}, rule["alert"]


def test_the_issue_conditions_all_have_alerts() -> None:
    """The conditions the alerting must cover each have a rule."""
    names = {rule["alert"] for rule in _rules()}
    assert names >= {
        "GpuwatchdGpuNearSlowdown", "GpuwatchdGpuLost", "GpuwatchdGpuXidErrors",
        "GpuwatchdFanFailed", "GpuwatchdFanBelowThreshold", "GpuwatchdPsuFailed",
        "GpuwatchdPsuRedundancyLost", "GpuwatchdFanControlFailsafe",
        "GpuwatchdFanControlMonitorOnly", "GpuwatchdBmcUnreachable", "GpuwatchdDataStale",
        "GpuwatchdVgpuUnlicensed", "GpuwatchdVgpuRestricted", "GpuwatchdVgpuLicenceExpiring",
        "GpuwatchdGriddDown",
        # issue 13: every hardware condition of gpuwatchctl status has a rule
        "GpuwatchdBmcSensorCritical", "GpuwatchdBmcSensorNoReading", "GpuwatchdFanRedundancyLost",
        "GpuwatchdChassisTemperatureCritical", "GpuwatchdChassisTemperatureHigh",
        "GpuwatchdPsuPredictiveFailure", "GpuwatchdGpuThermalSlowdown",
        "GpuwatchdGpuEccUncorrected", "GpuwatchdGpuRemapPending", "GpuwatchdGpuRemapFailed"}


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """Every dashboard query, variables filled in, passes promtool as a recording rule."""
    queries = _dashboard_queries()
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query{i}", "expr": q} for i, q in enumerate(queries)]}]}
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump(rules))
    result = subprocess.run([_promtool(), "check", "rules", str(path)],
                            check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_metric_name_is_exported_or_pending() -> None:
    """Rules and panels use only names the code exports, or names listed as pending."""
    allowed = exported_names() | pending_names() | PROMETHEUS_OWN
    used = {name: where for where, exprs in (("alerts.yaml", [r["expr"] for r in _rules()]),
                                             ("dashboard", _dashboard_queries()))
            for expr in exprs for name in metric_names(expr)}
    unknown = {name: where for name, where in used.items() if name not in allowed}
    assert not unknown, f"metric names neither exported nor pending: {unknown}"
    unused = pending_names() - set(used)
    assert not unused, f"pending-metrics.txt lists names nothing uses: {sorted(unused)}"


def test_pending_names_are_really_pending() -> None:
    """A pending name that the code now exports must leave pending-metrics.txt."""
    done = pending_names() & exported_names()
    assert not done, f"exported now, remove from monitoring/pending-metrics.txt: {sorted(done)}"


def test_dashboard_has_both_views_and_its_variables() -> None:
    """Fleet and node rows, unique panel ids, one data source variable, the price is used."""
    dash = json.loads(DASHBOARD.read_text())
    panels = _panels()
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    rows = [p["title"] for p in panels if p["type"] == "row"]
    assert rows == ["Fleet", "Node $instance"]
    variables = {v["name"] for v in dash["templating"]["list"]}
    assert variables == {"datasource", "job", "instance", "price_per_kwh", "baseline_rpm"}
    for panel in panels:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
    exprs = " ".join(t["expr"] for p in panels for t in p.get("targets", []))
    for needed in ("$price_per_kwh", "$baseline_rpm", "gpuwatchd_fan_zone_setpoint_celsius",
                   "gpuwatchd_vgpu_licence_expiry_timestamp_seconds",
                   "gpuwatchd_fan_zone_duty_ratio",
                   # issue 13: PSUs, BMC sensors and thresholds, hwmon, GPU fans
                   "gpuwatchd_psu_up", "gpuwatchd_psu_state", "gpuwatchd_bmc_sensor_state",
                   "gpuwatchd_temperature_threshold_celsius", "gpuwatchd_fan_speed_threshold_rpm",
                   "gpuwatchd_hwmon_temperature_celsius", "gpuwatchd_hwmon_fan_speed_rpm",
                   "gpuwatchd_gpu_fan_speed_ratio"):
        assert needed in exprs


def test_kubernetes_example_config_is_valid() -> None:
    """The DaemonSet's ConfigMap holds a config gpuwatchd accepts; ports agree."""
    docs = list(yaml.safe_load_all((MON / "kubernetes" / "daemonset.yaml").read_text()))
    kinds = {d["kind"]: d for d in docs}
    assert set(kinds) == {"Namespace", "ServiceAccount", "ConfigMap", "DaemonSet"}
    cfg = config.loads(kinds["ConfigMap"]["data"]["gpuwatchd.yaml"], "daemonset.yaml")
    port = config.parse_listen(cfg.exporter.listen[0])
    container = kinds["DaemonSet"]["spec"]["template"]["spec"]["containers"][0]
    assert port is not None and container["ports"][0]["containerPort"] == port[1]
    monitors = list(yaml.safe_load_all((MON / "kubernetes" / "servicemonitor.yaml").read_text()))
    service = next(d for d in monitors if d["kind"] == "Service")
    assert service["metadata"]["name"] == "gpuwatchd"  # job="gpuwatchd" in alerts.yaml
    assert service["spec"]["ports"][0]["port"] == port[1]


def test_kubernetes_example_puts_socket_and_state_on_writable_volumes() -> None:
    """As uid 65534 on a read-only root: the socket and the state files live on emptyDirs."""
    docs = list(yaml.safe_load_all((MON / "kubernetes" / "daemonset.yaml").read_text()))
    kinds = {d["kind"]: d for d in docs}
    cfg = config.loads(kinds["ConfigMap"]["data"]["gpuwatchd.yaml"], "daemonset.yaml")
    pod = kinds["DaemonSet"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    args = container["args"]
    socket_path = args[args.index("--status-socket") + 1]
    mounts = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    state = cfg.licence.remediation.state_file
    assert state is not None
    for path in (socket_path, state, cfg.fan_control.state_directory + "/x"):
        assert any(path.startswith(m + "/") for m in mounts), f"{path} is on the read-only root"
