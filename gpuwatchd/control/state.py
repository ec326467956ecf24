"""What the fan controller publishes with each Snapshot (``Snapshot.extra``): plain data.

The status server turns these into the ``fan_control`` section of ``gpuwatchctl status``; the
exporter gets the matching metric families from the :class:`gpuwatchd.model.Collected` the
controller publishes next to them (gpuwatchd.control.metrics).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ZoneReading:
    """One fan zone on one tick."""

    zone: str
    mode: str  # monitor | control | failsafe
    reason: str  # why it is in this mode ("" in control)
    setpoint_celsius: float
    ceiling_celsius: float
    input_id: str  # the hottest input ("" when none has a value)
    input_celsius: float | None
    duty: float | None  # the duty this zone asks for (None when not commanding)
    min_duty: float
    max_duty: float
    p: float | None = None
    i: float | None = None
    d: float | None = None
    failsafe_entries: tuple[tuple[str, int], ...] = ()  # (reason, count) since start


@dataclass(frozen=True, slots=True)
class FanControlReading:
    """The driver's side: what is written where, and how that went."""

    driver: str
    target: str  # the BMC's name, "nvml" or "hwmon"
    manual: bool  # gpuwatchd holds manual control now
    message: str  # why it does not regulate ("" when it does)
    channels: tuple[tuple[str, float], ...] = ()  # the duty last written per channel
    writes: int = 0
    write_errors: tuple[tuple[str, int], ...] = ()  # (kind, count)
    reverts: int = 0
    regulating: bool = False
