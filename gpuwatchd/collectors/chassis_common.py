"""What the two chassis collectors share: the neutral chassis data, stable sensor names, the
metric catalogue, and rendering into families and typed readings.

chassis_ipmi.py and chassis_redfish.py each turn their protocol into a :class:`ChassisData`;
:func:`render` turns that into the same metrics and the same readings
(:class:`gpuwatchd.model.FanReading`, ``ChassisTemperature``, ``PsuReading``, ``BmcReading``),
so a dashboard, an alert and a fan-control input do not care which protocol a BMC speaks.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from gpuwatchd.model import (
    BmcReading,
    ChassisTemperature,
    Collected,
    FamilyBuilder,
    FanReading,
    Kind,
    PsuReading,
    SensorState,
)

if TYPE_CHECKING:
    from gpuwatchd.config import BmcConfig, Config

DEADLINE_MARGIN_SECONDS = 0.5  # a tick may take one command timeout plus this
TIMEOUT_MARGIN_SECONDS = 0.3  # a timed-out command ends this long before the deadline

STATES: tuple[SensorState, ...] = ("ok", "warning", "critical", "no_reading")
B = "gpuwatchd_"

CATALOGUE: dict[str, tuple[Kind, str]] = {
    B + "bmc_up": ("gauge", "1 if the BMC answered on this tick, else 0."),
    B + "bmc_info": ("gauge", "The BMC's vendor and firmware and the protocol used; always 1."),
    B + "fan_speed_rpm": ("gauge", "Chassis fan (rotor) speed in revolutions per minute."),
    B + "fan_speed_ratio": ("gauge", "Chassis fan speed as a ratio of full speed (0-1), where "
                                     "the BMC reports percent."),
    B + "fan_speed_threshold_rpm": ("gauge", "A BMC threshold of a fan's speed."),
    B + "temperature_celsius": ("gauge", "A BMC temperature sensor (inlet, exhaust, CPU, ...)."),
    B + "temperature_threshold_celsius": ("gauge", "A BMC threshold of a temperature sensor."),
    B + "voltage_volts": ("gauge", "A BMC voltage sensor."),
    B + "voltage_threshold_volts": ("gauge", "A BMC threshold of a voltage sensor."),
    B + "current_amperes": ("gauge", "A BMC current sensor."),
    B + "power_sensor_watts": ("gauge", "A BMC power sensor (watts)."),
    B + "bmc_sensor_state": ("gauge", "1 for the sensor's state as the BMC reports it (ok, "
                                      "warning, critical, no_reading), 0 for the others."),
    B + "psu_up": ("gauge", "1 if the power supply is present, has input power and has not "
                            "failed, else 0."),
    B + "psu_state": ("gauge", "Power supply conditions: present, failed, predictive_failure, "
                               "ac_lost (1 = asserted)."),
    B + "psu_power_watts": ("gauge", "Power supply input or output power."),
    B + "psu_capacity_watts": ("gauge", "Power supply rated output capacity."),
    B + "chassis_power_watts": ("gauge", "Whole-chassis power draw as the BMC measures it "
                                         "(DCMI Get Power Reading or Redfish)."),
    B + "fan_redundancy_ok": ("gauge", "1 if the fan redundancy group is fully redundant."),
    B + "bmc_requests_total": ("counter", "Requests sent to the BMC (IPMI commands or HTTP "
                                          "requests)."),
    B + "bmc_errors_total": ("counter", "Failed BMC requests, by kind of failure."),
    B + "bmc_sessions_opened_total": ("counter", "Sessions opened to the BMC (a rise means "
                                                 "re-logins: BMC reboots or expiry)."),
    B + "bmc_sdr_reads_total": ("counter", "Full reads of the IPMI SDR repository."),
}

_KIND_METRIC = {"temperature": ("temperature_celsius", "temperature_threshold_celsius", "sensor"),
                "fan": ("fan_speed_rpm", "fan_speed_threshold_rpm", "fan"),
                "voltage": ("voltage_volts", "voltage_threshold_volts", "sensor"),
                "current": ("current_amperes", "", "sensor"),
                "power": ("power_sensor_watts", "", "sensor")}


@dataclass(frozen=True)
class Sensor:
    """One numeric sensor in base units (celsius, rpm, volts, amperes, watts)."""

    name: str
    kind: str  # temperature | fan | voltage | current | power
    value: float | None
    state: SensorState = "ok"
    thresholds: tuple[tuple[str, float], ...] = ()
    ratio: float | None = None  # a fan reported in percent, as 0-1


@dataclass(frozen=True)
class Psu:
    """One power supply."""

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
        return self.present and not self.failed and not self.ac_lost

    @property
    def state(self) -> SensorState:
        if self.failed or self.ac_lost:
            return "critical"
        return "warning" if self.predictive_failure or not self.present else "ok"


@dataclass(frozen=True)
class ChassisData:
    """Everything one tick read from one BMC."""

    sensors: tuple[Sensor, ...] = ()
    psus: tuple[Psu, ...] = ()
    power: tuple[tuple[str, float], ...] = ()  # (chassis, watts)
    redundancy: tuple[tuple[str, bool], ...] = ()  # (group, fully redundant)


@dataclass(frozen=True)
class LinkStats:
    """A link's counters, for the self-health series."""

    requests: int = 0
    sessions_opened: int = 0
    errors: tuple[tuple[str, int], ...] = ()
    sdr_reads: int | None = None


