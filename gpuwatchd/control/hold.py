"""The write dead band and minimum dwell of a zone's commanded duty. No I/O.

Fans that step every few seconds are what a person hears (issue 12): the commanded duty holds
still through small changes of the PID's, and the BMC gets a write only when it moves.
"""

from __future__ import annotations

SMALLEST_STEP_RATIO = 0.01  # a whole percent: the BMC's resolution (ipmitool raw ... 0x30 NN)


class Hold:
    """The write dead band and minimum dwell of a zone's commanded duty.

    The zone's duty as the limits shaped it (``shaped``) is followed once it is ``deadband``
    or more away from the commanded duty, or a whole percent away after the commanded duty
    has held for ``dwell_seconds``; once moving, the commanded duty follows (within the slew
    limits, tick by tick) until it is within a whole percent of it, then holds again (no
    sub-percent moves: the BMC takes whole percents, and a move too small to be written
    would leave the duty recorded as written behind the zone's). So at a steady load the
    duty holds still while the error is inside the sensor's resolution, and it still reaches
    any level.
    """

    def __init__(self) -> None:
        self.duty: float | None = None  # as commanded
        self.shaped: float | None = None  # as the limits shaped it (the slew limits' base)
        self.since_mono = 0.0
        self.tracking = False

    def reset(self, duty: float, now_mono: float) -> None:
        self.duty = self.shaped = duty
        self.since_mono = now_mono
        self.tracking = False

    def moved(self, duty: float) -> float:
        """The commanded duty after the slew limits: caught up (holding again) or not."""
        assert self.shaped is not None  # noqa: S101 - set by step()
        self.tracking = abs(duty - self.shaped) > 1e-9
        self.duty = duty
        return duty

    def step(self, duty: float, now_mono: float, deadband: float, dwell_seconds: float) -> float:
        """The duty to command now for the limits' ``duty`` (then :meth:`moved`)."""
        self.shaped = duty
        held = self.duty
        change = abs(duty - held) if held is not None else float("inf")
        dwelt = now_mono - self.since_mono >= dwell_seconds
        near = change < SMALLEST_STEP_RATIO - 1e-9
        if self.tracking and near and deadband > SMALLEST_STEP_RATIO:
            self.tracking = False  # caught up to within what the BMC resolves: hold here
        if self.tracking or change >= max(deadband, 1e-12) \
                or (dwelt and change >= SMALLEST_STEP_RATIO - 1e-9):
            self.since_mono = now_mono
            return duty
        assert held is not None  # noqa: S101 - infinite change otherwise
        return held
