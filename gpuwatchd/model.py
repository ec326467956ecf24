"""Immutable readings and the Snapshot: plain data, no I/O.

Data flows one way: collectors produce a :class:`Collected` (typed readings for the controller
and the status server, plus metric :class:`Family` objects for the exporter), the daemon wraps
each one in a :class:`CollectorResult` and publishes a :class:`Snapshot` once per tick. Readers
(exporter, status server, controller) only ever see a whole Snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, TypeVar, get_args

from gpuwatchd.compat import StrEnum

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
class GpuClocks:
    """One value per NVML clock domain (``NVML_CLOCK_GRAPHICS/SM/MEM/VIDEO``), in hertz."""

    graphics_hertz: float | None = None
    sm_hertz: float | None = None
    memory_hertz: float | None = None
    video_hertz: float | None = None


@dataclass(frozen=True, slots=True)
class GpuIdentity:
    """What ``nvidia-smi --query-gpu=serial,vbios_version,pci.bus_id`` shows ('' = unknown)."""

    serial: str = ""
    vbios_version: str = ""
    pci_bus_id: str = ""


@dataclass(frozen=True, slots=True)
class GpuStatic:
    """Thresholds and maxima, read at discovery and after each re-init."""

    shutdown_celsius: float | None = None
    slowdown_celsius: float | None = None
    memory_max_celsius: float | None = None
    gpu_max_celsius: float | None = None
    max_clocks: GpuClocks = GpuClocks()
    pcie_max_generation: int | None = None
    pcie_max_width: int | None = None
    fan_count: int = 0
    supported_clock_events: int | None = None  # nvmlClocksEventReason* bits; None: unknown


@dataclass(frozen=True, slots=True)
class GpuFast:
    """The fast tier, read every tick. ``fan_speed_ratios[n]`` is fan n (None: no reading)."""

    temperature_celsius: float | None = None
    memory_temperature_celsius: float | None = None  # HBM; absent on GDDR cards (P40)
    margin_celsius: float | None = None
    power_watts: float | None = None
    energy_joules_total: float | None = None
    clocks: GpuClocks = GpuClocks()
    clock_events: int | None = None  # active nvmlClocksEventReason* bits
    pstate: int | None = None
    fan_speed_ratios: tuple[float | None, ...] = ()
    # How old the temperature is at this read: 0 for a fresh reading, else the age of the
    # last plausible one held in place of an implausible reading (gpuwatchd.collectors.
    # gpu_read); fan control adds it to the input's age, so its stale rule applies on time.
    temperature_held_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class GpuEnergy:
    """A GPU's energy as gpuwatchd accounted it (gpuwatchd.collectors.gpu_energy): from the
    GPU's energy counter where it has one, else integrated from its power draw over the
    sample interval (``estimated``: a P40 has no counter). Today and this month follow the
    host's local calendar; the price (``energy.price_per_kwh``) is the config's, None unset."""

    index: int
    uuid: str
    joules_total: float  # since gpuwatchd started
    today_joules: float
    month_joules: float
    estimated: bool
    price_per_kwh: float | None = None
    currency: str = ""


@dataclass(frozen=True, slots=True)
class GpuViolations:
    """Time clocks were held down, by NVML_PERF_POLICY_* reason, in seconds since boot."""

    power_seconds: float | None = None
    thermal_seconds: float | None = None
    sync_boost_seconds: float | None = None
    board_limit_seconds: float | None = None
    low_utilization_seconds: float | None = None
    reliability_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class MigInstance:
    """One MIG device (a compute instance inside a GPU instance) of a MIG-enabled GPU.

    Read in the slow tier from the MIG device handle (``nvmlDeviceGetMigDeviceHandleByIndex``);
    nvidia-smi: ``nvidia-smi mig -lgi`` / ``-lci`` and ``nvidia-smi -L``. ``profile`` is the
    nvidia-smi name (``3g.40gb``; ``1c.3g.40gb`` for a compute instance smaller than its GPU
    instance). Memory belongs to the GPU instance: compute instances of one GPU instance
    report the same memory. The placement needs ``nvmlDeviceGetGpuInstanceById``, which NVML
    allows only to a privileged user: None where it was refused. Utilisation, power,
    temperature and clocks are not per instance (NVML has them for the parent GPU only).
    """

    gpu_instance: int
    compute_instance: int
    uuid: str
    profile: str = ""
    slices: int | None = None  # GPU instance slices (of 7 on A100/H100)
    compute_slices: int | None = None
    multiprocessors: int | None = None
    memory_total_bytes: int | None = None
    memory_used_bytes: int | None = None
    memory_free_bytes: int | None = None
    placement_start: int | None = None
    placement_size: int | None = None


@dataclass(frozen=True, slots=True)
class GpuSlow:
    """The slow tier, read every ``gpus.slow_interval_seconds``."""

    power_limit_enforced_watts: float | None = None
    power_limit_current_watts: float | None = None
    power_limit_default_watts: float | None = None
    power_limit_min_watts: float | None = None
    power_limit_max_watts: float | None = None
    utilization_gpu_ratio: float | None = None
    utilization_memory_ratio: float | None = None
    utilization_encoder_ratio: float | None = None
    utilization_decoder_ratio: float | None = None
    memory_used_bytes: int | None = None
    memory_free_bytes: int | None = None
    ecc_corrected_errors_total: int | None = None
    ecc_uncorrected_errors_total: int | None = None
    remapped_correctable_rows: int | None = None  # the four remap values come together
    remapped_uncorrectable_rows: int | None = None
    remap_pending: bool | None = None
    remap_failed: bool | None = None
    pcie_generation: int | None = None
    pcie_width: int | None = None
    pcie_replays_total: int | None = None
    violations: GpuViolations = GpuViolations()
    persistence_mode: int | None = None
    mig_mode_current: bool | None = None  # None: not a MIG-capable GPU (NOT_SUPPORTED)
    mig_mode_pending: bool | None = None  # differs from current until the GPU is reset
    mig_instances: tuple[MigInstance, ...] = ()


@dataclass(frozen=True, slots=True)
class GpuReading:
    """One GPU as the GPU collector read it: the single record of its values.

    The exporter's families (``gpuwatchd.collectors.gpu_metrics``), the status table and the
    fan controller's inputs are all derived from it. ``identity`` and ``static`` are from the
    last discovery (None: never read); ``fast`` and ``slow`` are None while the GPU is down.
    Temperatures in degrees Celsius, power in watts; ``None`` = unsupported or not read.
    """

    index: int
    uuid: str
    name: str
    up: bool
    error: str = ""
    identity: GpuIdentity | None = None
    static: GpuStatic | None = None
    fast: GpuFast | None = None
    slow: GpuSlow | None = None
    implausible_readings_total: int = 0

    @property
    def temperature_celsius(self) -> float | None:
        return self.fast.temperature_celsius if self.fast is not None else None

    @property
    def temperature_held_seconds(self) -> float:
        return self.fast.temperature_held_seconds if self.fast is not None else 0.0

    @property
    def margin_celsius(self) -> float | None:
        return self.fast.margin_celsius if self.fast is not None else None

    @property
    def power_watts(self) -> float | None:
        return self.fast.power_watts if self.fast is not None else None

    @property
    def fan_ratios(self) -> tuple[float, ...]:
        """The fans that answered, in fan order."""
        fans = self.fast.fan_speed_ratios if self.fast is not None else ()
        return tuple(r for r in fans if r is not None)

    @property
    def slowdown_celsius(self) -> float | None:
        return self.static.slowdown_celsius if self.static is not None else None

    @property
    def shutdown_celsius(self) -> float | None:
        return self.static.shutdown_celsius if self.static is not None else None

    @property
    def power_limit_watts(self) -> float | None:
        """The enforced power limit."""
        return self.slow.power_limit_enforced_watts if self.slow is not None else None

    @property
    def mig_instances(self) -> tuple[MigInstance, ...]:
        """The MIG devices of the last slow read (empty: MIG off or not supported)."""
        return self.slow.mig_instances if self.slow is not None else ()


@dataclass(frozen=True, slots=True)
class NvmlErrorCount:
    """Failed NVML calls of one kind since the session was made (all NVML users together)."""

    call: str
    error: str  # the NVML return code's name: not_supported, gpu_is_lost, ...
    count: int


@dataclass(frozen=True, slots=True)
class XidCount:
    """XID events of one code on one GPU (``gpu`` -1, ``uuid`` 'unknown': an unmatched handle)."""

    gpu: int
    uuid: str
    xid: int
    count: int
    last_timestamp_seconds: float


@dataclass(frozen=True, slots=True)
class NvmlReading:
    """Whether NVML answers, the driver it reports, its error counts and the XID counts."""

    up: bool
    driver_version: str = ""
    error: str = ""
    cuda_driver_version: str = ""
    errors: tuple[NvmlErrorCount, ...] = ()
    xids: tuple[XidCount, ...] = ()


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
class PsuRedundancy:
    """One power supply redundancy group (IPMI "PS Redundancy", Redfish
    ``Power.Redundancy[]``/``PowerSubsystem.PowerSupplyRedundancy[]``): fully redundant or not."""

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
class FileTemperature:
    """A fan-control input read from a file another program writes (``file:<path>``,
    gpuwatchd.collectors.file_inputs): the hottest of its lines, e.g. the ESXi host's
    ``nvidia-smi --query-gpu=temperature.gpu --format=csv,noheader,nounits`` fetched over SSH.
    ``age_at_read_seconds``: how old the file was when read (its mtime), so a writer that
    stopped makes the input stale even while the file stays readable."""

    path: str
    celsius: float | None
    age_at_read_seconds: float
    error: str = ""


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
