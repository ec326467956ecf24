"""A PID controller for fan duty: no I/O, no clock (the caller passes ``dt``).

Direct acting: a measurement above the setpoint raises the output (hotter -> more duty).
Units: the measurement and setpoint in degrees Celsius, the output a duty ratio, so ``kp`` is
duty per degree, ``ki`` duty per degree-second and ``kd`` duty per (degree per second).

- Derivative on the measurement, not on the error: a setpoint change (a config reload) does
  not kick the output; the rate is low-pass filtered (``derivative_filter_seconds``) so one
  noisy integer-degree step from NVML does not slam the fans.
- Anti-windup: the caller reports the duty it actually applied (:meth:`Pid.applied`) after
  clamping and slew limiting; an integration step that pushed against that limit is undone,
  and the integral is bounded (the output range, widened by its width). So the integral never
  winds up while the fans are at full speed, or while the slew limit holds the duty back.
- Bumpless entry (:meth:`Pid.reset`): the integral is set so the first output equals the duty
  the fans already run at. Gains and setpoint changes (:meth:`Pid.retune`) keep the output
  continuous too.
"""

from __future__ import annotations

from dataclasses import dataclass

_EPS = 1e-9


@dataclass(frozen=True)
class PidGains:
    """Gains in duty units (see the module docstring)."""

    kp: float
    ki: float
    kd: float
    derivative_filter_seconds: float = 0.0


@dataclass(frozen=True)
class PidTerms:
    """The three terms of the last update; ``output`` is their sum (before any limit)."""

    p: float = 0.0
    i: float = 0.0
    d: float = 0.0

    @property
    def output(self) -> float:
        return self.p + self.i + self.d


class Pid:
    """One PID loop; not thread-safe (each zone owns one)."""

    def __init__(self, gains: PidGains, setpoint: float, out_min: float, out_max: float) -> None:
        if out_min > out_max:
            raise ValueError(f"out_min {out_min} above out_max {out_max}")
        self.gains = gains
        self.setpoint = setpoint
        self.out_min, self.out_max = out_min, out_max
        self._integral = out_min
        self._rate = 0.0  # filtered d(measurement)/dt
        self._last: float | None = None
        self._last_di = 0.0
        self.terms = PidTerms(i=out_min)

    def reset(self, measurement: float, output: float) -> None:
        """Bumpless start: the next output (for an unchanged measurement) is ``output``."""
        self._last = measurement
        self._rate = 0.0
        self._last_di = 0.0
        p = self.gains.kp * (measurement - self.setpoint)
        self._integral = self._clamp(output - p)
        self.terms = PidTerms(p, self._integral, 0.0)

    def retune(self, gains: PidGains, setpoint: float, out_min: float, out_max: float) -> None:
        """New gains, setpoint or limits (config reload) without a jump in the output."""
        if out_min > out_max:
            raise ValueError(f"out_min {out_min} above out_max {out_max}")
        before = self.terms.output
        self.gains, self.setpoint = gains, setpoint
        self.out_min, self.out_max = out_min, out_max
        if self._last is None:
            self._integral = self._clamp(self._integral)
            return
        p = gains.kp * (self._last - setpoint)
        d = gains.kd * self._rate
        self._integral = self._clamp(before - p - d)
        self.terms = PidTerms(p, self._integral, d)

    def update(self, measurement: float, dt: float) -> PidTerms:
        """One step with a new measurement ``dt`` seconds after the last; returns the terms."""
        g = self.gains
        if self._last is None:
            self.reset(measurement, self._integral)
        assert self._last is not None  # noqa: S101 - set by reset()
        error = measurement - self.setpoint
        self._last_di = 0.0
        if dt > 0:
            rate = (measurement - self._last) / dt
            alpha = dt / (g.derivative_filter_seconds + dt)
            self._rate += alpha * (rate - self._rate)
            self._last_di = g.ki * error * dt
            self._integral = self._clamp(self._integral + self._last_di)
        self._last = measurement
        self.terms = PidTerms(g.kp * error, self._integral, g.kd * self._rate)
        return self.terms

    def applied(self, output: float) -> None:
        """Anti-windup: tell the PID the output actually applied after limits."""
        raw = self.terms.output
        pushed_up = output < raw - _EPS and self._last_di > 0
        pushed_down = output > raw + _EPS and self._last_di < 0
        if pushed_up or pushed_down:
            self._integral = self._clamp(self._integral - self._last_di)
            self._last_di = 0.0
            self.terms = PidTerms(self.terms.p, self._integral, self.terms.d)

    def _clamp(self, value: float) -> float:
        """The integral's bounds: the output range widened by its own width on each side,
        room enough for a bumpless start far from the setpoint (a large P term), never a
        store of windup (conditional integration stops that, see :meth:`applied`)."""
        span = self.out_max - self.out_min
        return min(self.out_max + span, max(self.out_min - span, value))
