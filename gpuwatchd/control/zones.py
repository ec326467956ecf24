"""One fan zone: its inputs, its PID, its limits and its safety state machine. No I/O.

Per tick the controller (gpuwatchd.control.loop) hands each zone the Snapshot; the zone
resolves its inputs, aggregates them by max, and steps its state machine (DESIGN.md, "Fan
control must be safe before it is quiet"):

- ``monitor``: no writes. At start until the inputs are good and the driver holds manual
  control; for good when the BMC refused manual control (``0xd4``/``0xc1``) or control is off.
- ``control``: the PID output (with the GPUs' power as feed-forward), clamped to [min_duty,
  max_duty], slew-limited (up fast, down slow); once the input is above the setpoint and
  rising, the duty never goes down. The commanded duty then holds still through changes
  smaller than ``write_deadband_ratio`` and moves by a smaller step only after
  ``min_dwell_seconds`` (gpuwatchd.control.hold): fans that step every few seconds are what a
  person hears.
- ``failsafe``: entered at once when an input is stale past its limit, a GPU is lost, an
  input reaches the ceiling, or the driver reports failing writes or an unreachable BMC; the
  controller then hands the fans back to the BMC. It is left only after
  ``failsafe_hold_seconds`` of good data, re-entering control at ``max_duty`` (bumpless).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, replace

from gpuwatchd.config import ZoneConfig
from gpuwatchd.config.selectors import GpuSelector, Selector
from gpuwatchd.control.hold import Hold
from gpuwatchd.control.pid import Pid, PidGains, PidTerms
from gpuwatchd.control.selectors import InputValue, resolve
from gpuwatchd.control.state import FailsafeReason, ZoneMode
from gpuwatchd.control.tuning import TunedGains
from gpuwatchd.model import GpuReading, Snapshot

STALE_AFTER_INTERVALS = 1.5  # default stale limit: failsafe within 2 intervals of a loss
GUESS_SPAN_CELSIUS = 20.0  # see ZoneController.guess_duty


@dataclass(frozen=True)
class Fault:
    """Why a zone cannot be controlled now: a failsafe reason and a sentence."""

    reason: FailsafeReason
    detail: str


@dataclass(frozen=True)
class Assessment:
    """A zone's inputs on one tick: the hottest good one, and the fault if there is one."""

    inputs: tuple[InputValue, ...]
    controlling: InputValue | None
    fault: Fault | None
    power_watts: float | None = None  # the highest power of the zone's GPUs (feed-forward)


@dataclass(frozen=True)
class ZoneStep:
    """What a zone decided on one tick."""

    mode: ZoneMode
    reason: str  # why it is in this mode ("" in control)
    duty: float | None  # the duty this zone asks for (None: not commanding)
    terms: PidTerms | None
    controlling: InputValue | None
    entered: ZoneMode | None = None  # failsafe or control when the mode changed this tick
    fault: Fault | None = None  # in failsafe: the fault that sent the zone there


def assess(inputs: list[InputValue], stale_after: float, ceiling: float) -> Assessment:
    """The zone's verdict on its inputs (ceiling first, then lost GPUs, then stale data)."""
    values = [i for i in inputs if i.celsius is not None and not i.lost]
    controlling = max(values, key=lambda i: i.celsius or 0.0) if values else None
    fault = None
    hot = [i for i in values if (i.celsius or 0.0) >= ceiling]
    lost = [i for i in inputs if i.lost]
    stale = [i for i in inputs if not i.lost and (i.celsius is None or i.age_seconds > stale_after)]
    if hot:
        fault = Fault(FailsafeReason.CEILING, f"{hot[0].id} at {hot[0].celsius:.0f} C reached "
                                              f"the ceiling {ceiling:g} C")
    elif lost:
        fault = Fault(FailsafeReason.GPU_LOST, f"{lost[0].id} lost: {lost[0].error}")
    elif not inputs:
        fault = Fault(FailsafeReason.STALE_INPUT, "no input: nothing matches the zone's selectors")
    elif stale:
        age = stale[0].age_seconds
        why = stale[0].error if stale[0].celsius is None else \
            f"data {age:.1f} s old (limit {stale_after:g} s)"
        fault = Fault(FailsafeReason.STALE_INPUT, f"{stale[0].id}: {why}")
    return Assessment(tuple(inputs), controlling, fault)


