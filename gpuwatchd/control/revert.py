"""Noticing a BMC that went back to automatic fan control behind our back, from fan speeds.

Supermicro reads its fan mode back (``ipmitool raw 0x30 0x45 0x00``); a Dell iDRAC has no
such command. So for Dell the fans themselves are the witness: the measured mean rpm must lie
between what the lowest and the highest duty of the last ``settle_seconds`` give (fans take
a few seconds to follow), widened by ``tolerance``. The expectation comes from the
calibration (``gpuwatchctl calibrate``) where there is one, else it is learned while the
duty is steady. Two ticks in a row outside the band are a revert: the controller logs it,
counts it (``gpuwatchd_fan_control_reverts_total``) and re-asserts manual mode.

Users' reports this guards against: smfc#99 (mode flipped after 20-40 min, nothing logged),
chenxiaolong/ipmi-fan-control#43 (full blast every few minutes).
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Sequence

STEADY_DUTY_SPAN = 0.02  # the duty counts as steady while it moves less than this
# A learned point follows a new reading only this close to it: fans that slow down gradually
# after a revert at a steady duty (a 3 s spin-down, within the band tick by tick) must not
# drag the expectation down with them (issue 12: a duty held still by the dead band).
RELEARN_RATIO = 0.05


class RpmWatch:
    """Expected rpm per duty, and the verdict on each observation."""

    def __init__(self, curve: Sequence[tuple[float, float]] = (), settle_seconds: float = 10.0,
                 tolerance: float = 0.35) -> None:
        self._curve = sorted(curve)
        self._learned: dict[int, float] = {}
        self._settle = settle_seconds
        self._tolerance = tolerance
        self._history: deque[tuple[float, float]] = deque()
        self._strikes = 0

    def reset(self) -> None:
        """Forget the recent duties (after re-asserting, or when control stops)."""
        self._history.clear()
        self._strikes = 0

    def expected_rpm(self, duty: float) -> float | None:
        """The mean rpm this duty should give: the calibration curve, else the learned points
        (interpolated between them, in proportion to the duty beyond them)."""
        if len(self._curve) >= 2:
            return _interpolate(self._curve, duty)
        learned = sorted((pct / 100.0, rpm) for pct, rpm in self._learned.items()
                         if pct > 0)
        if not learned:
            return None
        (low, low_rpm), (high, high_rpm) = learned[0], learned[-1]
        if duty < low:  # beyond what was learned: in proportion to the nearest point
            return low_rpm * duty / low
        if duty > high:
            return high_rpm * duty / high
        return _interpolate(learned, duty)

    def duty_for_rpm(self, rpm: float) -> float | None:
        """The duty that gives ``rpm`` on the calibration curve (None without one)."""
        if len(self._curve) < 2:
            return None
        inverse = sorted((r, d) for d, r in self._curve)
        return _interpolate(inverse, rpm)

    def observe(self, now: float, duty: float | None, rpm: float | None) -> bool:
        """One tick's commanded duty and measured mean rpm; True when a revert is found.

        The measured speed must lie within the speeds of the lowest and highest duty of the
        last ``settle_seconds`` (fans lag the duty by a few seconds), widened by the
        tolerance; two ticks in a row outside that band are a revert.
        """
        if duty is None or rpm is None:
            self.reset()
            return False
        self._history.append((now, duty))
        while self._history and now - self._history[0][0] > self._settle:
            self._history.popleft()
        if now - self._history[0][0] < self._settle - 1e-6:
            return False  # not enough history since the last (re)start
        duties = [d for _, d in self._history]
        low, high = min(duties), max(duties)
        steady = high - low <= STEADY_DUTY_SPAN
        expect_low, expect_high = self.expected_rpm(low), self.expected_rpm(high)
        if expect_low is None or expect_high is None:
            if steady:
                self._learn(duty, rpm)
            return False
        if expect_low * (1 - self._tolerance) <= rpm <= expect_high * (1 + self._tolerance):
            self._strikes = 0
            if steady and not self._curve:
                self._learn(duty, rpm)
            return False
        self._strikes += 1
        return self._strikes >= 2

    def _learn(self, duty: float, rpm: float) -> None:
        key = round(duty * 100)
        old = self._learned.get(key)
        if old is None or abs(rpm - old) <= RELEARN_RATIO * old:
            self._learned[key] = rpm


def _interpolate(curve: Sequence[tuple[float, float]], duty: float) -> float:
    """Linear interpolation of (duty, rpm) points, extended flat beyond the ends."""
    if duty <= curve[0][0]:
        return curve[0][1]
    for (d0, r0), (d1, r1) in itertools.pairwise(curve):
        if duty <= d1:
            return r0 + (r1 - r0) * (duty - d0) / (d1 - d0) if d1 > d0 else r1
    return curve[-1][1]
