"""Immutable readings and the Snapshot: plain data, no I/O.

Data flows one way: collectors produce a :class:`Collected` (typed readings for the controller
and the status server, plus metric :class:`Family` objects for the exporter), the daemon wraps
each one in a :class:`CollectorResult` and publishes a :class:`Snapshot` once per tick. Readers
(exporter, status server, controller) only ever see a whole Snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, TypeVar

Labels = tuple[tuple[str, str], ...]
Kind = Literal["gauge", "counter"]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Sample:
    """One series of a family: its labels (ordered pairs) and value."""

    labels: Labels
    value: float


@dataclass(frozen=True, slots=True)
class Family:
    """A metric family as plain data. Counter names end in ``_total``."""

    name: str
    kind: Kind
    help: str
    samples: tuple[Sample, ...]


class FamilyBuilder:
    """Accumulates samples per metric name, then freezes them into :class:`Family` objects.

    Metric names, types and help texts are declared once in a catalogue (a dict of name ->
    (kind, help)) so a typo in a collector fails at the first sample, not in a dashboard.
    """

    def __init__(self, catalogue: dict[str, tuple[Kind, str]]) -> None:
        self._catalogue = catalogue
        self._samples: dict[str, list[Sample]] = {}

    def add(self, name: str, value: float | int | bool | None, /, **labels: str | int) -> None:
        """Add one sample; ``None`` means unsupported and adds nothing (absent, never 0)."""
        if value is None:
            return
        if name not in self._catalogue:
            raise KeyError(f"metric {name!r} is not in the catalogue")
        pairs = tuple((key, str(val)) for key, val in labels.items())
        self._samples.setdefault(name, []).append(Sample(pairs, float(value)))

    def extend(self, other: FamilyBuilder) -> None:
        """Append every sample of ``other`` (e.g. cached slow-tier readings)."""
        for name, samples in other._samples.items():
            self._samples.setdefault(name, []).extend(samples)

    def build(self) -> tuple[Family, ...]:
        """The families in catalogue order; names with no sample are left out."""
        out = []
        for name, (kind, help_text) in self._catalogue.items():
            samples = self._samples.get(name)
            if samples:
                out.append(Family(name, kind, help_text, tuple(samples)))
        return tuple(out)


@dataclass(frozen=True, slots=True)
class Collected:
    """What one collect() returns: typed readings and their metric families."""

    readings: tuple[object, ...] = ()
    families: tuple[Family, ...] = ()


@dataclass(frozen=True, slots=True)
class GpuReading:
    """The GPU values the controller and the status table use (the exporter has the rest).

    Temperatures in degrees Celsius, power in watts; ``None`` = unsupported or not read.
    """

    index: int
    uuid: str
    name: str
    up: bool
    temperature_celsius: float | None = None
    margin_celsius: float | None = None
    slowdown_celsius: float | None = None
    shutdown_celsius: float | None = None
    power_watts: float | None = None
    power_limit_watts: float | None = None
    fan_ratios: tuple[float, ...] = ()
    error: str = ""


@dataclass(frozen=True, slots=True)
class NvmlReading:
    """Whether NVML answers, and the driver it reports (for status and health)."""

    up: bool
    driver_version: str = ""
    error: str = ""


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


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the daemon knows after one tick; replaced whole, never mutated."""

    seq: int
    taken_wall: float
    taken_mono: float
    results: tuple[CollectorResult, ...] = ()
    extra: tuple[object, ...] = ()  # readings produced by the daemon itself (e.g. fan zones)

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
        out.extend(r for r in self.extra if isinstance(r, kind))
        return tuple(out)


EMPTY_SNAPSHOT = Snapshot(seq=0, taken_wall=0.0, taken_mono=0.0)


# -- chassis telemetry (BMC over IPMI or Redfish) ------------------------------------------------
# One record per value: the chassis collectors (gpuwatchd.collectors.chassis_ipmi,
# chassis_redfish) make these readings once; the metric families are rendered from them
# (gpuwatchd.collectors.chassis_metrics), the status document and fan control read them.
# Sensor names are the BMC's own (SDR ID string, Redfish Name), made unique per BMC in a stable,
# documented way (gpuwatchd.collectors.chassis_common.unique_names), so that a fan-control zone
# can name one as an input: "bmc:<bmc>:<sensor>" (ChassisTemperature.input_id).
SensorState = Literal["ok", "warning", "critical", "no_reading"]
SENSOR_STATES: tuple[SensorState, ...] = ("ok", "warning", "critical", "no_reading")
ThresholdName = Literal["lower_non_critical", "lower_critical", "lower_non_recoverable",
                        "upper_non_critical", "upper_critical", "upper_non_recoverable"]
