"""The Snapshot and what rides on it: collector results, the fan controller's record, health."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, TypeVar, get_args

from gpuwatchd.compat import StrEnum
from gpuwatchd.model.metrics import Collected

T = TypeVar("T")

@dataclass(frozen=True, slots=True)
class CollectorResult:
    """A collector's latest outcome, as the daemon recorded it.

    ``ok`` is the last attempt's outcome; ``collected`` is from the last *successful* attempt,
    stamped with ``updated_wall``/``updated_mono`` (0.0 when there has never been one), so a
    failed attempt leaves the last good data in place until it is older than
    ``stale_after_seconds``.
    """

    name: str
    ok: bool
    duration_seconds: float
    updated_wall: float
    updated_mono: float
    stale_after_seconds: float
    error: str = ""
    collected: Collected = field(default_factory=Collected)

    def age_seconds(self, now_mono: float) -> float:
        """Seconds since the last successful collect (infinite if there was none)."""
        if self.updated_mono <= 0.0:
            return float("inf")
        return max(0.0, now_mono - self.updated_mono)

    def is_stale(self, now_mono: float) -> bool:
        """True when the last good data is too old to be served or acted on."""
        return self.age_seconds(now_mono) > self.stale_after_seconds


# -- fan control (what the controller publishes with each Snapshot: plain data) ---------------
# The status server turns these into the ``fan_control`` section of ``gpuwatchctl status``; the
# exporter renders the matching metric families from them (gpuwatchd.control.metrics.render).
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


class Ownership(StrEnum):
    """The fans' owner as far as gpuwatchd knows (transitions: gpuwatchd.control.ownership)."""

    AUTO = "auto"  # the BMC's automatic control: as found at start, or handed back
    MANUAL = "manual"  # gpuwatchd holds manual control
    UNKNOWN = "unknown"  # not held and not handed back: the BMC left manual mode on its own


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
    f: float | None = None  # the feed-forward from the GPUs' power
    tuned: bool = False  # the gains come from the zone's step test (gpuwatchctl tune)
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


@dataclass(frozen=True, slots=True)
class ControlReading:
    """The fan controller's record of one tick (``FanController.step``): zones and driver;
    with several drivers (fan_control.drivers) the first is ``driver``, the rest ``others``,
    and ``zones`` holds every driver's zones in config order."""

    zones: tuple[ZoneReading, ...]
    driver: FanControlReading
    others: tuple[FanControlReading, ...] = ()

    @property
    def drivers(self) -> tuple[FanControlReading, ...]:
        """Every driver's record, in fan_control.drivers order."""
        return (self.driver, *self.others)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the daemon knows after one tick; replaced whole, never mutated."""

    seq: int
    taken_wall: float
    taken_mono: float
    results: tuple[CollectorResult, ...] = ()
    control: ControlReading | None = None  # the fan controller's tick (None: fan control off)
    # the hardware's conditions on this tick (gpuwatchd.health.conditions.evaluate)
    health: tuple[HealthCondition, ...] = ()

    def result(self, name: str) -> CollectorResult | None:
        """The result of the collector called ``name``, if it is registered."""
        for res in self.results:
            if res.name == name:
                return res
        return None

    def readings(self, kind: type[T]) -> tuple[T, ...]:
        """Every reading of the given type, across collectors, in registration order."""
        out: list[T] = []
        for res in self.results:
            out.extend(r for r in res.collected.readings if isinstance(r, kind))
        return tuple(out)


# -- hardware health (gpuwatchd.health): what is wrong with the server, not with gpuwatchd ------
# Made once per tick from the readings above by gpuwatchd.health.conditions.evaluate (pure),
# published with the Snapshot; the ``hardware`` status section and the journal events
# (gpuwatchd.health.events) both read them. The kinds are the names of the ``health.ignore``
# config key and of docs/events.md; each has an alert rule in monitoring/alerts.yaml.
ConditionKind = Literal[
    "psu_absent", "psu_failed", "psu_predictive_failure", "psu_redundancy_lost",
    "fan_failed", "fan_redundancy_lost", "sensor_critical", "sensor_no_reading",
    "sensor_warning", "gpu_lost", "gpu_xid", "gpu_ecc_uncorrected", "gpu_remap_failed",
    "gpu_remap_pending", "gpu_thermal_slowdown"]
CONDITION_KINDS: tuple[ConditionKind, ...] = get_args(ConditionKind)
Severity = Literal["info", "warning", "critical"]


@dataclass(frozen=True, slots=True)
class HealthCondition:
    """One thing wrong with the hardware, named by where it was seen.

    ``source`` says where in words (``BMC idrac PSU PS2``); ``bmc``/``sensor``/``gpu``
    are the same as structured fields ("" / None where they do not apply). ``counted``: it
    makes ``gpuwatchctl status`` exit 1 (False: listed in ``health.ignore``).
    """

    kind: ConditionKind
    severity: Severity
    source: str
    message: str
    bmc: str = ""
    sensor: str = ""
    gpu: int | None = None
    uuid: str = ""
    counted: bool = True


EMPTY_SNAPSHOT = Snapshot(seq=0, taken_wall=0.0, taken_mono=0.0)
