"""A PID controller for fan duty: no I/O, no clock (the caller passes ``dt``).

Direct acting: a measurement above the setpoint raises the output (hotter -> more duty).
Units: the measurement and setpoint in degrees Celsius, the output a duty ratio, so ``kp`` is
duty per degree, ``ki`` duty per degree-second and ``kd`` duty per (degree per second).

- Whole-degree readings (NVML's) do not kick it: with ``window_seconds`` the terms use a
  least-squares line over that window (gpuwatchd.control.estimate.LineFit): P and I its mean
  (half a window late, and smooth), D its slope, instead of the last reading and a two-point
  difference.
- Derivative on the measurement, not on the error: a setpoint change (a config reload) does
  not kick the output; the rate is also low-pass filtered (``derivative_filter_seconds``).
- Error dead band (``error_deadband_celsius``): an error within the sensor's resolution is
  neither integrated nor acted on by P (outside it P counts the error less the band), so the
  output holds still at a steady load instead of ramping until the integer reading flips and
  back (a limit cycle of the quantiser).
- Feed-forward (``feedforward_per_watt``): a term proportional to the heat the GPUs put out
  (their power, low-pass filtered over ``feedforward_filter_seconds``): a load step shows in
  the power at once, a heatsink time constant before it shows in the temperature. The
  integral carries the rest (the inlet temperature, the chassis, the model's error).
- Anti-windup: the caller reports the duty it actually applied (:meth:`Pid.applied`) after
  clamping and slew limiting; an integration step that pushed against that limit is undone,
  and the integral plus feed-forward is bounded (the output range, widened by its width). So
  the integral never winds up while the fans are at full speed, or while the slew limit holds
  the duty back. Held at the floor below the setpoint, the integral still comes down until
  it and the feed-forward make the floor (no bias stored through a long idle).
- Bumpless entry (:meth:`Pid.reset`): the integral is set so the first output equals the duty
  the fans already run at. Gains and setpoint changes (:meth:`Pid.retune`) keep the output
  continuous too.

With the new keys at 0 (their :class:`PidGains` defaults) this is the plain filtered PID.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpuwatchd.control.estimate import LineFit, Lowpass

_EPS = 1e-9
# The feed-forward the floor's bias is judged by follows the power this slowly (about a
# heatsink time constant or two): a load step keeps its feed-forward while the heatsink warms.
BIAS_POWER_SECONDS = 300.0


@dataclass(frozen=True)
class PidGains:
    """Gains in duty units (see the module docstring)."""

    kp: float
    ki: float
    kd: float
    derivative_filter_seconds: float = 0.0
    window_seconds: float = 0.0
    error_deadband_celsius: float = 0.0
    feedforward_per_watt: float = 0.0
    feedforward_filter_seconds: float = 0.0


@dataclass(frozen=True)
class PidTerms:
    """The terms of the last update; ``output`` is their sum (before any limit)."""

    p: float = 0.0
    i: float = 0.0
    d: float = 0.0
    f: float = 0.0  # feed-forward from the power

    @property
    def output(self) -> float:
        return self.p + self.i + self.d + self.f


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
        self._last: float | None = None  # the (fitted) measurement of the last update
        self._last_di = 0.0
        self._t = 0.0  # seconds: the sum of the dt passed in
        self._fit = LineFit(gains.window_seconds)
        self._power = Lowpass(gains.feedforward_filter_seconds)
        self._slow_power = Lowpass(BIAS_POWER_SECONDS)
        self.terms = PidTerms(i=out_min)

    def reset(self, measurement: float, output: float, power_watts: float | None = None) -> None:
        """Bumpless start: the next output (for an unchanged measurement) is ``output``."""
        self._last = measurement
        self._rate = 0.0
        self._last_di = 0.0
        self._fit.reset(self._t, measurement)
        self._power.reset(power_watts)
        self._slow_power.reset(power_watts)
        p = self._p(measurement)
        f = self._feedforward()
        self._integral = self._clamp(output - p - f, f)
        self.terms = PidTerms(p, self._integral, 0.0, f)

    def retune(self, gains: PidGains, setpoint: float, out_min: float, out_max: float) -> None:
        """New gains, setpoint or limits (config reload) without a jump in the output."""
        if out_min > out_max:
            raise ValueError(f"out_min {out_min} above out_max {out_max}")
        before = self.terms.output
        if gains.window_seconds != self.gains.window_seconds:
            self._fit.window_seconds = gains.window_seconds
        self._power.seconds = gains.feedforward_filter_seconds
        self.gains, self.setpoint = gains, setpoint
        self.out_min, self.out_max = out_min, out_max
        f = self._feedforward()
        if self._last is None:
            self._integral = self._clamp(self._integral, f)
            return
        p = self._p(self._last)
        d = gains.kd * self._rate
        self._integral = self._clamp(before - p - d - f, f)
        self.terms = PidTerms(p, self._integral, d, f)

    def update(self, measurement: float, dt: float,
               power_watts: float | None = None) -> PidTerms:
        """One step with a new measurement ``dt`` seconds after the last (and the heat put
        out now, for the feed-forward); returns the terms."""
        g = self.gains
        if self._last is None:
            self.reset(measurement, self._integral, power_watts)
        self._last_di = 0.0
        if power_watts is not None:
            self._power.add(power_watts, dt)
            self._slow_power.add(power_watts, dt)
        f = self._feedforward()
        if dt > 0:
            self._t += dt
            fit = self._fit.add(self._t, measurement)
            alpha = dt / (g.derivative_filter_seconds + dt)
            self._rate += alpha * (fit.slope - self._rate)
            value = fit.mean
            error = value - self.setpoint
            if abs(error) > g.error_deadband_celsius:
                self._last_di = g.ki * error * dt
            self._integral = self._clamp(self._integral + self._last_di, f)
        else:
            value = measurement
            self._integral = self._clamp(self._integral, f)
        self._last = value
        self.terms = PidTerms(self._p(value), self._integral,
                              g.kd * self._rate, f)
        return self.terms

    def applied(self, output: float) -> None:
        """Anti-windup: tell the PID the output actually applied after limits."""
        raw = self.terms.output
        pushed_up = output < raw - _EPS and self._last_di > 0
        pushed_down = output > raw + _EPS and self._last_di < 0
        f = self.terms.f
        slow = self.gains.feedforward_per_watt * (self._slow_power.value or 0.0)
        if pushed_down and output <= self.out_min + _EPS and self._integral + slow > self.out_min:
            # Held at the floor while cooler than the setpoint: the bias (integral plus the
            # slow feed-forward) still comes down to the floor, never lower. A bias left high
            # (a bumpless start from the BMC's 80 % far below the setpoint) would otherwise
            # stay stored through a long idle and send the fans to full at the next load step;
            # the slow feed-forward keeps a load step's feed-forward while the heatsink warms.
            self._integral = max(self._integral, self.out_min - slow)
            self.terms = PidTerms(self.terms.p, self._integral, self.terms.d, f)
            return
        if pushed_up or pushed_down:
            self._integral = self._clamp(self._integral - self._last_di, self.terms.f)
            self._last_di = 0.0
            self.terms = PidTerms(self.terms.p, self._integral, self.terms.d, self.terms.f)

    def _p(self, value: float) -> float:
        """The P term: the error less the dead band (none within it, continuous outside)."""
        error = value - self.setpoint
        band = self.gains.error_deadband_celsius
        return self.gains.kp * (error - max(-band, min(band, error)))

    def _feedforward(self) -> float:
        power = self._power.value
        return self.gains.feedforward_per_watt * power if power is not None else 0.0

    def _clamp(self, value: float, feedforward: float = 0.0) -> float:
        """The integral's bounds: the output range widened by its own width on each side
        (less the feed-forward term), room enough for a bumpless start far from the setpoint
        (a large P term), never a store of windup (conditional integration stops that, see
        :meth:`applied`)."""
        span = self.out_max - self.out_min
        return min(self.out_max + span - feedforward,
                   max(self.out_min - span - feedforward, value))
