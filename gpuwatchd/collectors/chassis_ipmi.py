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

import enum
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gpuwatchd.collectors import Scheduled, chassis_metrics
from gpuwatchd.collectors.chassis_common import cadence, link_counters, unique_names
from gpuwatchd.collectors.chassis_energy import ChassisEnergyMeter
from gpuwatchd.errors import GpuwatchdError, Refused, Transient, Unsupported
from gpuwatchd.links import ipmi_sdr as sdr
from gpuwatchd.links.ipmi import IpmiLink
from gpuwatchd.model import (
    BmcIdentity,
    BmcReading,
    ChassisCurrent,
    ChassisPower,
    ChassisPowerSensor,
    ChassisSensor,
    ChassisTemperature,
    ChassisVoltage,
    Collected,
    FanReading,
    FanRedundancy,
    PsuReading,
    PsuRedundancy,
    SensorState,
    Thresholds,
)

if TYPE_CHECKING:
    from gpuwatchd.config import BmcConfig, Config
    from gpuwatchd.hardware import Hardware

log = logging.getLogger(__name__)

PSU_ENTITY = 0x0a
DCMI_POWER_READING = (0x2c, 0x02, b"\xdc\x01\x00\x00")


class Read(enum.Enum):
    """What gpuwatchd reads an SDR record as."""

    TEMPERATURE = enum.auto()
    FAN = enum.auto()
    VOLTAGE = enum.auto()
    CURRENT = enum.auto()
    POWER = enum.auto()
    PSU = enum.auto()
    FAN_REDUNDANCY = enum.auto()
    PSU_REDUNDANCY = enum.auto()


_KINDS = {sdr.TEMPERATURE: Read.TEMPERATURE, sdr.VOLTAGE: Read.VOLTAGE,
          sdr.CURRENT: Read.CURRENT, sdr.FAN: Read.FAN}
_REDUNDANCY: dict[Read, type[FanRedundancy] | type[PsuRedundancy]] = {
    Read.FAN_REDUNDANCY: FanRedundancy, Read.PSU_REDUNDANCY: PsuRedundancy}
_UNIT_KINDS = {sdr.UNIT_WATTS: Read.POWER, sdr.UNIT_RPM: Read.FAN, sdr.UNIT_VOLTS: Read.VOLTAGE,
               sdr.UNIT_AMPS: Read.CURRENT}


@dataclass(frozen=True)
class _Tracked:
    """One sensor of the SDR with its stable name and cached thresholds (record's unit)."""

    record: sdr.SdrRecord
    name: str
    kind: Read
    thresholds: Thresholds = ()


class ChassisIpmiCollector:
    """Reads one BMC over an IpmiLink."""

    def __init__(self, bmc: BmcConfig, link: IpmiLink,
                 energy: ChassisEnergyMeter | None = None) -> None:
        self.name = f"chassis_ipmi:{bmc.name}"
        self._energy = energy  # kWh from the DCMI power reading (issue 14)
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
        identity = BmcIdentity(device.vendor, device.firmware) if device is not None else None
        power, readings = data if data is not None else ((), [])
        bmc = BmcReading(self.bmc, "ipmi", data is not None, identity, power, error,
                         link_counters(self._link, self._sdr_reads))
        out = (bmc, *readings, *(self._energy.observe(bmc) if self._energy else ()))
        return Collected(out, chassis_metrics.render(out))

    def _transition(self, up: bool, error: str) -> None:
        if up != self._up:
            if up:
                log.info("%s: reading %d sensors", self._link.name, len(self._tracked),
                         extra={"BMC": self.bmc})
            else:
                log.warning("%s", error, extra={"BMC": self.bmc})
        self._up = up

    def _read(self) -> tuple[tuple[ChassisPower, ...], list[object]]:
        """(chassis power, the sensor, PSU and redundancy readings in SDR order)."""
        info = sdr.parse_repository_info(self._link.raw(sdr.NETFN_STORAGE, 0x20))
        if info != self._repo:
            self._load(info)
        sensors: list[object] = []
        psus, redundancy = [], []
        psu_watts: dict[int, float] = {}
        for t in self._tracked:
            reading = self._reading(t.record)
            if t.kind is Read.PSU:
                psus.append((t, reading))
            elif t.kind in _REDUNDANCY:
                if reading is not None and reading.has_value:  # bit 0: fully redundant
                    redundancy.append(_REDUNDANCY[t.kind](self.bmc, t.name,
                                                          bool(reading.states & 0x01)))
            else:
                sensor = _sensor(self.bmc, t, reading)
                sensors.append(sensor)
                if (t.record.entity_id == PSU_ENTITY and isinstance(sensor, ChassisPowerSensor)
                        and sensor.watts):
                    psu_watts[t.record.entity_instance] = sensor.watts
        sensors += [_psu(self.bmc, t, r, psu_watts.get(t.record.entity_instance))
                    for t, r in psus]
        return self._power(), sensors + redundancy

    def _reading(self, record: sdr.SdrRecord) -> sdr.SensorReading | None:
        """Get Sensor Reading; None when the BMC has no such sensor now (cc 0xcb, 0xcc)."""
        try:
            return sdr.parse_reading(self._link.raw(sdr.NETFN_SENSOR, 0x2d,
                                                    bytes([record.number]), lun=record.lun))
        except (Unsupported, Refused):
            return None

    def _load(self, info: sdr.RepositoryInfo) -> None:
        """(Re)read the SDR repository and the thresholds; names are assigned here."""
        records = [(r, kind) for r in sdr.read_repository(self._link.raw)
                   if (kind := _kind(r)) is not None]
        names = unique_names([(r.name or f"sensor 0x{r.number:02x}",
                               f"{r.entity_id}.{r.entity_instance}", r.sensor_id)
                              for r, _ in records])
        tracked = [_Tracked(r, n, kind, self._thresholds(r))
                   for (r, kind), n in zip(records, names, strict=True)]
        self._tracked, self._repo, self._dcmi = tracked, info, True
        self._sdr_reads += 1
        log.info("%s: SDR read: %d sensors (%d records)", self._link.name, len(tracked),
                 info.record_count, extra={"BMC": self.bmc})

    def _thresholds(self, record: sdr.SdrRecord) -> Thresholds:
        """Get Sensor Thresholds (``ipmitool raw 0x04 0x27 N``), where the record has them."""
        if not (record.analog and record.threshold_access in (1, 2)):
            return ()
        try:
            data = self._link.raw(sdr.NETFN_SENSOR, 0x27, bytes([record.number]),
                                  lun=record.lun)
        except (Unsupported, Refused):
            return ()
        return sdr.parse_thresholds(record, data)

    def _power(self) -> tuple[ChassisPower, ...]:
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
        return (ChassisPower("system", float(int.from_bytes(rsp[1:3], "little"))),) \
            if active else ()

    def close(self) -> None:
        self._link.close()


