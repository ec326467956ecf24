"""The whole /metrics exposition of the demo node, held against a golden file and promtool.

Regenerate after an intended change with ``pytest --update-golden`` and review the diff: a
renamed metric or label shows up there (and in the dashboards and alert rules that use it).
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

import pytest

from gpuwatchd.clock import ManualClock
from gpuwatchd.daemon.cli import _demo_config
from gpuwatchd.daemon.service import Daemon
from gpuwatchd.exporter.render import Renderer
from gpuwatchd.sim.node import SimNode
from tests.procs import require
from tests.series import duplicates_in_text

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "metrics.prom"
_VOLATILE = [
    (re.compile(r'(pythonversion=")[^"]*(")'), r"\g<1>X\g<2>"),
    (re.compile(r"^(gpuwatchd_collector_duration_seconds\{[^}]*\}) .*$", re.M), r"\1 D"),
]


def demo_exposition() -> str:
    """Three ticks of the demo node on a manual clock, rendered without process_* metrics."""
    clock = ManualClock()
    state = tempfile.TemporaryDirectory(prefix="gpuwatchd-state-")  # never /var/lib/gpuwatchd
    daemon = Daemon(_demo_config(state.name), SimNode(clock=clock).hardware())
    daemon._build(daemon.config)
    try:
        for _ in range(3):
            daemon.tick()
            clock.advance(daemon.config.interval_seconds)
        text = Renderer(lambda: daemon.snapshot, clock, process_metrics=False).render().decode()
    finally:
        daemon._close_hardware()
        state.cleanup()
    for pattern, repl in _VOLATILE:
        text = pattern.sub(repl, text)
    return text


def test_exposition_matches_golden(request: pytest.FixtureRequest) -> None:
    text = demo_exposition()
    if request.config.getoption("--update-golden"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(text)
    assert GOLDEN.exists(), "no golden file: run pytest --update-golden"
    assert text == GOLDEN.read_text(), "exposition changed: review, then pytest --update-golden"


def test_golden_passes_promtool_check_metrics() -> None:
    promtool = require("promtool", "prometheus")
    text = demo_exposition().replace(" D\n", " 0.001\n")
    res = subprocess.run([promtool, "check", "metrics"], input=text.encode(),
                         capture_output=True, check=False)
    assert res.returncode == 0, (res.stdout + res.stderr).decode()


def test_the_exposition_has_no_duplicate_series() -> None:
    """Prometheus keeps one of two samples with the same name and labels and drops the
    other without a word: every (name, labels) appears once, in the demo and in the golden."""
    assert duplicates_in_text("# HELP x y\nx{a=\"1\"} 1\nx{a=\"1\"} 2\n") == ["x{'a': '1'}"]
    assert duplicates_in_text(demo_exposition()) == []
    assert duplicates_in_text(GOLDEN.read_text()) == []
