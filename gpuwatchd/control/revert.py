"""Noticing a BMC that went back to automatic fan control behind our back, from fan speeds.

Supermicro reads its fan mode back (``ipmitool raw 0x30 0x45 0x00``); a Dell iDRAC has no
such command. So for Dell the fans themselves are the witness, at any duty and while the
duty moves (issue 10: after an external ``ipmitool raw 0x30 0x30 0x01 0x01`` under a moving
load the old watch, which only learned at a steady duty, saw nothing for 150-212 s):

- the commanded duty is passed through the fans' own lag (a first-order lag of
  :data:`FAN_LAG_SECONDS`: fans spin up and down in a few seconds), giving the duty the fans
  should be turning at *now* (the *lagged duty*);
- the expected speed of a lagged duty comes from the calibration (``gpuwatchctl
  calibrate``) where there is one, else from a duty -> rpm map learned from every
  observation that agreed with it (whole percents of lagged duty, averaged), read at any
  duty within the learned range by a straight line through the learned points (fan speed
  is linear in duty: the R720xd table, 160 rpm per %); beyond the learned range it does not
  judge, it only learns;
- the measured mean rpm must lie between the speeds of the lowest and highest lagged duty of
  the last :data:`WINDOW_SECONDS` (a margin for a lag other than assumed), widened by
  ``tolerance``; two ticks in a row outside that band, or one tick outside twice the
  tolerance, are a revert. The controller then logs it, counts it
  (``gpuwatchd_fan_control_reverts_total``) and re-asserts manual mode on the same tick.

The expectation can be wrong too: a map learned while the BMC had already reverted (the
fans at the BMC's own speed whatever the duty), a calibration from other fans. Two guards:
a learned map whose speeds do not rise with the duty (:data:`MIN_RELATIVE_SLOPE`) is no
map (it is dropped and learned again); and the re-assert after a revert is the experiment:
if the first verdict after it (once the fans had ``settle_seconds`` to follow) is outside
the band again, the expectation was wrong, not the BMC: the learned map (or the
calibration, with a warning to calibrate again) is dropped and learned afresh, and no
further revert is counted.

Users' reports this guards against: smfc#99 (mode flipped after 20-40 min, nothing logged),
chenxiaolong/ipmi-fan-control#43 (full blast every few minutes).
"""

from __future__ import annotations

import itertools
import logging
import math
from collections import deque
from collections.abc import Sequence

log = logging.getLogger(__name__)

FAN_LAG_SECONDS = 3.0  # assumed time constant of a fan following its duty
WINDOW_SECONDS = 3.0  # lagged duties the measured speed may lie between
LEARN_MIN_SPAN = 0.03  # learned duties this far apart make a line (else: the nearest point)
NEAR_POINT = 0.02  # with one learned point, judge only this close to it
LEARN_WEIGHT = 0.2  # a new observation's weight in its learned point
# Fan speed rises with duty: 1,600 -> 17,600 rpm over 0-100 % on an R730 (2x the mid speed
# per unit of duty). A learned line rising less than 0.3x its mean speed per unit of duty
# was learned from fans the duty did not drive (a BMC already back in automatic mode).
MIN_RELATIVE_SLOPE = 0.3


