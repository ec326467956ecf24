"""The Dell revert watch (gpuwatchd.control.revert) on a model fan: a first-order lag, rpm
linear in duty (1,600 + 16,000 x duty, as the R720xd table), read with noise."""

from __future__ import annotations

import math
import random

import pytest

from gpuwatchd.control.revert import RpmWatch


class Fan:
    def __init__(self, lag_seconds: float, seed: int) -> None:
        self.rpm, self.lag, self.rand = 8000.0, lag_seconds, random.Random(seed)

    def step(self, duty: float, dt: float = 1.0) -> float:
        self.rpm += (1600 + 16000 * duty - self.rpm) * (1 - math.exp(-dt / self.lag))
        return self.rpm * (1 + self.rand.uniform(-0.02, 0.02))


def moving_duty(t: float) -> float:
    """A duty that never stays: 0.25-0.55 over a 5-minute period, plus steps."""
    return 0.4 + 0.15 * math.sin(2 * math.pi * t / 300) + (0.05 if int(t) % 97 < 20 else 0.0)


@pytest.mark.parametrize("lag", [2.0, 3.0, 5.0])
def test_no_false_revert_while_the_duty_moves_and_a_revert_is_seen_in_two_seconds(
        lag: float) -> None:
    watch, fan = RpmWatch(), Fan(lag, seed=int(lag))
    for t in range(2000):
        assert not watch.observe(float(t), moving_duty(t), fan.step(moving_duty(t))), t
    assert watch.expected_rpm(0.4) == pytest.approx(1600 + 16000 * 0.4, rel=0.05)
    for start in (2000, 2100, 2230):  # the iDRAC goes to its own 15 % (response off)
        for t in range(start - 60, start):
            watch.observe(float(t), moving_duty(t), fan.step(moving_duty(t)))
        seen = next(t for t in range(start, start + 10)
                    if watch.observe(float(t), moving_duty(t), fan.step(0.15)))
        assert seen - start <= 2, (start, moving_duty(start))
        watch.reset()


def test_the_calibration_curve_judges_from_the_start() -> None:
    curve = [(d / 10, 1600 + 1600 * d) for d in range(11)]
    watch, fan = RpmWatch(curve), Fan(3.0, seed=1)
    for t in range(12):
        assert not watch.observe(float(t), 0.5, fan.step(0.5))
    assert watch.observe(12.0, 0.5, fan.step(1.0)) or watch.observe(13.0, 0.5, fan.step(1.0))


def test_no_verdict_beyond_what_was_learned() -> None:
    watch, fan = RpmWatch(), Fan(3.0, seed=2)
    for t in range(60):
        watch.observe(float(t), 0.3, fan.step(0.3))
    assert watch.expected_rpm(0.3) is not None and watch.expected_rpm(0.8) is None


def test_a_wrong_expectation_is_one_revert_then_relearned_not_a_revert_every_tick(
        caplog: pytest.LogCaptureFixture) -> None:
    wrong = [(d / 10, 800 + 800 * d) for d in range(11)]  # a calibration of other fans
    watch, fan = RpmWatch(wrong), Fan(3.0, seed=3)
    reverts = 0
    for t in range(600):
        if watch.observe(float(t), moving_duty(t), fan.step(moving_duty(t))):
            reverts += 1
            watch.reset()  # as the controller does when it re-asserts
    assert reverts == 1
    assert "run gpuwatchctl calibrate again" in caplog.text
    assert watch.expected_rpm(0.4) == pytest.approx(1600 + 16000 * 0.4, rel=0.05)


def test_fans_that_do_not_follow_the_duty_teach_no_map() -> None:
    watch, fan = RpmWatch(), Fan(3.0, seed=4)
    for t in range(200):  # the BMC went automatic before anything was learned: 15 % always
        watch.observe(float(t), moving_duty(t), fan.step(0.15))
    known = [d for d in range(10, 70) if watch.expected_rpm(d / 100) is not None]
    assert len(known) <= 5  # at most the last point, nothing across the duty range
