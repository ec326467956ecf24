"""Remediation: opt-in, only `systemctl restart nvidia-gridd`, never while licensed, limits."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpuwatchd.clock import ManualClock
from gpuwatchd.errors import DeadlineExceeded
from gpuwatchd.licence.commands import CommandResult
from gpuwatchd.licence.gridd import UnitState
from gpuwatchd.licence.remediation import (
    DAY_SECONDS,
    MAX_PER_DAY,
    MIN_INTERVAL_SECONDS,
    RESTART_ARGV,
    Remediator,
    Situation,
)
from tests.fakes.licence_runner import FakeRunner

UP = UnitState("loaded", "active", "running", 5.0)
FAILED = UnitState("loaded", "failed", "failed")
BASE = Situation(applicable=True, any_licensed=False, any_unknown=False, unit=UP,
                 gridd_started_wall=None, changed_wall=None, configured=True,
                 longest_grace_seconds=0.0)


def make(enabled: bool = True, state_file: str | None = None):
    clock, runner = ManualClock(), FakeRunner()
    return clock, runner, Remediator(clock, runner, enabled=enabled, grace_seconds=600,
                                     state_file=state_file)


def test_off_by_default_does_nothing() -> None:
    _, runner, rem = make(enabled=False)
    assert rem.consider(replace(BASE, unit=FAILED)) is None
    assert runner.calls == []


@pytest.mark.parametrize(("situation", "reason"), [
    (replace(BASE, unit=FAILED), "unit_down"),
    (replace(BASE, unit=UnitState("loaded", "inactive", "dead")), "unit_down"),
    (replace(BASE, longest_grace_seconds=600), "grace_stalled"),
    (replace(BASE, gridd_started_wall=1_700_000_000.0 - 3600,
             changed_wall=1_700_000_000.0 - 120), "config_changed"),
])
def test_triggers_restart_exactly_gridd(situation: Situation, reason: str) -> None:
    _, runner, rem = make()
    action = rem.consider(situation)
    assert action is not None and action.reason == reason and action.ok
    assert runner.calls == [RESTART_ARGV]
    assert RESTART_ARGV == ("systemctl", "restart", "nvidia-gridd.service")
    assert rem.restarts[reason] == 1


@pytest.mark.parametrize("situation", [
    BASE,  # nothing wrong
    replace(BASE, applicable=False, unit=FAILED),  # not a guest
    replace(BASE, unit=UnitState("not-found", "inactive")),  # nothing to restart
    replace(BASE, unit=UnitState("masked", "inactive")),
    replace(BASE, unit=UnitState("loaded", "activating", "start")),  # systemd is on it
    replace(BASE, longest_grace_seconds=599),
    replace(BASE, gridd_started_wall=1_700_000_000.0 - 3600,
            changed_wall=1_700_000_000.0 - 30),  # change not settled yet
    replace(BASE, gridd_started_wall=1_700_000_000.0 - 60,
            changed_wall=1_700_000_000.0 - 3600),  # gridd started after the change
    replace(BASE, gridd_started_wall=1_700_000_000.0 - 3600,
            changed_wall=1_700_000_000.0 - 120, configured=False),  # token removed
])
def test_no_trigger(situation: Situation) -> None:
    _, runner, rem = make()
    assert rem.consider(situation) is None
    assert runner.calls == []
    assert sum(rem.suppressed.values()) == 0


@pytest.mark.parametrize(("situation", "guard"), [
    (replace(BASE, unit=FAILED, any_licensed=True), "licensed"),
    (replace(BASE, unit=FAILED, any_unknown=True), "unknown_state"),
])
def test_guards(situation: Situation, guard: str) -> None:
    _, runner, rem = make()
    assert rem.consider(situation) is None
    assert runner.calls == []
    assert rem.suppressed[guard] == 1


def test_rate_limits_with_an_injected_clock() -> None:
    clock, runner, rem = make()
    down = replace(BASE, unit=FAILED)
    times = []
    for _ in range(int(2 * DAY_SECONDS / 60)):  # gridd stays failed for two days
        if rem.consider(down) is not None:
            times.append(clock.time())
        clock.advance(60)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(gap >= MIN_INTERVAL_SECONDS for gap in gaps)
    assert times[:3] == [times[0], times[0] + 1800, times[0] + 3600]
    assert len(times) == 2 * MAX_PER_DAY  # three on each day
    assert rem.suppressed["interval"] > 0 and rem.suppressed["daily"] > 0
    assert len(runner.calls) == len(times)


def test_history_survives_a_daemon_restart(tmp_path: Path) -> None:
    state = str(tmp_path / "remediation.json")
    clock, _, rem = make(state_file=state)
    down = replace(BASE, unit=FAILED)
    for _ in range(3):
        assert rem.consider(down) is not None
        clock.advance(MIN_INTERVAL_SECONDS)
    assert len(json.loads(Path(state).read_text())["restarts"]) == 3
    again = Remediator(clock, FakeRunner(), enabled=True, state_file=state)
    assert again.consider(down) is None
    assert again.suppressed["daily"] == 1
    clock.advance(DAY_SECONDS)
    assert again.consider(down) is not None


def test_unwritable_or_corrupt_state_file_blocks(tmp_path: Path) -> None:
    _, runner, rem = make(state_file=str(tmp_path / "missing-dir" / "r.json"))
    assert rem.consider(replace(BASE, unit=FAILED)) is None
    assert runner.calls == [] and rem.suppressed["state_file"] == 1
    corrupt = tmp_path / "r.json"
    corrupt.write_text("{not json")
    _, runner2, rem2 = make(state_file=str(corrupt))
    assert rem2.consider(replace(BASE, unit=FAILED)) is None
    assert runner2.calls == [] and rem2.suppressed["state_file"] == 1
    corrupt.unlink()  # the operator removes it: allowed again
    assert rem2.consider(replace(BASE, unit=FAILED)) is not None


@pytest.mark.parametrize("answer", [CommandResult((), 5, "", "Job failed"),
                                    DeadlineExceeded("systemctl: no answer within 60 s")])
def test_failed_restart_is_counted_and_still_limits(answer: object) -> None:
    clock, runner, rem = make()
    runner.set_restart(answer)  # type: ignore[arg-type]
    action = rem.consider(replace(BASE, unit=FAILED))
    assert action is not None and not action.ok and action.message
    clock.advance(60)
    assert rem.consider(replace(BASE, unit=FAILED)) is None
    assert rem.suppressed["interval"] == 1


situations = st.builds(
    Situation, applicable=st.booleans(), any_licensed=st.booleans(),
    any_unknown=st.booleans(),
    unit=st.sampled_from([UP, FAILED, UnitState("loaded", "inactive", "dead"),
                          UnitState("not-found", "inactive"), UnitState(error="x")]),
    gridd_started_wall=st.none() | st.floats(1.6e9, 1.8e9),
    changed_wall=st.none() | st.floats(1.6e9, 1.8e9), configured=st.booleans(),
    longest_grace_seconds=st.floats(0, 5000))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(situations, st.floats(0, 7200)), min_size=1, max_size=80))
def test_property_never_while_licensed_never_beyond_limits(
        steps: list[tuple[Situation, float]]) -> None:
    """Whatever happens: no restart while licensed or unknown, >= 30 min apart, <= 3 a day,
    and the only command ever run is the restart of nvidia-gridd."""
    clock, runner, rem = make()
    done: list[float] = []
    for situation, dt in steps:
        clock.advance(dt)
        action = rem.consider(situation)
        if action is not None:
            assert not situation.any_licensed and not situation.any_unknown
            assert situation.applicable
            done.append(clock.time())
    assert set(runner.calls) <= {RESTART_ARGV}
    assert len(runner.calls) == len(done) == sum(rem.restarts.values())
    for i, when in enumerate(done):
        if i:
            assert when - done[i - 1] >= MIN_INTERVAL_SECONDS
        assert sum(1 for t in done if when - DAY_SECONDS < t <= when) <= MAX_PER_DAY