THRESHOLD_NAMES: tuple[ThresholdName, ...] = (
    "lower_non_critical", "lower_critical", "lower_non_recoverable",
    "upper_non_critical", "upper_critical", "upper_non_recoverable")
# A sensor's thresholds in the sensor's unit, in the order the BMC lists them (IPMI: Get Sensor
# Thresholds bit order; Redfish: the schema's property order), which is the exposition's order.
Thresholds = tuple[tuple[ThresholdName, float], ...]


def threshold(thresholds: Thresholds, name: ThresholdName) -> float | None:
    """One threshold's value, or None where the BMC has not set it."""
    return next((value for key, value in thresholds if key == name), None)


@dataclass(frozen=True, slots=True)
class BmcIdentity:
    """Who made the BMC and its firmware (IPMI Get Device ID, Redfish ServiceRoot/Manager)."""

    vendor: str
    firmware: str


@dataclass(frozen=True, slots=True)
class ChassisPower:
    """Whole-chassis power draw of one chassis (IPMI: "system")."""

    chassis: str
    watts: float  # DCMI Get Power Reading / Redfish PowerConsumedWatts or PowerWatts


@dataclass(frozen=True, slots=True)
class BmcLinkCounters:
    """A BMC link's counters since start, for the self-health series."""

    requests: int = 0
    sessions_opened: int = 0
    errors: tuple[tuple[str, int], ...] = ()  # (kind of failure, count), sorted by kind
    sdr_reads: int | None = None  # IPMI only


@dataclass(frozen=True, slots=True)
class BmcReading:
    """One BMC: reachable or not, who made it, and the chassis power it reports.

    ``identity`` is None until the BMC has told it (never answered yet).
    """

    bmc: str
    protocol: str  # ipmi | redfish
    up: bool
    identity: BmcIdentity | None = None
    power: tuple[ChassisPower, ...] = ()
    error: str = ""
    counters: BmcLinkCounters = field(default_factory=BmcLinkCounters)

    @property
    def vendor(self) -> str:
        return self.identity.vendor if self.identity is not None else ""

    @property
    def firmware(self) -> str:
        return self.identity.firmware if self.identity is not None else ""

    @property
    def power_watts(self) -> float | None:
        """The first chassis' power draw (the whole server on a single-chassis BMC)."""
        return self.power[0].watts if self.power else None


@dataclass(frozen=True, slots=True)
class FanReading:
    """One chassis fan (rotor); rpm or duty ratio, whichever the BMC reports."""

    bmc: str
    name: str
    rpm: float | None
    ratio: float | None = None
    state: SensorState = "ok"
    thresholds_rpm: Thresholds = ()

    @property
    def lower_threshold_rpm(self) -> float | None:
        """The highest lower threshold (the one a slowing fan meets first; never below 0),
        None where the BMC sets none: what ``gpuwatchctl calibrate`` keeps clear of."""
        lower = [value for key, value in self.thresholds_rpm if key.startswith("lower")]
        return max(0.0, *lower) if lower else None


@dataclass(frozen=True, slots=True)
class ChassisTemperature:
    """One BMC temperature sensor (inlet, exhaust, CPU, ...); usable as a fan-control input."""

    bmc: str
    name: str
    celsius: float | None
    state: SensorState = "ok"
    thresholds_celsius: Thresholds = ()

    @property
    def upper_critical_celsius(self) -> float | None:
        return threshold(self.thresholds_celsius, "upper_critical")

    @property
    def input_id(self) -> str:
        """How a fan-control zone names this sensor: ``bmc:<bmc>:<sensor>``."""
        return f"bmc:{self.bmc}:{self.name}"


@dataclass(frozen=True, slots=True)
class ChassisVoltage:
    """One BMC voltage sensor (12V, 3.3V, CPU VCORE, ...)."""

    bmc: str
    name: str
    volts: float | None
    state: SensorState = "ok"
    thresholds_volts: Thresholds = ()


@dataclass(frozen=True, slots=True)
class ChassisCurrent:
    """One BMC current sensor."""

    bmc: str
    name: str
    amperes: float | None
    state: SensorState = "ok"
    thresholds_amperes: Thresholds = ()


@dataclass(frozen=True, slots=True)
class ChassisPowerSensor:
    """One BMC power sensor in watts (a PSU's input, a CPU's package power, ...)."""

    bmc: str
    name: str
    watts: float | None
    state: SensorState = "ok"
    thresholds_watts: Thresholds = ()


