"""The daemon's loop in-process: a bug in the fan controller hands the fans back and exits 1."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest

from gpuwatchd.clock import ManualClock
from gpuwatchd.config import Config
from gpuwatchd.daemon.cli import _demo_config
from gpuwatchd.daemon.service import EXIT_FAILURE, Daemon
from gpuwatchd.model import ControlReading, FanControlReading, Snapshot
from gpuwatchd.sim.node import SimNode


class BrokenControl:
    """A controller whose step raises on the second tick, as a bug would."""

    def __init__(self) -> None:
        self.steps = 0
        self.released = 0

    def step(self, snapshot: Snapshot) -> ControlReading:
        self.steps += 1
        if self.steps == 2:
            raise ZeroDivisionError("a bug")
        return ControlReading((), FanControlReading("none", "", False, ""))

    def release(self) -> None:
        self.released += 1

    def regulating(self) -> bool:
        return True

    def reconfigure(self, config: Config) -> bool:
        return False


def test_a_bug_in_the_loop_hands_the_fans_back_and_exits_1(
        caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    clock = ManualClock()
    daemon = Daemon(_demo_config(str(tmp_path)), SimNode(clock=clock).hardware())
    daemon._build(daemon.config)
    daemon._control.release()  # type: ignore[union-attr]  # the demo's real controller
    broken = BrokenControl()
    daemon._control = broken
    daemon.config = dataclasses.replace(daemon.config, interval_seconds=0.2)
    with caplog.at_level(logging.ERROR):
        assert daemon.run() == EXIT_FAILURE
    assert broken.steps == 2
    assert broken.released == 1, "the fans must be handed back on the way out"
    assert "internal error in the main loop" in caplog.text
    assert "ZeroDivisionError" in caplog.text
