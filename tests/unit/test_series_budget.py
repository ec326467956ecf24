"""The series budget (issue 15): ``gpuwatchd --demo --demo-gpus 8`` at defaults exports at
most 300 series; ``exporter.detail: full`` still exports everything; the default set is
consistent with the catalogues and keeps every series the shipped alerts and dashboard use."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bench.bench_series import BUDGET, count, exposition
from gpuwatchd.daemon.cli import _demo_config
from gpuwatchd.exporter.detail import DEFAULT_SET, Detail, Keep, trim
from gpuwatchd.model import Family, Sample
from tests.unit.test_metric_catalogues import CATALOGUES

ROOT = Path(__file__).resolve().parents[2]


def test_demo_8_gpus_at_defaults_fits_the_budget() -> None:
    detail = Detail(_demo_config().exporter.detail)
    assert detail is Detail.DEFAULT  # the demo runs at defaults
    text = exposition("default", 8, detail)
    series = count(text)
    print(f"8-GPU demo at defaults: {series} series, {len(text)} bytes")
    assert series <= BUDGET
    assert len(text) <= 40_000  # measured 35 kB (full: 87.6 kB)


def test_full_detail_exposes_everything_the_collectors_render() -> None:
    full = count(exposition("default", 8, Detail.FULL))
    assert full > 2 * BUDGET


def test_default_set_names_only_cataloged_metrics() -> None:
    known = {name for names in CATALOGUES.values() for name in names}
    assert set(DEFAULT_SET) <= known, set(DEFAULT_SET) - known


def _selectors(text: str) -> set[tuple[str, str, str]]:
    """(metric, label, value) of every equality matcher in PromQL text."""
    out = set()
    for name, body in re.findall(r"(gpuwatchd_[a-z_]+)\{([^}]*)\}", text):
        for label, value in re.findall(r'(\w+)\s*=\s*\\?"([^"\\]*)\\?"', body):
            out.add((name, label, value))
    return out


def test_alerts_and_dashboard_survive_the_default_set() -> None:
    text = (ROOT / "monitoring/alerts.yaml").read_text()
    text += json.dumps(json.loads((ROOT / "monitoring/dashboards/gpuwatchd.json").read_text()))
    used = set(re.findall(r"gpuwatchd_[a-z_]+", text))
    dropped = {name for name, rule in DEFAULT_SET.items() if not isinstance(rule, Keep)
               and rule.value == "drop"}
    assert not used & dropped, used & dropped
    for name, label, value in _selectors(text):
        rule = DEFAULT_SET.get(name)
        if isinstance(rule, Keep) and rule.label == label:
            assert value in rule.values, (name, label, value)


@pytest.mark.parametrize("detail", list(Detail))
def test_trim_rules(detail: Detail) -> None:
    def fam(name: str, *samples: tuple[dict[str, str], float]) -> Family:
        return Family(name, "gauge", "h", tuple(Sample(tuple(lb.items()), v)
                                                for lb, v in samples))
    families = [
        fam("gpuwatchd_gpu_clock_max_hertz", ({"clock": "sm"}, 1.0)),
        fam("gpuwatchd_vgpu_licence_state", ({"state": "licensed"}, 1.0),
            ({"state": "expired"}, 0.0)),
        fam("gpuwatchd_gpu_power_limit_watts", ({"limit": "enforced"}, 250.0),
            ({"limit": "max"}, 300.0)),
        fam("gpuwatchd_bmc_sensor_state", ({"state": "ok"}, 1.0), ({"state": "critical"}, 0.0)),
        fam("gpuwatchd_gpu_power_watts", ({"gpu": "0"}, 50.0)),
    ]
    out = {f.name: [dict(s.labels) for s in f.samples] for f in trim(families, detail)}
    if detail is Detail.FULL:
        assert len(out) == 5 and len(out["gpuwatchd_vgpu_licence_state"]) == 2
        return
    assert out == {"gpuwatchd_vgpu_licence_state": [{"state": "licensed"}],
                   "gpuwatchd_gpu_power_limit_watts": [{"limit": "enforced"}],
                   "gpuwatchd_gpu_power_watts": [{"gpu": "0"}]}