ChassisSensor = (FanReading | ChassisTemperature | ChassisVoltage | ChassisCurrent
                 | ChassisPowerSensor)


@dataclass(frozen=True, slots=True)
class PsuReading:
    """One power supply: present, failed, AC lost, and its watts where reported."""

    bmc: str
    name: str
    present: bool
    failed: bool = False
    predictive_failure: bool = False
    ac_lost: bool = False
    input_watts: float | None = None
    output_watts: float | None = None
    capacity_watts: float | None = None

    @property
    def up(self) -> bool:
        """Present, not failed, input not lost."""
        return self.present and not self.failed and not self.ac_lost


@dataclass(frozen=True, slots=True)
class FanRedundancy:
    """One fan redundancy group: fully redundant or not."""

    bmc: str
    group: str
    redundant: bool


@dataclass(frozen=True, slots=True)
class LicenceReading:
    """One GPU's vGPU software licence as the licence collector judged it (guest side).

    ``state`` is a :class:`gpuwatchd.licence.kinds.LicenceState` value (``licensed``,
    ``unlicensed_grace``, ...), ``severity`` ``ok``/``warning``/``critical``; timestamps are
    epoch seconds, ``None`` where they do not apply.
    """

    index: int
    uuid: str
    mode: str
    state: str
    severity: str
    product: str = ""
    feature: str = ""
    expiry_status: str = ""
    expiry_timestamp_seconds: float | None = None
    unlicensed_since_timestamp_seconds: float | None = None
    last_renewal_timestamp_seconds: float | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class VgpuInstanceLicenceReading:
    """One vGPU instance's licence on a host (``nvidia-smi vgpu -q``: License Status)."""

    gpu_index: int
    gpu_uuid: str
    vgpu_uuid: str
    vm_id: str
    vgpu_type: str
    state: str  # a HostLicenceState label: licensed, unlicensed_restricted, ...
    expiry_timestamp_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class LicenceNodeReading:
    """Node-level licence facts: nvidia-gridd, its config and token, the clock."""

    applicable: bool  # some GPU's licence is held by this OS
    gridd_state: str = "unknown"  # active, inactive, failed, not_found, unknown, ...
    token_summary: str = ""  # "1 token (0744)", "2 tokens", "no token"
    problems: tuple[str, ...] = ()  # NodeProblem values
    severity: str = "ok"
    messages: tuple[str, ...] = ()
    time_synchronized: bool | None = None
    last_event: str = ""  # latest gridd journal event kind
    remediation_enabled: bool = False
    remediation_restarts: int = 0


# -- mainboard telemetry (Linux hwmon sysfs: gpuwatchd.collectors.hwmon) -----------------------
# ``chip`` is the chip's ``name`` (nct6798, k10temp, amdgpu), with ``@<device>`` appended where
# two chips share a name (gpuwatchd.links.hwmon names chips for the collector and the fan driver
# alike); sensors are named by the chip's ``*_label`` or the file stem (temp1, fan2). The metric
# families are rendered from these readings (gpuwatchd.collectors.hwmon_metrics).


@dataclass(frozen=True, slots=True)
class HwmonChip:
    """One hwmon chip: its labels, and the reads that failed since the collector started."""

    chip: str
    name: str
    device: str = ""  # basename of the ``device`` link (nct6775.656, 0000:03:00.0)
    kind: Literal["gpu", "other"] = "other"  # gpu: amdgpu, nouveau, radeon, i915, xe
    read_errors: int = 0


@dataclass(frozen=True, slots=True)
class HwmonTemperature:
    """One hwmon temperature (``tempN_input``); usable as a fan-control input later."""

    chip: str
    name: str
    celsius: float | None
    max_celsius: float | None = None
    crit_celsius: float | None = None


@dataclass(frozen=True, slots=True)
class HwmonFan:
    """One hwmon fan tachometer (``fanN_input``); ``rpm`` None: the read failed."""

    chip: str
    name: str
    rpm: float | None
    min_rpm: float | None = None


@dataclass(frozen=True, slots=True)
class HwmonPwm:
    """One hwmon PWM output: duty as a ratio of 255 and its ``pwmN_enable`` mode."""

    chip: str
    name: str  # pwm1, pwm2 (the hwmon fan driver's channels are "<chip>/pwmN")
    ratio: float | None
    mode: int | None = None  # 0 full speed, 1 manual, 2+ the chip's automatic modes