class RpmWatch:
    """Expected rpm per duty, and the verdict on each observation."""

    def __init__(self, curve: Sequence[tuple[float, float]] = (), settle_seconds: float = 10.0,
                 tolerance: float = 0.08) -> None:
        self._curve = sorted(curve)
        self._learned: dict[int, float] = {}
        self._settle = settle_seconds  # after a (re)start, only learn for this long
        self._tolerance = tolerance
        self._history: deque[tuple[float, float]] = deque()  # (time, lagged duty)
        self._lagged: float | None = None
        self._since: float | None = None
        self._strikes = 0
        self._recheck = False  # the next verdict tests the expectation, after a revert

    def reset(self) -> None:
        """Forget the recent duties (after re-asserting, or when control stops)."""
        self._history.clear()
        self._lagged = self._since = None
        self._strikes = 0

    def expected_rpm(self, duty: float) -> float | None:
        """The mean rpm this duty should give: the calibration curve, else the learned map
        (None where it does not know)."""
        if len(self._curve) >= 2:
            return _interpolate(self._curve, duty)
        points = sorted((pct / 100.0, rpm) for pct, rpm in self._learned.items())
        if not points:
            return None
        low, high = points[0][0], points[-1][0]
        if high - low < LEARN_MIN_SPAN:
            nearest = min(points, key=lambda p: abs(p[0] - duty))
            return nearest[1] if abs(nearest[0] - duty) <= NEAR_POINT else None
        if not low - NEAR_POINT <= duty <= high + NEAR_POINT or not _rising(points):
            return None
        return _line(points, duty)

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
        lagged = self._lag(now, duty)
        self._history.append((now, lagged))
        while now - self._history[0][0] > WINDOW_SECONDS + 1e-6:
            self._history.popleft()
        if self._since is None:
            self._since = now
        if now - self._since < self._settle - 1e-6:
            return False  # the fans are still catching up with the (re)started control
        duties = [d for _, d in self._history]
        expect_low, expect_high = self.expected_rpm(min(duties)), self.expected_rpm(max(duties))
        if expect_low is None or expect_high is None:
            self._learn(lagged, rpm)
            return False
        low, high = sorted((expect_low, expect_high))
        tol = self._tolerance
        recheck, self._recheck = self._recheck, False
        if low * (1 - tol) <= rpm <= high * (1 + tol):
            self._strikes = 0
            self._learn(lagged, rpm)
            return False
        if recheck:  # re-asserted, the fans followed, and still not as expected: the model
            self._relearn(lagged, rpm)
            return False
        self._strikes += 1
        far = rpm < low * (1 - 2 * tol) or rpm > high * (1 + 2 * tol)
        if far or self._strikes >= 2:
            self._recheck = True
            return True
        return False

    def _relearn(self, lagged: float, rpm: float) -> None:
        if self._curve:
            log.warning("the fan speeds do not match the calibration even with manual control "
                        "re-asserted: ignoring it (run gpuwatchctl calibrate again)")
            self._curve = []
        else:
            log.info("the fan speeds do not match the learned duty -> rpm map even with manual "
                     "control re-asserted: learning it again")
        self._learned.clear()
        self._learn(lagged, rpm)

    def _lag(self, now: float, duty: float) -> float:
        """The commanded duty through the fans' first-order lag."""
        if self._lagged is None or not self._history:
            self._lagged = duty
        else:
            dt = max(0.0, now - self._history[-1][0])
            self._lagged += (duty - self._lagged) * (1 - math.exp(-dt / FAN_LAG_SECONDS))
        return self._lagged

    def _learn(self, lagged: float, rpm: float) -> None:
        if self._curve:
            return
        pct = round(lagged * 100)
        old = self._learned.get(pct)
        self._learned[pct] = rpm if old is None else old + (rpm - old) * LEARN_WEIGHT
        points = sorted((p / 100.0, r) for p, r in self._learned.items())
        if points[-1][0] - points[0][0] >= LEARN_MIN_SPAN and not _rising(points):
            self._learned = {pct: rpm}  # not fans the duty drives: start again from here


def _rising(points: Sequence[tuple[float, float]]) -> bool:
    """Whether the learned speeds rise with the duty as fans do (MIN_RELATIVE_SLOPE)."""
    mean = sum(r for _, r in points) / len(points)
    return _line(points, 1.0) - _line(points, 0.0) >= MIN_RELATIVE_SLOPE * mean


def _line(points: Sequence[tuple[float, float]], duty: float) -> float:
    """The least-squares line through (duty, rpm) points, at ``duty``."""
    n = len(points)
    mx = sum(d for d, _ in points) / n
    my = sum(r for _, r in points) / n
    sxx = sum((d - mx) ** 2 for d, _ in points)
    slope = sum((d - mx) * (r - my) for d, r in points) / sxx if sxx > 0 else 0.0
    return my + slope * (duty - mx)


def _interpolate(curve: Sequence[tuple[float, float]], duty: float) -> float:
    """Linear interpolation of (duty, rpm) points, extended flat beyond the ends."""
    if duty <= curve[0][0]:
        return curve[0][1]
    for (d0, r0), (d1, r1) in itertools.pairwise(curve):
        if duty <= d1:
            return r0 + (r1 - r0) * (duty - d0) / (d1 - d0) if d1 > d0 else r1
    return curve[-1][1]
