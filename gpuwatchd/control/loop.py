"""The fan controller the daemon runs: zones -> combined duties -> driver, safely.

Each tick (:meth:`FanController.step`, on the daemon's loop thread, after the collectors):

1. the driver is connected on the first tick (it may open a BMC session and ask who made it;
   gpuwatchd.control.supervisor);
2. every zone judges its inputs and steps its state machine (gpuwatchd.control.zones);
   zones sharing a BMC go to failsafe together and leave it together;
3. in failsafe the fans are handed to the BMC (retried every tick until it answers); in
   control the zones' duties are combined per fan channel by max and written when they
   change, and re-asserted with manual mode every ``reassert_seconds``;
4. a BMC found back in automatic mode (read back, or from fan speeds) is logged, counted and
   re-asserted; a BMC whose fan sensors do not report (a cold reset) gets no writes.

Manual control is never taken before the hand-back record is on disk
(gpuwatchd.control.handback: what gpuwatchctl failsafe needs after a crash, whatever the
config file says by then). Who has the fans is one state (gpuwatchd.control.ownership).
Every driver call runs on the actuator thread under ``write_deadline_seconds``
(gpuwatchd.control.actuator). A missing reply is retried on the next tick;
``write_failures_to_failsafe`` failures in a row are a driver fault (``bmc_unreachable``
for missing replies, ``writes_failing`` for refusals: gpuwatchd.control.health).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from gpuwatchd.clock import Clock
from gpuwatchd.config import BmcConfig, Config, FanControlConfig
from gpuwatchd.config.fan_drivers import Channel, settings_of
from gpuwatchd.control import calibrate, handback, tuning
from gpuwatchd.control.actuator import Actuator, Call, DriverCalls
from gpuwatchd.control.calibrate import Calibration
from gpuwatchd.control.factory import Built, bmc_of, make_driver
from gpuwatchd.control.health import CallHealth
from gpuwatchd.control.output import Output
from gpuwatchd.control.ownership import Event, FanOwnership
from gpuwatchd.control.plan import (
    channel_problems,
    combine,
    driver_fault,
    entry_duty,
    fan_rpm,
    plan_zones,
    zone_reading,
)
from gpuwatchd.control.revert import RpmWatch
from gpuwatchd.control.state import ControlReading, FanControlReading, ZoneMode
from gpuwatchd.control.supervisor import DriverSupervisor
from gpuwatchd.control.zones import ZoneController, ZoneStep
from gpuwatchd.errors import GpuwatchdError, Refused, Unsupported
from gpuwatchd.hardware import Hardware
from gpuwatchd.model import Snapshot

log = logging.getLogger(__name__)
T = TypeVar("T")
RELEASE_DEADLINE_SECONDS = 10.0


@dataclass(frozen=True)
class Wiring:
    """What a reload cannot change in place (a change rebuilds the controller)."""

    bmc: BmcConfig | None
    interval_seconds: float

    @staticmethod
    def of(config: Config) -> Wiring:
        return Wiring(bmc_of(config), config.interval_seconds)


class FanController:
    """Implements the daemon's ControlLoop protocol (step, release, regulating)."""

    def __init__(self, config: Config, make: Callable[[], Built], clock: Clock,
                 calibration: Calibration | None = None,
                 tuned: dict[str, tuning.TunedGains] | None = None) -> None:
        self._fc: FanControlConfig = config.fan_control
        self._config = config  # what the hand-back record is made of (gpuwatchd.control.handback)
        self._record = handback.Keeper()  # the hand-back record, once written
        self._wiring = Wiring.of(config)
        self.target: str = self._fc.bmc or self._fc.driver
        floor = calibration.floor_duty if calibration is not None else 0.0
        self.zones = [ZoneController(z, config.interval_seconds, floor, (tuned or {}).get(z.name))
                      for z in self._fc.zones]
        self._watch = RpmWatch(calibration.curve() if calibration is not None else ())
        actuator = Actuator(self.target, min(self._fc.write_deadline_seconds,
                                             config.interval_seconds))
        self._supervisor = DriverSupervisor(make, actuator, self._vet, self._fc.driver)
        self._owner = FanOwnership()
        self._health = CallHealth(self.target, self._fc.write_failures_to_failsafe)
        self._out = Output()
        self._steps: list[ZoneStep] = []

    @property
    def driver_name(self) -> str:
        """The driver's name: the config's until connected (``auto``), then its own."""
        return self._supervisor.driver_name

    @property
    def ownership(self) -> FanOwnership:
        return self._owner

    # -- the daemon's ControlLoop protocol ---------------------------------------------------
    def step(self, snapshot: Snapshot) -> ControlReading:
        now = snapshot.taken_mono
        driver = self._supervisor.ensure(now)
        fault = self._health.fault or driver_fault(snapshot, self.target, driver is not None)
        self._steps = plan_zones(self.zones, snapshot, now, blocked=self._supervisor.message,
                                 fault=fault, entry=entry_duty(snapshot, self.target,
                                                               self._watch))
        self._log_entries()
        if driver is not None:
            self._actuate(driver, snapshot, now)
        return self._readings()

    def release(self) -> None:
        """Hand the fans back for good (every exit path); then close the driver's link."""
        driver = self._supervisor.detach(RELEASE_DEADLINE_SECONDS)
        try:
            if driver is not None and self._owner.release_at_exit:
                driver.release_on_exit(RELEASE_DEADLINE_SECONDS)
                self._owner = self._owner.after(Event.HANDED_BACK)
                log.info("fans handed back to %s's automatic control", self.target)
                self._record.remove()
        finally:
            if driver is not None:
                driver.close()
            self._supervisor.actuator.close()

    def reconfigure(self, config: Config) -> bool:
        """Apply a reloaded config in place when only tunables changed (setpoints, gains,
        limits, timings): no hand-back, no bump. False: rebuild from scratch."""
        fc, old = config.fan_control, self._fc
        same = ((fc.driver, fc.bmc, settings_of(fc), fc.state_directory)
                == (old.driver, old.bmc, settings_of(old), old.state_directory)
                and Wiring.of(config) == self._wiring
                and [(z.name, z.inputs, z.fans) for z in fc.zones]
                == [(z.cfg.name, z.cfg.inputs, z.cfg.fans) for z in self.zones])
        if not same:
            return False
        self._fc, self._config = fc, config
        self._record.path = None  # written again, from the new config, before the next take
        self._health.failures_to_failsafe = fc.write_failures_to_failsafe
        for zone, cfg in zip(self.zones, fc.zones, strict=True):
            zone.reconfigure(cfg)
        log.info("fan control reconfigured in place (%d zone(s))", len(self.zones))
        return True

    def regulating(self) -> bool:
        """False while the fans may be left in manual mode with nobody able to write them:
        manual control held (or not yet handed back) and the last driver calls failing."""
        failing = self._health.failures > 0
        if self._supervisor.actuator.busy and failing:
            return False
        return not (failing and not self._owner.handed_back)

    # -- driver calls ----------------------------------------------------------------------
    def _vet(self, driver: DriverCalls) -> list[str]:
        return channel_problems(self.zones, driver.name, driver.channels())

    def _call(self, fn: Callable[[], T], call: Call) -> tuple[bool, T | None]:
        """One driver call; failures are counted and may become a driver fault."""
        try:
            value = fn()
        except GpuwatchdError as exc:
            self._health.failed(exc, call)
            return False, None
        self._health.succeeded(call)
        return True, value

    def _hand_back(self, fn: Callable[[], None], call: Call) -> None:
        ok, _ = self._call(fn, call)
        if ok:
            self._owner = self._owner.after(Event.HANDED_BACK)

    # -- actuation -------------------------------------------------------------------------
    def _actuate(self, driver: DriverCalls, snapshot: Snapshot, now: float) -> None:
        modes = {st.mode for st in self._steps}
        if ZoneMode.FAILSAFE in modes:
            self._watch.reset()
            if not self._owner.handed_back or self._health.fault is not None:
                self._hand_back(driver.failsafe, Call.FAILSAFE)
            return
        if ZoneMode.CONTROL not in modes:
            if self._owner.manual:
                self._hand_back(driver.release, Call.RELEASE)
            return
        self._control(driver, snapshot, now)

    def _control(self, driver: DriverCalls, snapshot: Snapshot, now: float) -> None:
        duties = combine(self.zones, self._steps, driver.channels())
        out = self._out
        reassert = now - out.last_assert_mono >= self._fc.reassert_seconds
        if self._owner.manual and (now >= out.next_check_mono or reassert):
            # also just before a re-assert: a revert it corrects is still seen and counted
            out.next_check_mono = now + self._fc.mode_check_seconds
            ok, held = self._call(driver.in_control, Call.MODE_CHECK)
            if ok and held is False:
                self._reverted("it reports automatic fan mode")
        if self._owner.manual and self._watch.observe(now, _mean(duties),
                                                      fan_rpm(snapshot, self.target)):
            self._reverted("the fans do not turn at the speed the duty gives")
        if (not self._owner.manual or reassert) and not self._take_control(driver, now):
            return
        if out.changed(duties) or reassert:
            ok, written = self._call(lambda: driver.write(duties), Call.DUTY_WRITE)
            if ok:
                out.wrote(duties, now, written)

    def _take_control(self, driver: DriverCalls, now: float) -> bool:
        """Manual mode; a refusal (``0xd4``, ``0xc1``, no permission) is final: monitor.
        Never without the hand-back record on disk first (gpuwatchctl failsafe needs it
        after a crash, whatever the config file says by then)."""
        if not self._recorded(driver):
            return False
        try:
            driver.take_control()
        except (Refused, Unsupported) as exc:
            self._health.failed(exc, Call.MANUAL_MODE)
            self._health.clear()  # a fact, not a failing BMC: monitor mode
            self._supervisor.block(str(exc))
            return False
        except GpuwatchdError as exc:
            self._health.failed(exc, Call.MANUAL_MODE)
            return False
        self._health.clear()
        self._owner = self._owner.after(Event.TOOK_CONTROL)
        self._out.forget()
        self._out.last_assert_mono = now
        return True

    def _recorded(self, driver: DriverCalls) -> bool:
        """The record on disk: written before every take (not before a mere re-assert)."""
        if self._owner.manual and self._record.path is not None:
            return True
        problem = self._record.write(self._config, driver.name, self.target)
        if problem:
            self._supervisor.block(problem)
        return not problem

    def _reverted(self, how: str) -> None:
        self._out.reverts += 1
        self._owner = self._owner.after(Event.REVERTED)
        self._watch.reset()
        log.warning("%s went back to automatic fan control behind gpuwatchd's back (%s); "
                    "re-asserting manual control", self.target, how)

    # -- readings -----------------------------------------------------------------------------
    def _log_entries(self) -> None:
        for zone, st in zip(self.zones, self._steps, strict=True):
            if st.entered is ZoneMode.FAILSAFE:
                log.warning("fan zone %s: failsafe (%s); fans handed back to the BMC",
                            zone.name, st.reason, extra={"ZONE": zone.name})
            elif st.entered is ZoneMode.CONTROL:
                log.info("fan zone %s: regulating %s to %g C", zone.name,
                         st.controlling.id if st.controlling else "?",
                         zone.cfg.setpoint_celsius, extra={"ZONE": zone.name})

    def _readings(self) -> ControlReading:
        zones = [zone_reading(z, st) for z, st in zip(self.zones, self._steps, strict=True)]
        message = self._supervisor.message
        fault = self._health.fault
        if not message and fault is not None:
            message = f"{fault.reason}: {fault.detail}"
        control = FanControlReading(
            driver=self.driver_name, target=self.target, manual=self._owner.manual,
            message=message,
            channels=tuple(sorted((str(ch), d) for ch, d in self._out.written.items())),
            writes=self._out.writes, write_errors=tuple(sorted(self._health.errors.items())),
            reverts=self._out.reverts, ownership=self._owner.owner,
            regulating=self._owner.manual and all(st.mode is ZoneMode.CONTROL
                                                  for st in self._steps))
        return ControlReading(tuple(zones), control)


def build(config: Config, hw: Hardware) -> FanController | None:
    """The controller the config asks for (None for ``driver: none`` or no zones).

    Nothing touches hardware here: the driver is made on the first tick. The calibration
    (``gpuwatchctl calibrate``) of the BMC or device, if stored, raises every zone's floor.
    """
    fc = config.fan_control
    if fc.driver == "none" or not fc.zones:
        return None
    target = fc.bmc or fc.driver
    calibration = None
    if fc.driver != "auto":
        calibration = calibrate.load(fc.state_directory, target, fc.driver)
    if calibration is not None:
        log.info("fan calibration of %s: floor %.0f %% (%s)", target,
                 calibration.floor_duty * 100, calibrate.path_for(fc.state_directory, target))
    tuned = tuning.load_gains(fc.state_directory, [z.name for z in fc.zones])
    return FanController(config, lambda: make_driver(config, hw), hw.clock, calibration, tuned)


def _mean(duties: dict[Channel, float]) -> float | None:
    return sum(duties.values()) / len(duties) if duties else None