def _kind(record: sdr.SdrRecord) -> Read | None:
    """What gpuwatchd reads this record as (None = not read)."""
    if record.sensor_type == sdr.POWER_SUPPLY and record.reading_type == sdr.SENSOR_SPECIFIC:
        return Read.PSU
    if record.sensor_type == sdr.FAN and record.reading_type == sdr.REDUNDANCY_READING:
        return Read.FAN_REDUNDANCY
    if record.sensor_type == sdr.POWER_SUPPLY and record.reading_type == sdr.REDUNDANCY_READING:
        return Read.PSU_REDUNDANCY  # "PS Redundancy": Fully Redundant / Redundancy Lost
    if not record.numeric:  # discrete and OEM reading types too, where the value is numeric
        return None
    if record.unit in _UNIT_KINDS and record.sensor_type != sdr.TEMPERATURE:
        return _UNIT_KINDS[record.unit]
    kind = _KINDS.get(record.sensor_type)
    if kind is Read.FAN and record.unit != sdr.UNIT_RPM and not record.percentage:
        return None
    return kind


def _sensor(bmc: str, t: _Tracked, reading: sdr.SensorReading | None) -> ChassisSensor:
    """The typed reading of one threshold sensor, in base units.

    NOTE: without a value the thresholds are kept in the record's unit (a Fahrenheit or
    Kelvin sensor's are not converted), and a percent-reporting fan keeps its thresholds in
    percent under ``thresholds_rpm``: both as before the readings were typed.
    """
    state: SensorState = "no_reading"
    value, thresholds = None, t.thresholds
    if reading is not None and reading.has_value:
        value = t.record.convert(reading.raw)
        # the state bits of a discrete or OEM reading type are not threshold comparisons
        state = sdr.threshold_state(reading.states) if t.record.analog else "ok"
        if t.kind is Read.TEMPERATURE and value is not None:
            value = sdr.celsius(t.record.unit, value)
            thresholds = tuple((k, sdr.celsius(t.record.unit, v)) for k, v in thresholds)
    return _typed(bmc, t, value, state, thresholds)


def _typed(bmc: str, t: _Tracked, value: float | None, state: SensorState,
           thresholds: Thresholds) -> ChassisSensor:
    if t.kind is Read.FAN:
        if t.record.percentage and t.record.unit != sdr.UNIT_RPM:  # percent: a ratio
            ratio = value / 100.0 if value is not None else None
            return FanReading(bmc, t.name, None, ratio, state, thresholds)
        return FanReading(bmc, t.name, value, None, state, thresholds)
    if t.kind is Read.TEMPERATURE:
        return ChassisTemperature(bmc, t.name, value, state, thresholds)
    if t.kind is Read.VOLTAGE:
        return ChassisVoltage(bmc, t.name, value, state, thresholds)
    if t.kind is Read.CURRENT:
        return ChassisCurrent(bmc, t.name, value, state, thresholds)
    return ChassisPowerSensor(bmc, t.name, value, state, thresholds)


def _psu(bmc: str, t: _Tracked, reading: sdr.SensorReading | None,
         watts: float | None) -> PsuReading:
    if reading is None or not reading.has_value:
        return PsuReading(bmc, _psu_name(t), present=False, input_watts=watts)
    s = reading.states
    return PsuReading(bmc, _psu_name(t), present=bool(s & 0x01), failed=bool(s & 0x42),
                      predictive_failure=bool(s & 0x04), ac_lost=bool(s & 0x18),
                      input_watts=watts)


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
        energy = ChassisEnergyMeter(hw.clock, config.energy.price_per_kwh, config.energy.currency)
        out.append(Scheduled(ChassisIpmiCollector(bmc, link, energy), interval, deadline))
    return out
