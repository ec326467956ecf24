"""The PID and the zone's duty limits: behaviour, and hypothesis properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpuwatchd.control.pid import Pid, PidGains
from gpuwatchd.control.zones import limit

GAINS = PidGains(kp=0.03, ki=0.002, kd=0.5, derivative_filter_seconds=4.0)


def test_hotter_than_the_setpoint_raises_the_output() -> None:
    pid = Pid(GAINS, 75.0, 0.0, 1.0)
    pid.reset(75.0, 0.4)
    assert pid.update(75.0, 1.0).output == pytest.approx(0.4)
    assert pid.update(80.0, 1.0).output > 0.4 + 5 * GAINS.kp  # P plus a rising derivative


def test_bumpless_reset_gives_the_current_duty() -> None:
    pid = Pid(GAINS, 75.0, 0.15, 1.0)
    pid.reset(60.0, 0.8)
    assert pid.terms.output == pytest.approx(0.8)
    # an unchanged measurement a tick later moves the output by the integral step only
    assert pid.update(60.0, 1.0).output == pytest.approx(0.8 + GAINS.ki * -15.0)


def test_derivative_is_on_the_measurement_not_the_setpoint() -> None:
    pid = Pid(GAINS, 75.0, 0.0, 1.0)
    pid.reset(70.0, 0.5)
    before = pid.update(70.0, 1.0)
    pid.retune(GAINS, 65.0, 0.0, 1.0)  # a reload lowers the setpoint by 5 C
    assert pid.terms.output == pytest.approx(before.output)  # no kick at the change
    after = pid.update(70.0, 1.0)
    assert after.d == pytest.approx(0.0)
    assert after.output == pytest.approx(before.output + GAINS.ki * 5.0)


def test_derivative_is_filtered() -> None:
    unfiltered = Pid(PidGains(0.0, 0.0, 1.0, 0.0), 75.0, -10.0, 10.0)
    filtered = Pid(PidGains(0.0, 0.0, 1.0, 4.0), 75.0, -10.0, 10.0)
    for pid in (unfiltered, filtered):
        pid.reset(70.0, 0.0)
    assert unfiltered.update(71.0, 1.0).d == pytest.approx(1.0)  # a one-degree NVML step
    assert filtered.update(71.0, 1.0).d == pytest.approx(0.2)  # 1 s / (4 s + 1 s)


def test_no_windup_while_saturated() -> None:
    """Minutes at full duty with a huge error must not delay the way down afterwards."""
    pid = Pid(GAINS, 75.0, 0.15, 1.0)
    pid.reset(90.0, 1.0)
    for _ in range(600):
        pid.update(90.0, 1.0)
        pid.applied(min(1.0, pid.terms.output))
    assert pid.terms.i <= 1.0 - GAINS.kp * 15 + 1e-9  # held where P + I gave full duty
    pid.update(74.0, 1.0)  # cooled below the setpoint
    pid.applied(min(1.0, pid.terms.output))
    assert pid.terms.output < 1.0


def test_integration_against_the_slew_limit_is_undone() -> None:
    pid = Pid(GAINS, 75.0, 0.0, 1.0)
    pid.reset(60.0, 0.8)
    i_before = pid.terms.i
    pid.update(60.0, 1.0)
    pid.applied(0.8)  # held up by the down-slew limit: the negative step is taken back
    assert pid.terms.i == pytest.approx(i_before)


def test_out_min_above_out_max_is_refused() -> None:
    with pytest.raises(ValueError, match="above"):
        Pid(GAINS, 75.0, 0.9, 0.1)


temps = st.floats(min_value=0.0, max_value=120.0, allow_nan=False)
duties = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(raw=st.floats(min_value=-50, max_value=50, allow_nan=False), prev=duties,
       dt=st.floats(min_value=0.0, max_value=10.0), lo=duties, hi=duties,
       up=st.floats(min_value=0.001, max_value=1.0),
       down=st.floats(min_value=0.001, max_value=1.0),
       hold=st.booleans())
def test_limit_stays_within_min_max_and_the_slew_rates(*, raw: float, prev: float, dt: float,
                                                       lo: float, hi: float, up: float,
                                                       down: float, hold: bool) -> None:
    lo, hi = min(lo, hi), max(lo, hi)
    prev = min(hi, max(lo, prev))  # the previous duty obeyed the same limits
    out = limit(raw, prev, dt, low=lo, high=hi, up_per_second=up, down_per_second=down,
                hold=hold)
    assert lo <= out <= hi
    assert out - prev <= up * dt + 1e-12
    assert prev - out <= down * dt + 1e-12
    if hold:
        assert out >= prev


@settings(max_examples=200, deadline=None)
@given(start=temps, steps=st.lists(st.tuples(temps, st.floats(min_value=0.1, max_value=5.0)),
                                   min_size=1, max_size=60),
       entry=duties)
def test_pid_terms_are_finite_and_the_integral_stays_within_limits(
        start: float, steps: list[tuple[float, float]], entry: float) -> None:
    pid = Pid(GAINS, 75.0, 0.15, 1.0)
    pid.reset(start, entry)
    for temp, dt in steps:
        terms = pid.update(temp, dt)
        pid.applied(min(1.0, max(0.15, terms.output)))
        assert 0.15 - 0.85 <= pid.terms.i <= 1.0 + 0.85
