"""The fan controller the daemon runs: zones -> combined duties -> driver, safely.

Each tick (:meth:`FanController.step`, on the daemon's loop thread, after the collectors):

1. the driver is built on the first tick (it may open a BMC session and ask who made it);
2. every zone judges its inputs and steps its state machine (gpuwatchd.control.zones);
   zones sharing a BMC go to failsafe together and leave it together;
3. in failsafe the fans are handed to the BMC (retried every tick until it answers); in
   control the zones' duties are combined per fan channel by max and written when they
   change, and re-asserted with manual mode every ``reassert_seconds``;
4. a BMC found back in automatic mode (read back, or from fan speeds) is logged, counted and
   re-asserted; a BMC whose fan sensors do not report (a cold reset) gets no writes.

Every driver call runs on the actuator thread under ``write_deadline_seconds``. A missing
reply is retried on the next tick; ``write_failures_to_failsafe`` failures in a row are a
driver fault (``bmc_unreachable`` for missing replies, ``writes_failing`` for refusals).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from typing import TypeVar

from gpuwatchd.clock import Clock
from gpuwatchd.config import Config, FanControlConfig
from gpuwatchd.config.fan_drivers import Channel, settings_of
from gpuwatchd.control import calibrate
from gpuwatchd.control.actuator import Actuator, Job
from gpuwatchd.control.calibrate import Calibration
from gpuwatchd.control.drivers import Driver
from gpuwatchd.control.factory import Built, bmc_of, make_driver
from gpuwatchd.control.plan import (
    combine,
    driver_fault,
    entry_duty,
    fan_rpm,
    plan_zones,
    zone_reading,
)
from gpuwatchd.control.revert import RpmWatch
from gpuwatchd.control.state import ControlReading, FanControlReading
from gpuwatchd.control.zones import Fault, ZoneController, ZoneStep
from gpuwatchd.errors import GpuwatchdError, Refused, Transient, Unsupported
from gpuwatchd.hardware import Hardware
from gpuwatchd.model import Snapshot

log = logging.getLogger(__name__)
T = TypeVar("T")
FIRST_BUILD_BACKOFF_SECONDS = 5.0
MAX_BUILD_BACKOFF_SECONDS = 300.0
RELEASE_DEADLINE_SECONDS = 10.0


class FanController:
    """Implements the daemon's ControlLoop protocol (step, release, regulating)."""

    def __init__(self, config: Config, make: Callable[[], Built], clock: Clock,
                 calibration: Calibration | None = None) -> None:
        self._fc: FanControlConfig = config.fan_control
        self._bmc = bmc_of(config)
        self._interval = config.interval_seconds
        self._make = make
        self._clock = clock
        floor = calibration.floor_duty if calibration is not None else 0.0
        self.zones = [ZoneController(z, self._interval, floor) for z in self._fc.zones]
        self._watch = RpmWatch(calibration.curve() if calibration is not None else ())
        self.driver_name: str = self._fc.driver
        self.target: str = self._fc.bmc or self._fc.driver
        self._actuator = Actuator(self.target, min(self._fc.write_deadline_seconds,
                                                   self._interval))
        self._built: Built | None = None
        self._connecting: Job | None = None
        self._next_build, self._build_backoff = float("-inf"), FIRST_BUILD_BACKOFF_SECONDS
        self.blocked = ""  # why this controller only monitors (permanently)
        self._waiting = "starting"  # why there is no driver yet (retried)
        self.manual = False
        self._handed_back = True  # the BMC has its automatic control (as at start)
        self._ever_manual = False
        self._failures = 0
        self._fault: Fault | None = None
        self._written: dict[Channel, float] = {}
        self._last_write = float("-inf")
        self._next_check = float("-inf")
        self.writes, self.reverts = 0, 0
        self.errors: Counter[str] = Counter()
        self._entries = {z.name: Counter[str]() for z in self.zones}
        self._steps: list[ZoneStep] = []

    # -- the daemon's ControlLoop protocol ---------------------------------------------------
    def step(self, snapshot: Snapshot) -> ControlReading:
        now = snapshot.taken_mono
        self._ensure_driver(now)
        fault = self._fault or driver_fault(snapshot, self.target, self._built is not None)
        blocked = self.blocked or ("" if self._built is not None else self._waiting)
        self._steps = plan_zones(self.zones, snapshot, now, blocked=blocked, fault=fault,
                                 entry=entry_duty(snapshot, self.target, self._watch))
        for zone, st in zip(self.zones, self._steps, strict=True):
            if st.entered.startswith("failsafe:"):
                reason = st.entered.partition(":")[2]
                self._entries[zone.name][reason] += 1
                log.warning("fan zone %s: failsafe (%s); fans handed back to the BMC",
                            zone.name, st.reason, extra={"ZONE": zone.name})
            elif st.entered == "control":
                log.info("fan zone %s: regulating %s to %g C", zone.name,
                         st.controlling.id if st.controlling else "?",
                         zone.cfg.setpoint_celsius, extra={"ZONE": zone.name})
        self._actuate(snapshot, now)
        return self._readings()

    def release(self) -> None:
        """Hand the fans back for good (every exit path); then close the driver's link."""
        built, self._built = self._built, None
        if built is None and self._connecting is not None:  # a connect still under way
            self._actuator.drain(RELEASE_DEADLINE_SECONDS)
            if isinstance(self._connecting.value, Built):
                self._connecting.value.close()
        try:
            if built is not None and (self._ever_manual or not self._handed_back):
                self._actuator.drain(RELEASE_DEADLINE_SECONDS)
                self._actuator.call(built.driver.release, RELEASE_DEADLINE_SECONDS, "release")
                self.manual, self._handed_back = False, True
                log.info("fans handed back to %s's automatic control", self.target)
        finally:
            if built is not None:
                built.close()
            self._actuator.close()

    def reconfigure(self, config: Config) -> bool:
        """Apply a reloaded config in place when only tunables changed (setpoints, gains,
        limits, timings): no hand-back to the BMC, no bump. False: rebuild from scratch."""
        fc, old = config.fan_control, self._fc
        same = ((fc.driver, fc.bmc, settings_of(fc), fc.state_directory, bmc_of(config))
                == (old.driver, old.bmc, settings_of(old), old.state_directory, self._bmc)
                and config.interval_seconds == self._interval
                and [(z.name, z.inputs, z.fans) for z in fc.zones]
                == [(z.cfg.name, z.cfg.inputs, z.cfg.fans) for z in self.zones])
        if not same:
            return False
        self._fc = fc
        for zone, cfg in zip(self.zones, fc.zones, strict=True):
            zone.reconfigure(cfg)
        log.info("fan control reconfigured in place (%d zone(s))", len(self.zones))
        return True

    def regulating(self) -> bool:
        """False while the fans may be left in manual mode with nobody able to write them:
        manual control held (or not yet handed back) and the last driver calls failing."""
        if self._actuator.busy and self._failures > 0:
            return False
        return not (self._failures > 0 and (self.manual or not self._handed_back))

    # -- driver lifecycle ----------------------------------------------------------------------
    def _ensure_driver(self, now: float) -> None:
        """Make the driver on the actuator thread; a slow connect (session setup, cipher
        fallback) is picked up on a later tick rather than abandoned with a session open."""
        if self._built is not None or self.blocked or now < self._next_build:
            return
        if self._connecting is None:
            if self._actuator.busy:
                return
            self._connecting = self._actuator.submit(self._make, "connect")
        job = self._connecting
        if not job.done.wait(self._actuator.deadline_seconds):
            self._waiting = "connecting to the BMC (no answer yet)"
            return
        self._connecting = None
        if isinstance(job.error, (Unsupported, Refused)):
            self.blocked = str(job.error)
            log.error("fan control off, monitoring only: %s", job.error)
            return
        if job.error is not None:
            self._waiting = f"connecting: {job.error}"
            self._next_build = now + self._build_backoff
            self._build_backoff = min(self._build_backoff * 2, MAX_BUILD_BACKOFF_SECONDS)
            if isinstance(job.error, GpuwatchdError):
                log.warning("fan control: %s; retrying in %.0f s", job.error, self._build_backoff)
            else:
                log.error("fan control: making the driver failed; retrying in %.0f s",
                          self._build_backoff, exc_info=job.error)
            return
        built: Built = job.value
        known = set(built.driver.channels())
        for zone in self.zones:
            if zone.cfg.fans == "all":
                continue
            unknown = [str(ch) for ch in zone.cfg.channels if ch not in known]
            if unknown:
                self.blocked = (f"zone {zone.name}: {', '.join(unknown)} not among the "
                                f"{built.driver.name} channels "
                                f"({', '.join(sorted(map(str, known)))})")
                log.error("fan control off, monitoring only: %s", self.blocked)
        self._built = built
        self.driver_name = built.driver.name

    def _call(self, fn: Callable[[], T], what: str, now: float) -> tuple[bool, T | None]:
        """One driver call; failures are counted and may become a driver fault."""
        try:
            value = self._actuator.call(fn, what=what)
        except GpuwatchdError as exc:
            self._failed(exc, what)
            return False, None
        if self._failures:
            log.info("%s: %s answered again after %d failure(s)", self.target, what,
                     self._failures)
        self._failures, self._fault = 0, None
        return True, value

    def _failed(self, exc: GpuwatchdError, what: str) -> None:
        kind = ("deadline" if "within" in str(exc) or "still waiting" in str(exc) else
                "no_reply") if isinstance(exc, Transient) else \
            f"refused_0x{exc.code:02x}" if isinstance(exc, Refused) and exc.code is not None \
            else "unsupported" if isinstance(exc, Unsupported) else "refused"
        self.errors[kind] += 1
        self._failures += 1
        if self._failures in (1, self._fc.write_failures_to_failsafe):
            log.warning("%s: %s failed (%d in a row): %s", self.target, what, self._failures,
                        exc)
        if self._failures >= self._fc.write_failures_to_failsafe:
            reason = "bmc_unreachable" if isinstance(exc, Transient) else "writes_failing"
            self._fault = Fault(reason, f"{self._failures} {what} calls failed in a row: {exc}")

    # -- actuation -------------------------------------------------------------------------
    def _actuate(self, snapshot: Snapshot, now: float) -> None:
        built = self._built
        if built is None:
            return
        modes = {st.mode for st in self._steps}
        if "failsafe" in modes:
            self._watch.reset()
            if not self._handed_back or self._fault is not None:
                ok, _ = self._call(built.driver.failsafe, "failsafe", now)
                if ok:
                    self.manual, self._handed_back = False, True
            return
        if "control" not in modes:
            if self.manual:
                ok, _ = self._call(built.driver.release, "release", now)
                if ok:
                    self.manual, self._handed_back = False, True
            return
        self._control(built, snapshot, now)

    def _control(self, built: Built, snapshot: Snapshot, now: float) -> None:
        driver = built.driver
        duties = combine(self.zones, self._steps, driver.channels())
        reassert = now - self._last_write >= self._fc.reassert_seconds
        if self.manual and now >= self._next_check:
            self._next_check = now + self._fc.mode_check_seconds
            ok, held = self._call(driver.in_control, "mode check", now)
            if ok and held is False:
                self._reverted("it reports automatic fan mode")
        if self.manual and self._watch.observe(now, _mean(duties), fan_rpm(snapshot, self.target)):
            self._reverted("the fans do not turn at the speed the duty gives")
        if (not self.manual or reassert) and not self._take_control(driver, now):
            return
        changed = any(abs(duties[ch] - self._written.get(ch, -1.0)) >= 0.005 for ch in duties)
        if changed or reassert:
            ok, _ = self._call(lambda: driver.write(duties), "duty write", now)
            if ok:
                self._written, self._last_write = dict(duties), now
                self.writes += 1

    def _take_control(self, driver: Driver, now: float) -> bool:
        """Manual mode; a refusal (``0xd4``, ``0xc1``, no permission) is final: monitor."""
        try:
            self._actuator.call(driver.take_control, what="manual mode")
        except (Refused, Unsupported) as exc:
            self.blocked = str(exc)
            self._failed(exc, "manual mode")
            self._failures, self._fault = 0, None  # a fact, not a failing BMC: monitor mode
            log.error("fan control off, monitoring only: %s", exc)
            return False
        except GpuwatchdError as exc:
            self._failed(exc, "manual mode")
            return False
        self._failures, self._fault = 0, None
        self.manual, self._handed_back, self._ever_manual = True, False, True
        self._written = {}
        return True

    def _reverted(self, how: str) -> None:
        self.reverts += 1
        self.manual = False
        self._watch.reset()
        log.warning("%s went back to automatic fan control behind gpuwatchd's back (%s); "
                    "re-asserting manual control", self.target, how)

    # -- readings -----------------------------------------------------------------------------
    def _readings(self) -> ControlReading:
        zones = [zone_reading(z, st, self._entries[z.name])
                 for z, st in zip(self.zones, self._steps, strict=True)]
        message = self.blocked or ("" if self._built is not None else self._waiting)
        if not message and self._fault is not None:
            message = f"{self._fault.reason}: {self._fault.detail}"
        control = FanControlReading(
            driver=self.driver_name, target=self.target, manual=self.manual, message=message,
            channels=tuple(sorted((str(ch), d) for ch, d in self._written.items())),
            writes=self.writes,
            write_errors=tuple(sorted(self.errors.items())), reverts=self.reverts,
            regulating=self.manual and all(st.mode == "control" for st in self._steps))
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
    return FanController(config, lambda: make_driver(config, hw), hw.clock, calibration)


def _mean(duties: dict[Channel, float]) -> float | None:
    return sum(duties.values()) / len(duties) if duties else None