class ZoneController:
    """One zone's state; the controller calls :meth:`observe` then :meth:`step` each tick."""

    def __init__(self, cfg: ZoneConfig, interval_seconds: float, floor_duty: float = 0.0,
                 tuned: TunedGains | None = None) -> None:
        self.cfg = cfg
        self.tuned = tuned  # gains from the zone's step test (gpuwatchctl tune), else None
        self.name = cfg.name
        self._interval = interval_seconds
        self.floor_duty = floor_duty  # calibrated lowest duty that keeps every fan turning
        self.pid = Pid(_gains(cfg, tuned), cfg.setpoint_celsius, self.min_duty, cfg.max_duty)
        self.mode = ZoneMode.MONITOR
        self.reason = "starting"
        self.duty: float | None = None
        self._seen: set[Selector] = set()  # every input ever resolved
        self.last_fault: Fault | None = None  # what sent the zone to failsafe last
        self.entries: Counter[FailsafeReason] = Counter()  # failsafe entries since start
        self._good_since: float | None = None
        self._last_mono: float | None = None
        self._last_value: float | None = None
        self._hold = Hold()

    @property
    def min_duty(self) -> float:
        """The configured minimum, raised to the calibrated floor (never above max_duty)."""
        return min(self.cfg.max_duty, max(self.cfg.min_duty, self.floor_duty))

    @property
    def stale_after(self) -> float:
        return self.cfg.stale_after_seconds or STALE_AFTER_INTERVALS * self._interval

    def guess_duty(self, celsius: float) -> float:
        """A starting duty when the fans' present duty is unknown (a Dell reports rpm only):
        min_duty 20 C or more below the setpoint, rising linearly to max_duty at it. The
        PID takes over from there; a hot GPU starts with full airflow."""
        span = (celsius - (self.cfg.setpoint_celsius - GUESS_SPAN_CELSIUS)) / GUESS_SPAN_CELSIUS
        return self.min_duty + (self.cfg.max_duty - self.min_duty) * min(1.0, max(0.0, span))

    def observe(self, snapshot: Snapshot, now_mono: float) -> Assessment:
        """Resolve and judge the inputs; an input seen before and now missing is lost."""
        inputs = resolve(self.cfg.inputs, snapshot, now_mono, self.cfg.margin_reference_celsius)
        sources = {i.source for i in inputs}
        for gone in sorted(self._seen - sources, key=lambda s: s.text):
            inputs.append(InputValue(gone, None, math.inf, lost=isinstance(gone, GpuSelector),
                                     error="no longer reported"))
        self._seen |= sources
        a = assess(inputs, self.stale_after, self.cfg.ceiling_celsius)
        return replace(a, power_watts=gpu_power(inputs, snapshot))

    def reconfigure(self, cfg: ZoneConfig) -> None:
        """A reloaded zone config: same inputs kept, new gains/setpoint/limits bumpless."""
        self.cfg = cfg
        self.pid.retune(_gains(cfg, self.tuned), cfg.setpoint_celsius, self.min_duty, cfg.max_duty)

    def ready_to_leave(self, a: Assessment, now_mono: float,
                       driver_fault: Fault | None = None) -> bool:
        """False while this zone is in failsafe and would stay there on this tick."""
        if self.mode is not ZoneMode.FAILSAFE:
            return True
        return (a.fault is None and driver_fault is None and self._good_since is not None
                and now_mono - self._good_since >= self.cfg.failsafe_hold_seconds)

    def step(self, a: Assessment, now_mono: float, *, blocked: str = "",
             driver_fault: Fault | None = None, entry_duty: float | None = None,
             leave_ok: bool = True) -> ZoneStep:
        """Advance the state machine one tick; ``blocked`` forces monitor mode (and why).

        ``leave_ok`` False keeps a recovered zone in failsafe (zones sharing a BMC leave
        failsafe together, when every one of them has recovered).
        """
        fault = a.fault or driver_fault
        if blocked:
            return self._monitor(a, blocked)
        if self.mode is ZoneMode.CONTROL:
            if fault is not None:
                return self._failsafe(a, fault, entering=True)
            return self._control(a, now_mono)
        if fault is not None:
            if self.mode is ZoneMode.FAILSAFE:
                return self._failsafe(a, fault, entering=False)
            return self._monitor(a, f"waiting for good inputs: {fault.detail}")
        if self.mode is ZoneMode.FAILSAFE:
            self._good_since = now_mono if self._good_since is None else self._good_since
            held = now_mono - self._good_since
            if held < self.cfg.failsafe_hold_seconds or not leave_ok:
                self.reason = (f"recovering: good data for {held:.0f} of "
                               f"{self.cfg.failsafe_hold_seconds:g} s")
                if held >= self.cfg.failsafe_hold_seconds:
                    self.reason = "recovered: waiting for the other zones on this BMC"
                return ZoneStep(ZoneMode.FAILSAFE, self.reason, None, None, a.controlling,
                                fault=self.last_fault)
            entry_duty = self.cfg.max_duty  # back from a fault: start from full and slew down
        return self._enter_control(a, now_mono, entry_duty)

    def _monitor(self, a: Assessment, reason: str) -> ZoneStep:
        self.mode, self.reason, self.duty = ZoneMode.MONITOR, reason, None
        self._good_since = None
        return ZoneStep(ZoneMode.MONITOR, reason, None, None, a.controlling)

    def _failsafe(self, a: Assessment, fault: Fault, entering: bool) -> ZoneStep:
        self.mode, self.duty = ZoneMode.FAILSAFE, None
        self.reason = f"{fault.reason}: {fault.detail}"
        self.last_fault = fault
        self._good_since = None
        if entering:
            self.entries[fault.reason] += 1
        return ZoneStep(ZoneMode.FAILSAFE, self.reason, None, None, a.controlling,
                        ZoneMode.FAILSAFE if entering else None, fault)

    def _enter_control(self, a: Assessment, now_mono: float,
                       entry_duty: float | None) -> ZoneStep:
        assert a.controlling is not None and a.controlling.celsius is not None  # noqa: S101
        start = self.guess_duty(a.controlling.celsius) if entry_duty is None else entry_duty
        start = min(self.cfg.max_duty, max(self.min_duty, start))
        self.pid.reset(a.controlling.celsius, start, a.power_watts)
        self._hold.reset(start, now_mono)
        self.mode, self.reason, self.duty = ZoneMode.CONTROL, "", start
        self._good_since = None
        self._last_mono, self._last_value = now_mono, a.controlling.celsius
        return ZoneStep(ZoneMode.CONTROL, "", start, self.pid.terms, a.controlling,
                        ZoneMode.CONTROL)

    def _control(self, a: Assessment, now_mono: float) -> ZoneStep:
        assert a.controlling is not None and a.controlling.celsius is not None  # noqa: S101
        assert self.duty is not None  # noqa: S101 - set on entering control
        value = a.controlling.celsius
        dt = now_mono - self._last_mono if self._last_mono is not None else self._interval
        terms = self.pid.update(value, dt, a.power_watts)
        rising = self._last_value is not None and value > self._last_value
        shaped = self._hold.shaped if self._hold.shaped is not None else self.duty
        retreat = rising and value > self.cfg.setpoint_celsius
        duty = self._limit(terms.output, shaped, dt, retreat)
        self.pid.applied(duty)  # anti-windup sees the limits, not the dead band's hold
        wanted = self._hold.step(duty, now_mono, self.cfg.write_deadband_ratio,
                                 self.cfg.min_dwell_seconds)
        duty = self._hold.moved(self._limit(wanted, self.duty, dt, retreat))
        self.duty = duty
        self._last_mono, self._last_value = now_mono, value
        return ZoneStep(ZoneMode.CONTROL, "", duty, self.pid.terms, a.controlling)


    def _limit(self, raw: float, previous: float, dt: float, retreat: bool) -> float:
        return limit(raw, previous, dt, low=self.min_duty, high=self.cfg.max_duty,
                     up_per_second=self.cfg.slew_up_per_second,
                     down_per_second=self.cfg.slew_down_per_second, hold=retreat)


