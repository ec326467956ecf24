"""Chassis collector over IPMI: fans, temperatures, voltages, PSUs and DCMI power of one BMC.

Per tick, on one persistent session: Get SDR Repository Info (``ipmitool sdr info``; the SDR
is read again only when its addition/erase timestamps or record count change), one Get Sensor
Reading per sensor (``ipmitool raw 0x04 0x2d N``), and DCMI Get Power Reading
(``ipmitool dcmi power reading``) where the BMC has it. Thresholds (``ipmitool sensor``) are
read with the SDR. A BMC that does not answer gives ``gpuwatchd_bmc_up 0`` and no readings
(never stale values); the session is re-opened with backoff.

PSUs are the sensor-specific Power Supply sensors (type 0x08, reading type 0x6f): bit 0
presence, 1 failure, 2 predictive failure, 3 AC lost, 4 input lost or out of range,
6 configuration error. Watt sensors on a PSU's entity (0x0a, same instance) are its input.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gpuwatchd.collectors import Scheduled
from gpuwatchd.collectors.chassis_common import (
    ChassisData,
    LinkStats,
    Psu,
    Sensor,
    cadence,
    render,
    unique_names,
)
from gpuwatchd.errors import GpuwatchdError, Refused, Transient, Unsupported
from gpuwatchd.links import ipmi_sdr as sdr
from gpuwatchd.links.ipmi import IpmiLink
from gpuwatchd.model import Collected, SensorState

if TYPE_CHECKING:
    from gpuwatchd.config import BmcConfig, Config
    from gpuwatchd.hardware import Hardware

log = logging.getLogger(__name__)

PSU_ENTITY = 0x0a
DCMI_POWER_READING = (0x2c, 0x02, b"\xdc\x01\x00\x00")
_KINDS = {sdr.TEMPERATURE: "temperature", sdr.VOLTAGE: "voltage", sdr.CURRENT: "current",
          sdr.FAN: "fan"}
_UNIT_KINDS = {sdr.UNIT_WATTS: "power", sdr.UNIT_RPM: "fan", sdr.UNIT_VOLTS: "voltage",
               sdr.UNIT_AMPS: "current"}


@dataclass
class _Tracked:
    """One sensor of the SDR with its stable name and cached thresholds."""

    record: sdr.SdrRecord
    name: str
    kind: str  # temperature | fan | voltage | current | power | psu | fan_redundancy
    thresholds: dict[str, float] = field(default_factory=dict)


class ChassisIpmiCollector:
    """Reads one BMC over an IpmiLink."""

    def __init__(self, bmc: BmcConfig, link: IpmiLink) -> None:
        self.name = f"chassis_ipmi:{bmc.name}"
        self.bmc = bmc.name
        self._link = link
        self._repo: sdr.RepositoryInfo | None = None
        self._tracked: list[_Tracked] = []
        self._dcmi = True  # until the BMC says the command is absent
        self._sdr_reads = 0
        self._up: bool | None = None

    @property
    def link(self) -> IpmiLink:
        return self._link

    def collect(self) -> Collected:
        """One tick; a BMC that does not answer is reported, not raised."""
        try:
            data, error = self._read(), ""
        except GpuwatchdError as exc:
            data, error = None, str(exc)
        self._transition(data is not None, error)
        device = self._link.device
        identity = (device.vendor, device.firmware) if device is not None else None
        stats = LinkStats(self._link.requests, self._link.sessions_opened,
                          tuple(sorted(self._link.errors.items())), self._sdr_reads)
        return render(self.bmc, "ipmi", identity, data, stats=stats, error=error)

    def _transition(self, up: bool, error: str) -> None:
        if up != self._up:
            if up:
                log.info("%s: reading %d sensors", self._link.name, len(self._tracked),
                         extra={"BMC": self.bmc})
            else:
                log.warning("%s", error, extra={"BMC": self.bmc})
        self._up = up

    def _read(self) -> ChassisData:
        info = sdr.parse_repository_info(self._link.raw(sdr.NETFN_STORAGE, 0x20))
        if info != self._repo:
            self._load(info)
        sensors, psus, redundancy = [], [], []
        psu_watts: dict[int, float] = {}
        for t in self._tracked:
            reading = self._reading(t.record)
            if t.kind == "psu":
                psus.append((t, reading))
            elif t.kind == "fan_redundancy":
                if reading is not None and reading.has_value:
                    redundancy.append((t.name, bool(reading.states & 0x01)))
            else:
                sensor = _sensor(t, reading)
                sensors.append(sensor)
                if t.record.entity_id == PSU_ENTITY and t.kind == "power" and sensor.value:
                    psu_watts[t.record.entity_instance] = sensor.value
        return ChassisData(
            sensors=tuple(sensors),
            psus=tuple(_psu(t, r, psu_watts.get(t.record.entity_instance)) for t, r in psus),
            power=self._power(), redundancy=tuple(redundancy))

    def _reading(self, record: sdr.SdrRecord) -> sdr.SensorReading | None:
        """Get Sensor Reading; None when the BMC has no such sensor now (cc 0xcb, 0xcc)."""
        try:
            return sdr.parse_reading(self._link.raw(sdr.NETFN_SENSOR, 0x2d,
                                                    bytes([record.number]), lun=record.lun))
        except (Unsupported, Refused):
            return None

    def _load(self, info: sdr.RepositoryInfo) -> None:
        """(Re)read the SDR repository and the thresholds; names are assigned here."""
        records = [r for r in sdr.read_repository(self._link.raw) if _kind(r)]
        names = unique_names([(r.name or f"sensor 0x{r.number:02x}",
                               f"{r.entity_id}.{r.entity_instance}") for r in records])
        tracked = [_Tracked(r, n, _kind(r)) for r, n in zip(records, names, strict=True)]
        for t in tracked:
            if t.record.analog and t.record.threshold_access in (1, 2):
                try:
                    data = self._link.raw(sdr.NETFN_SENSOR, 0x27, bytes([t.record.number]),
                                          lun=t.record.lun)
                    t.thresholds = sdr.parse_thresholds(t.record, data)
                except (Unsupported, Refused):
                    pass
        self._tracked, self._repo, self._dcmi = tracked, info, True
        self._sdr_reads += 1
        log.info("%s: SDR read: %d sensors (%d records)", self._link.name, len(tracked),
                 info.record_count, extra={"BMC": self.bmc})

    def _power(self) -> tuple[tuple[str, float], ...]:
        """DCMI Get Power Reading (``ipmitool dcmi power reading``): current watts."""
        if not self._dcmi:
            return ()
        netfn, cmd, data = DCMI_POWER_READING
        try:
            rsp = self._link.raw(netfn, cmd, data)
        except (Unsupported, Refused):
            self._dcmi = False  # asked again only after the SDR changes (e.g. BMC update)
            return ()
        if len(rsp) < 18 or rsp[0] != 0xdc:
            raise Transient(f"{self._link.name}: malformed DCMI power reading")
        active = bool(rsp[17] & 0x40)
        return (("system", float(int.from_bytes(rsp[1:3], "little"))),) if active else ()

    def close(self) -> None:
        self._link.close()


def _kind(record: sdr.SdrRecord) -> str:
    """What gpuwatchd reads this record as ('' = not read)."""
    if record.sensor_type == sdr.POWER_SUPPLY and record.reading_type == sdr.SENSOR_SPECIFIC:
        return "psu"
    if record.sensor_type == sdr.FAN and record.reading_type == sdr.REDUNDANCY_READING:
        return "fan_redundancy"
    if not record.analog:
        return ""
    if record.unit in _UNIT_KINDS and record.sensor_type != sdr.TEMPERATURE:
        return _UNIT_KINDS[record.unit]
    kind = _KINDS.get(record.sensor_type, "")
    if kind == "fan" and record.unit != sdr.UNIT_RPM and not record.percentage:
        return ""
    return kind


def _sensor(t: _Tracked, reading: sdr.SensorReading | None) -> Sensor:
    if reading is None or not reading.has_value:
        return Sensor(t.name, t.kind, None, "no_reading", tuple(t.thresholds.items()))
    value = t.record.convert(reading.raw)
    thresholds = dict(t.thresholds)
    if t.kind == "temperature" and value is not None:
        value = _celsius(t.record.unit, value)
        thresholds = {k: _celsius(t.record.unit, v) for k, v in thresholds.items()}
    ratio = None
    if t.kind == "fan" and t.record.percentage and t.record.unit != sdr.UNIT_RPM:
        value, ratio = None, value / 100.0 if value is not None else None
    return Sensor(t.name, t.kind, value, _threshold_state(reading.states),
                  tuple(thresholds.items()), ratio)


def _celsius(unit: int, value: float) -> float:
    if unit == sdr.UNIT_FAHRENHEIT:
        return (value - 32.0) * 5.0 / 9.0
    return value - 273.15 if unit == sdr.UNIT_KELVIN else value


def _threshold_state(states: int) -> SensorState:
    """Threshold comparison bits: 0-2 at/below LNC/LCR/LNR, 3-5 at/above UNC/UCR/UNR."""
    if states & 0b110110:
        return "critical"
    return "warning" if states & 0b001001 else "ok"


def _psu(t: _Tracked, reading: sdr.SensorReading | None, watts: float | None) -> Psu:
    if reading is None or not reading.has_value:
        return Psu(_psu_name(t), present=False, input_watts=watts)
    s = reading.states
    return Psu(_psu_name(t), present=bool(s & 0x01), failed=bool(s & 0x42),
               predictive_failure=bool(s & 0x04), ac_lost=bool(s & 0x18), input_watts=watts)


def _psu_name(t: _Tracked) -> str:
    """'PS1 Status' -> 'PS1'; Dell's bare 'Status' (entity 10.N) -> 'PSU N'."""
    name = t.name.removesuffix(" Status").removesuffix(" status")
    if name.lower().startswith("status") or not name:
        return f"PSU {t.record.entity_instance}"
    return name


def build(config: Config, hw: Hardware) -> Sequence[Scheduled]:
    """The registry factory: one collector per IPMI BMC in ``bmcs``."""
    out = []
    for bmc in config.bmcs:
        if bmc.protocol != "ipmi":
            continue
        connector = hw.ipmi_connector(bmc.name)  # the simulator's BMC, in --demo
        interval, deadline, effective = cadence(config, bmc)
        link = IpmiLink(effective, hw.clock, connector=connector)
        out.append(Scheduled(ChassisIpmiCollector(bmc, link), interval, deadline))
    return out