def cadence(config: Config, bmc: BmcConfig) -> tuple[float, float, BmcConfig]:
    """(interval, deadline, bmc with its effective per-request timeout) for one BMC.

    The deadline is the interval, or one request timeout plus a margin if shorter. The
    per-request timeout is capped just under the deadline, so a tick whose BMC stopped
    answering still ends in time and reports ``gpuwatchd_bmc_up 0`` itself, instead of
    being cut off by the runner while its last good data ages.
    """
    interval = bmc.interval_seconds or config.interval_seconds
    deadline = min(interval, bmc.timeout_seconds + DEADLINE_MARGIN_SECONDS)
    timeout = min(bmc.timeout_seconds, max(0.1, deadline - TIMEOUT_MARGIN_SECONDS))
    return interval, deadline, replace(bmc, timeout_seconds=timeout)


def unique_names(items: Sequence[tuple[str, str]]) -> list[str]:
    """Stable unique names from (name, qualifier) pairs, in order.

    A name the BMC uses once is kept as it is ("Exhaust Temp"). A name used more than once
    (Dell calls both CPU sensors "Temp") gets its qualifier appended ("Temp 3.1",
    "Temp 3.2": IPMI entity id.instance; for Redfish the chassis or member id); should that
    still collide, " #2", " #3" in order. Names depend only on the BMC's own inventory, so
    they are the same on every start and usable as ``bmc:<bmc>:<sensor>`` inputs.
    """
    counts = Counter(name for name, _ in items)
    out: list[str] = []
    seen: Counter[str] = Counter()
    for name, qualifier in items:
        candidate = name if counts[name] == 1 else f"{name} {qualifier}".strip()
        seen[candidate] += 1
        out.append(candidate if seen[candidate] == 1 else f"{candidate} #{seen[candidate]}")
    return out


def render(bmc: str, protocol: str, identity: tuple[str, str] | None, data: ChassisData | None,
           *, stats: LinkStats, error: str = "") -> Collected:
    """Families and readings for one BMC; ``data`` None means the BMC did not answer."""
    b = FamilyBuilder(CATALOGUE)
    b.add(B + "bmc_up", data is not None, bmc=bmc)
    if identity is not None:
        b.add(B + "bmc_info", 1, bmc=bmc, vendor=identity[0], firmware=identity[1],
              protocol=protocol)
    _add_stats(b, bmc, stats)
    readings: list[object] = []
    if data is not None:
        _add_sensors(b, bmc, data.sensors)
        _add_psus(b, bmc, data.psus)
        for chassis, watts in data.power:
            b.add(B + "chassis_power_watts", watts, bmc=bmc, chassis=chassis)
        for group, ok in data.redundancy:
            b.add(B + "fan_redundancy_ok", ok, bmc=bmc, group=group)
        readings.extend(_readings(bmc, data))
    vendor, firmware = identity or ("", "")
    power = data.power[0][1] if data is not None and data.power else None
    readings.insert(0, BmcReading(bmc, protocol, data is not None, vendor, firmware, power,
                                  error))
    return Collected(readings=tuple(readings), families=b.build())


def _add_stats(b: FamilyBuilder, bmc: str, stats: LinkStats) -> None:
    b.add(B + "bmc_requests_total", stats.requests, bmc=bmc)
    b.add(B + "bmc_sessions_opened_total", stats.sessions_opened, bmc=bmc)
    for error, count in stats.errors:
        b.add(B + "bmc_errors_total", count, bmc=bmc, error=error)
    b.add(B + "bmc_sdr_reads_total", stats.sdr_reads, bmc=bmc)


def _add_sensors(b: FamilyBuilder, bmc: str, sensors: Iterable[Sensor]) -> None:
    for s in sensors:
        value_name, threshold_name, label = _KIND_METRIC[s.kind]
        b.add(B + value_name, s.value, bmc=bmc, **{label: s.name})
        if s.kind == "fan":
            b.add(B + "fan_speed_ratio", s.ratio, bmc=bmc, fan=s.name)
        if threshold_name:
            for threshold, value in s.thresholds:
                b.add(B + threshold_name, value, bmc=bmc, **{label: s.name},
                      threshold=threshold)
        for state in STATES:
            b.add(B + "bmc_sensor_state", s.state == state, bmc=bmc, sensor=s.name,
                  kind=s.kind, state=state)


def _add_psus(b: FamilyBuilder, bmc: str, psus: Iterable[Psu]) -> None:
    for p in psus:
        b.add(B + "psu_up", p.up, bmc=bmc, psu=p.name)
        for state, value in (("present", p.present), ("failed", p.failed),
                             ("predictive_failure", p.predictive_failure),
                             ("ac_lost", p.ac_lost)):
            b.add(B + "psu_state", value, bmc=bmc, psu=p.name, state=state)
        b.add(B + "psu_power_watts", p.input_watts, bmc=bmc, psu=p.name, direction="input")
        b.add(B + "psu_power_watts", p.output_watts, bmc=bmc, psu=p.name, direction="output")
        b.add(B + "psu_capacity_watts", p.capacity_watts, bmc=bmc, psu=p.name)


def _readings(bmc: str, data: ChassisData) -> list[object]:
    out: list[object] = []
    for s in data.sensors:
        if s.kind == "fan":
            out.append(FanReading(bmc, s.name, s.value, s.ratio, s.state))
        elif s.kind == "temperature":
            critical = dict(s.thresholds).get("upper_critical")
            out.append(ChassisTemperature(bmc, s.name, s.value, s.state, critical))
    out.extend(PsuReading(bmc, p.name, p.present, p.up, p.failed, p.ac_lost,
                          p.predictive_failure, p.input_watts, p.output_watts, p.capacity_watts)
               for p in data.psus)
    return out
