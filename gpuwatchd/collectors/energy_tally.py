"""Energy bookkeeping shared by the GPU and chassis meters: totals by local day and month.

Pure: each meter feeds a :class:`Tally` the joules of one step; the day and month are the
host's local calendar (a price per kWh is billed by local day) and a step counts on the day
it ends. :func:`trapezoid` is the estimate where only power is known: the mean of the step's
two samples times its length, nothing for a gap longer than :data:`MAX_STEP_SECONDS` (a GPU
lost, a BMC silent, the daemon suspended) rather than a guess.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

MAX_STEP_SECONDS = 60.0
JOULES_PER_KWH = 3.6e6


@dataclass
class Tally:
    """Joules since start, today and this month."""

    total: float = 0.0
    today: float = 0.0
    month: float = 0.0
    day_key: str = ""
    month_key: str = ""

    def add(self, joules: float, now_wall: float) -> None:
        """Roll the day and month over if the calendar moved, then add ``joules``."""
        local = time.localtime(now_wall)
        day, month = time.strftime("%Y-%m-%d", local), time.strftime("%Y-%m", local)
        if self.day_key != day:
            self.today, self.day_key = 0.0, day
        if self.month_key != month:
            self.month, self.month_key = 0.0, month
        self.total += joules
        self.today += joules
        self.month += joules


def usable_step(prev_mono: float | None, now_mono: float) -> float | None:
    """The step's length in seconds, None when there is no previous sample or a gap."""
    if prev_mono is None:
        return None
    dt = now_mono - prev_mono
    return dt if 0.0 < dt <= MAX_STEP_SECONDS else None


def trapezoid(prev_watts: float | None, watts: float | None, dt: float | None) -> float:
    """Joules over a step from its two power samples (0 when either or the step is missing)."""
    if prev_watts is None or watts is None or dt is None:
        return 0.0
    return (prev_watts + watts) / 2 * dt


def kwh(joules: float) -> float:
    return joules / JOULES_PER_KWH
