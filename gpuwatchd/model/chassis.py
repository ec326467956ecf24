"""Chassis readings from the BMC (IPMI or Redfish), thresholds included."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

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
class ChassisEnergy:
    """A chassis' energy as gpuwatchd accounted it (gpuwatchd.collectors.chassis_energy): its
    power reading (ChassisPower) integrated over the sample interval, so always an estimate.
    Today and this month follow the host's local calendar; the price (``energy.price_per_kwh``)
    is the config's, None unset."""

    bmc: str
    chassis: str
    joules_total: float  # since gpuwatchd started
    today_joules: float
    month_joules: float
    price_per_kwh: float | None = None
    currency: str = ""


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
