"""Noticing a BMC that went back to automatic fan control behind our back, from fan speeds.

Supermicro reads its fan mode back (``ipmitool raw 0x30 0x45 0x00``); a Dell iDRAC has no
such command. So for Dell the fans themselves are the witness: once the commanded duty has
been steady for ``settle_seconds`` (fans take a few seconds to follow), the measured mean rpm
must match what that duty gave before, within ``tolerance``. The expectation comes from the
calibration (``gpuwatchctl calibrate``) where there is one, else it is learned while the
duty is steady. Two steady checks in a row outside the tolerance are a revert: the controller
logs it, counts it (``gpuwatchd_fan_control_reverts_total``) and re-asserts manual mode.

Users' reports this guards against: smfc#99 (mode flipped after 20-40 min, nothing logged),
chenxiaolong/ipmi-fan-control#43 (full blast every few minutes).
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Sequence

STEADY_DUTY_SPAN = 0.02  # the duty counts as steady while it moves less than this


class RpmWatch:
    """Expected rpm per duty, and the verdict on each observation."""

    def __init__(self, curve: Sequence[tuple[float, float]] = (), settle_seconds: float = 10.0,
                 tolerance: float = 0.3) -> None:
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
        """The mean rpm this duty should give (calibration first, then what was learned)."""
        if len(self._curve) >= 2:
            return _interpolate(self._curve, duty)
        pct = round(duty * 100)
        near = [p for p in self._learned if abs(p - pct) <= 2]
        return self._learned[min(near, key=lambda p: abs(p - pct))] if near else None

    def duty_for_rpm(self, rpm: float) -> float | None:
        """The duty that gives ``rpm`` on the calibration curve (None without one)."""
        if len(self._curve) < 2:
            return None
        inverse = sorted((r, d) for d, r in self._curve)
        return _interpolate(inverse, rpm)

    def observe(self, now: float, duty: float | None, rpm: float | None) -> bool:
        """One tick's commanded duty and measured mean rpm; True when a revert is found."""
        if duty is None or rpm is None:
            self.reset()
            return False
        self._history.append((now, duty))
        while self._history and now - self._history[0][0] > self._settle:
            self._history.popleft()
        duties = [d for _, d in self._history]
        steady = (now - self._history[0][0] >= self._settle - 1e-6
                  and max(duties) - min(duties) <= STEADY_DUTY_SPAN)
        if not steady:
            self._strikes = 0
            return False
        expected = self.expected_rpm(duty)
        if expected is None or expected <= 0:
            self._learned[round(duty * 100)] = rpm
            return False
        if abs(rpm / expected - 1.0) <= self._tolerance:
            self._strikes = 0
            if not self._curve:
                self._learned[round(duty * 100)] = rpm
            return False
        self._strikes += 1
        return self._strikes >= 2


def _interpolate(curve: Sequence[tuple[float, float]], duty: float) -> float:
    """Linear interpolation of (duty, rpm) points, extended flat beyond the ends."""
    if duty <= curve[0][0]:
        return curve[0][1]
    for (d0, r0), (d1, r1) in itertools.pairwise(curve):
        if duty <= d1:
            return r0 + (r1 - r0) * (duty - d0) / (d1 - d0) if d1 > d0 else r1
    return curve[-1][1]
