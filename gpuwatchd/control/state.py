"""What the fan controller publishes with each Snapshot (``Snapshot.extra``): plain data.

The status server turns these into the ``fan_control`` section of ``gpuwatchctl status``; the
exporter gets the matching metric families from the :class:`gpuwatchd.model.Collected` the
controller publishes next to them (gpuwatchd.control.metrics).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from gpuwatchd.control.ownership import Ownership


class ZoneMode(StrEnum):
    """A fan zone's mode (gpuwatchd.control.zones); the ``mode`` label of
    gpuwatchd_fan_zone_mode."""

    MONITOR = "monitor"  # no writes
    CONTROL = "control"  # gpuwatchd regulates
    FAILSAFE = "failsafe"  # the fans are handed back to the BMC


class FailsafeReason(StrEnum):
    """Why a zone went to failsafe; the ``reason`` label of
    gpuwatchd_fan_zone_failsafe_entries_total (every one is exported, 0 until it happens)."""

    STALE_INPUT = "stale_input"  # an input older than its limit, or none matches
    GPU_LOST = "gpu_lost"  # a GPU fell off the bus or is no longer reported
    CEILING = "ceiling"  # an input reached the zone's ceiling
    WRITES_FAILING = "writes_failing"  # the BMC refuses the driver's calls
    BMC_UNREACHABLE = "bmc_unreachable"  # no answer, stale chassis data, fans not reporting


@dataclass(frozen=True, slots=True)
class ZoneReading:
    """One fan zone on one tick."""

    zone: str
    mode: ZoneMode
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
    failsafe_entries: tuple[tuple[FailsafeReason, int], ...] = ()  # (reason, count) since start


@dataclass(frozen=True, slots=True)
class FanControlReading:
    """The driver's side: what is written where, and how that went."""

    driver: str
    target: str  # the BMC's name, "nvml" or "hwmon"
    manual: bool  # gpuwatchd holds manual control now
    message: str  # why it does not regulate ("" when it does)
    # the duty last written per channel, as the BMC got it (a whole percent, as a ratio)
    channels: tuple[tuple[str, float], ...] = ()
    writes: int = 0
    write_errors: tuple[tuple[str, int], ...] = ()  # (kind, count)
    reverts: int = 0
    regulating: bool = False
    ownership: Ownership = Ownership.AUTO  # who has the fans (gpuwatchd.control.ownership)
