"""Clock synchronisation: timedatectl, the adjtimex fallback, and wall-clock jumps."""

from __future__ import annotations

import pytest

from gpuwatchd.errors import DeadlineExceeded
from gpuwatchd.licence.commands import CommandResult
from gpuwatchd.licence.timesync import ClockSync, read_adjtimex
from tests.fakes.licence_runner import FakeRunner


@pytest.mark.parametrize(("stdout", "want"), [("yes\n", True), ("no\n", False)])
def test_timedatectl(stdout: str, want: bool) -> None:
    runner = FakeRunner()
    runner.set("timedatectl", "show", CommandResult((), 0, stdout))
    state = ClockSync(runner, adjtimex=lambda: pytest.fail("not asked")).read()
    assert (state.synchronized, state.source) == (want, "timedatectl")


@pytest.mark.parametrize("answer", [
    CommandResult((), 1, "", "System has not been booted with systemd as init system (PID 1)."),
    DeadlineExceeded("timedatectl: no answer within 5 s"),
    CommandResult((), 0, "\n"),
])
@pytest.mark.parametrize("kernel", [True, False])
def test_falls_back_to_adjtimex(answer: object, kernel: bool) -> None:
    runner = FakeRunner()
    runner.set("timedatectl", "show", answer)  # type: ignore[arg-type]
    state = ClockSync(runner, adjtimex=lambda: kernel).read()
    assert (state.synchronized, state.source) == (kernel, "adjtimex")


def test_unknown_when_neither_answers() -> None:
    runner = FakeRunner()
    del runner.answers[("timedatectl", "show")]
    state = ClockSync(runner, adjtimex=lambda: None).read()
    assert state.synchronized is None
    assert "not installed" in state.error


def test_real_adjtimex_answers_read_only() -> None:
    """adjtimex(2) with modes=0 works unprivileged and in containers: a bool, not None."""
    assert read_adjtimex() in (True, False)


def test_wall_clock_jumps() -> None:
    sync = ClockSync(FakeRunner(), adjtimex=lambda: True)
    assert sync.note(1000.0, 10.0) is None
    assert sync.note(1060.0, 70.0) is None  # both moved 60 s
    assert sync.note(1000.0, 80.0) == "backward"  # wall went back 70 s
    assert sync.note(2000.0, 90.0) == "forward"
    assert sync.jumps == {"forward": 1, "backward": 1}
