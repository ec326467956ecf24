"""Every metric name is defined once, in full, in exactly one catalogue.

The catalogues: the GPU collector's (gpuwatchd.collectors.gpu_metrics), the chassis and hwmon
collectors' (chassis_metrics, hwmon_metrics), the licence collector's, the fan controller's and
the exporter's self-health.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from pathlib import Path

from gpuwatchd.collectors import chassis_metrics, gpu_energy, gpu_metrics, hwmon_metrics
from gpuwatchd.control import metrics as control_metrics
from gpuwatchd.exporter import render
from gpuwatchd.licence import metrics as licence_metrics

ROOT = Path(__file__).resolve().parents[2]
CATALOGUES: dict[str, tuple[str, ...]] = {
    "gpu": tuple(gpu_metrics.CATALOGUE),
    "gpu energy": tuple(gpu_energy.CATALOGUE),
    "chassis": tuple(chassis_metrics.CATALOGUE),
    "hwmon": tuple(hwmon_metrics.CATALOGUE),
    "licence": tuple(licence_metrics.CATALOGUE),
    "fan control": tuple(control_metrics.CATALOGUE),
    "self-health": tuple(render.NAMES),
}
NAME = re.compile(r"^gpuwatchd_[a-z0-9_]+$")


def test_no_two_catalogues_define_the_same_name() -> None:
    counts = Counter(name for names in CATALOGUES.values() for name in names)
    twice = {name: [c for c, names in CATALOGUES.items() if name in names]
             for name, n in counts.items() if n > 1}
    assert twice == {}


def test_every_golden_family_is_defined_in_exactly_one_catalogue() -> None:
    golden = (ROOT / "tests" / "golden" / "metrics.prom").read_text(encoding="utf-8")
    families = [line.split()[2] for line in golden.splitlines() if line.startswith("# TYPE ")]
    assert families, "no family in the golden file"
    for family in families:
        owners = [c for c, names in CATALOGUES.items() if family in names]
        assert len(owners) == 1, f"{family}: defined in {owners or 'no catalogue'}"


def test_names_are_well_formed() -> None:
    for catalogue, names in CATALOGUES.items():
        for name in names:
            assert NAME.match(name), f"{catalogue}: {name!r}"


def _glued(path: Path) -> list[str]:
    """``X + "suffix"`` where X is a module-level str constant starting with gpuwatchd_."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    prefixes = {t.id for node in tree.body if isinstance(node, ast.Assign)
                and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
                and node.value.value.startswith("gpuwatchd_")
                for t in node.targets if isinstance(t, ast.Name)}
    return [f"{path.relative_to(ROOT)}:{node.lineno}" for node in ast.walk(tree)
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add)
            and isinstance(node.left, ast.Name) and node.left.id in prefixes]


def test_metric_names_are_written_out_in_full() -> None:
    """A grep for a metric name finds where it is defined (no G + "temperature_celsius")."""
    files = sorted((ROOT / "gpuwatchd").rglob("*.py"))
    assert [hit for path in files for hit in _glued(path)] == []