def limit(raw: float, previous: float, dt: float, *, low: float, high: float,
          up_per_second: float, down_per_second: float, hold: bool = False) -> float:
    """The duty after slew limits, the no-retreat rule (``hold``) and [low, high]."""
    duty = min(raw, previous + up_per_second * max(dt, 0.0))
    duty = max(duty, previous - down_per_second * max(dt, 0.0))
    if hold:
        duty = max(duty, previous)
    return min(high, max(low, duty))


def gpu_power(inputs: list[InputValue], snapshot: Snapshot) -> float | None:
    """The highest power drawn by a GPU among the zone's GPU inputs (W; None: none reports
    one): the heat the zone's fans must carry away, seen before it heats the die."""
    indices = {i.source.index for i in inputs if isinstance(i.source, GpuSelector)}
    watts = [g.power_watts for g in snapshot.readings(GpuReading)
             if g.index in indices and g.power_watts is not None]
    return max(watts) if watts else None


def _gains(cfg: ZoneConfig, tuned: TunedGains | None = None) -> PidGains:
    """The config's gains, or the step test's kp/ki/kd where the zone was tuned (the rest,
    the filters, dead bands and feed-forward, always the config's)."""
    kp, ki, kd = (tuned.kp, tuned.ki, tuned.kd) if tuned else (cfg.kp, cfg.ki, cfg.kd)
    return PidGains(kp, ki, kd, cfg.derivative_filter_seconds,
                    window_seconds=cfg.derivative_window_seconds,
                    error_deadband_celsius=cfg.error_deadband_celsius,
                    feedforward_per_watt=cfg.feedforward_duty_per_watt,
                    feedforward_filter_seconds=cfg.feedforward_filter_seconds)
