"""Fan calibration: step the duty down, record rpm, find the lowest safe duty (the floor).

``gpuwatchctl calibrate`` runs :func:`run` with the daemon stopped: it takes manual control,
sets every fan to each duty of a descending ladder, waits ``settle_seconds``, reads every fan
and its lower thresholds from the BMC (``ipmitool sensor``), and stops at the first duty where
a fan is at or below ``(1 + margin)`` x its highest lower threshold (or stopped): going lower
would make a Supermicro BMC force the zone to 100 % (smfc#33, #37) and a Dell report a fan
failure (R730: 600 rpm non-critical, 360 rpm critical). The floor is the lowest duty that
kept every fan clear of that; the BMC's automatic control is restored at the end, whatever
happened.

A rotor that reads nothing, 0 rpm or at or below its lower threshold at 100 % has failed (the
C4130 of the first user has one): it is named in the result, reported, and left out of the
floor search, which goes on for the healthy fans. No healthy fan, or no duty below 100 % that
keeps them clear, is no floor (:attr:`Calibration.floor_found` False; ``gpuwatchctl
calibrate`` then exits 1 and stores nothing). ``watch`` is asked after every step: a reason
(a GPU past its setpoint or the ceiling while the fans step down) aborts the calibration
(:class:`CalibrationAborted`) with the fans handed back to the BMC. The result is stored as
JSON in ``fan_control.state_directory``
(``calibration-<bmc>.json``); the daemon raises every zone's ``min_duty`` to the floor and
checks fan speeds against the measured curve (gpuwatchd.control.revert).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gpuwatchd.config.files import MAX_STATE_BYTES, FileRefused, read_regular
from gpuwatchd.control.drivers import Driver
from gpuwatchd.control.statefile import write_durably
from gpuwatchd.errors import GpuwatchdError
from gpuwatchd.model import FanReading

log = logging.getLogger(__name__)

LADDER = (1.0, 0.8, 0.6, 0.5, 0.4, 0.3, 0.25, 0.2, 0.15, 0.1, 0.05)
SCHEMA = 1


@dataclass(frozen=True)
class Calibration:
    """What a calibration found; ``points`` are (duty, mean rpm, slowest fan's rpm)."""

    target: str
    driver: str
    created_wall: float
    points: tuple[tuple[float, float, float], ...]
    floor_duty: float
    lower_threshold_rpm: float | None
    failed_fans: tuple[str, ...] = ()  # rotors dead at 100 %: left out of the floor search

    @property
    def floor_found(self) -> bool:
        """A duty below 100 % kept every healthy fan clear (False: nothing to store)."""
        return self.floor_duty < 1.0

    def curve(self) -> list[tuple[float, float]]:
        """(duty, mean rpm), ascending: the expectation for revert detection."""
        return sorted((duty, mean) for duty, mean, _ in self.points)


def safe(samples: Sequence[FanReading], margin: float) -> tuple[bool, str]:
    """Whether every fan turns clear of its lower thresholds (the highest of them, carried by
    the chassis collector's reading); else which one does not."""
    if not samples:
        return False, "no fan reports a speed"
    for s in samples:
        if s.rpm is None or s.rpm <= 0:
            return False, f"{s.name} stopped or not reporting"
        if s.lower_threshold_rpm is not None and s.rpm <= s.lower_threshold_rpm * (1 + margin):
            return False, (f"{s.name} at {s.rpm:.0f} rpm is within {margin:.0%} of its lower "
                           f"threshold {s.lower_threshold_rpm:.0f} rpm")
    return True, ""


class CalibrationAborted(GpuwatchdError):
    """The calibration stopped early (a GPU too hot); the fans were handed back."""


def dead(samples: Sequence[FanReading]) -> tuple[str, ...]:
    """The rotors that have failed at full duty: no speed, 0 rpm, or at or below their
    lower threshold (a fan that cannot clear it at 100 % never will)."""
    return tuple(s.name for s in samples
                 if s.rpm is None or s.rpm <= 0
                 or (s.lower_threshold_rpm is not None and s.rpm <= s.lower_threshold_rpm))


def run(driver: Driver, read_fans: Callable[[], Sequence[FanReading]],
        sleep: Callable[[float], None], wall: Callable[[], float], *,
        ladder: Sequence[float] = LADDER, settle_seconds: float = 15.0, margin: float = 0.2,
        report: Callable[[str], None] = log.info,
        watch: Callable[[], str | None] = lambda: None) -> Calibration:
    """Step the ladder; always hand the fans back to the BMC at the end."""
    points: list[tuple[float, float, float]] = []
    floor = 1.0
    lowest_threshold: float | None = None
    failed: tuple[str, ...] | None = None
    driver.take_control()
    try:
        for duty in sorted(ladder, reverse=True):
            driver.write(dict.fromkeys(driver.channels(), duty))
            sleep(settle_seconds)
            hot = watch()
            if hot:
                report(f"duty {duty:4.0%}: aborted: {hot}")
                raise CalibrationAborted(f"aborted at {duty:.0%}: {hot}")
            samples = list(read_fans())
            if failed is None:
                failed = dead(samples)
                for name in failed:
                    report(f"{name}: failed (no speed or below its lower threshold at "
                           f"{duty:.0%}): left out of the floor search")
            samples = [s for s in samples if s.name not in failed]
            rpms = [s.rpm for s in samples if s.rpm is not None]
            thresholds = [s.lower_threshold_rpm for s in samples
                          if s.lower_threshold_rpm is not None]
            if thresholds:
                lowest_threshold = max(thresholds)
            ok, why = safe(samples, margin)
            if rpms:
                points.append((duty, sum(rpms) / len(rpms), min(rpms)))
            report(f"duty {duty:4.0%}: " + (f"mean {sum(rpms) / len(rpms):6.0f} rpm, slowest "
                                            f"{min(rpms):6.0f} rpm" if rpms else "no fan speed")
                   + ("" if ok else f"  <- {why}"))
            if not ok:
                break
            floor = duty
    finally:
        driver.release()
    return Calibration(driver.target, driver.name, wall(), tuple(points), floor,
                       lowest_threshold, failed or ())


def path_for(directory: str, target: str) -> str:
    safe_name = "".join(c if c.isalnum() or c in "-_." else "_" for c in target)
    return os.path.join(directory, f"calibration-{safe_name}.json")


def save(cal: Calibration, directory: str) -> str:
    """Write atomically and durably (gpuwatchd.control.statefile); returns the path."""
    os.makedirs(directory, mode=0o755, exist_ok=True)
    path = path_for(directory, cal.target)
    doc = {"schema": SCHEMA, "target": cal.target, "driver": cal.driver,
           "created_wall": cal.created_wall, "floor_duty": cal.floor_duty,
           "lower_threshold_rpm": cal.lower_threshold_rpm, "failed_fans": list(cal.failed_fans),
           "points": [list(p) for p in cal.points]}
    write_durably(path, json.dumps(doc, indent=2) + "\n", mode=0o644)
    return path


def load(directory: str, target: str, driver: str) -> Calibration | None:
    """The stored calibration for ``target``; None (and a warning) if absent or unusable."""
    path = path_for(directory, target)
    try:
        doc = json.loads(read_regular(path, MAX_STATE_BYTES))
    except FileRefused as exc:
        if not exc.missing:
            log.warning("ignoring the fan calibration %s", exc)
        return None
    except ValueError as exc:
        log.warning("ignoring the fan calibration %s: %s", path, exc)
        return None
    try:
        if doc["schema"] != SCHEMA or doc["driver"] != driver:
            log.warning("ignoring the fan calibration %s: made for driver %s, schema %s",
                        path, doc.get("driver"), doc.get("schema"))
            return None
        points = tuple((float(d), float(m), float(s)) for d, m, s in doc["points"])
        floor = min(1.0, max(0.0, float(doc["floor_duty"])))
        lower = doc.get("lower_threshold_rpm")
        failed = tuple(str(n) for n in doc.get("failed_fans", ()))
        return Calibration(str(doc["target"]), driver, float(doc["created_wall"]), points,
                           floor, None if lower is None else float(lower), failed)
    except (KeyError, TypeError, ValueError) as exc:
        log.warning("ignoring the fan calibration %s: %s", path, exc)
        return None
