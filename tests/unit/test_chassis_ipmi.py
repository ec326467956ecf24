"""The IPMI chassis collector, run for real over the simulated BMC (gpuwatchd.sim.bmc)."""

# ruff: noqa: S106 - made-up test passwords, asserted never to leak
from __future__ import annotations

import pytest
from pyipmi.errors import RetryError

from gpuwatchd.clock import ManualClock
from gpuwatchd.collectors import chassis_metrics
from gpuwatchd.collectors.chassis_ipmi import ChassisIpmiCollector
from gpuwatchd.collectors.registry import build_all
from gpuwatchd.config import BmcConfig, loads
from gpuwatchd.hardware import Hardware
from gpuwatchd.links.credentials import Secret
from gpuwatchd.links.ipmi import IpmiLink
from gpuwatchd.model import (
    BmcReading,
    ChassisPower,
    ChassisPowerSensor,
    ChassisTemperature,
    ChassisVoltage,
    Collected,
    FanReading,
    FanRedundancy,
    PsuReading,
)
from gpuwatchd.sim.bmc import SimBmc
from gpuwatchd.sim.sdr import SensorDef

SENSORS = [
    SensorDef(0x30, "Fan1A RPM", "fan", thresholds={"lower_critical": 600}),
    SensorDef(0x31, "Fan1B RPM", "fan", thresholds={"lower_critical": 600}),
    SensorDef(0x01, "Inlet Temp", "temperature", (0x37, 1),
              {"upper_non_critical": 38, "upper_critical": 42}),
    SensorDef(0x0e, "Temp", "temperature", (3, 1)),
    SensorDef(0x0f, "Temp", "temperature", (3, 2)),
    SensorDef(0x10, "12V", "voltage", thresholds={"upper_critical": 13.2}, scanning=False),
    SensorDef(0x60, "PS1 Status", "psu", (10, 1)),
    SensorDef(0x61, "PS2 Status", "psu", (10, 2)),
    SensorDef(0x62, "PS1 Input Power", "power", (10, 1)),
    SensorDef(0x75, "Fan Redundancy", "fan_redundancy"),
]


def values() -> dict[int, float]:
    return {0x30: 4800, 0x31: 4680, 0x01: 24, 0x0e: 41, 0x0f: 39, 0x10: 12.0, 0x60: 0x01,
            0x61: 0x0b, 0x62: 235, 0x75: 0x02}


def make(sim: SimBmc, clock: ManualClock | None = None) -> ChassisIpmiCollector:
    cfg = BmcConfig(name="idrac", host="192.0.2.10", password_file="/x")
    link = IpmiLink(cfg, clock or ManualClock(), connector=sim.connector,
                    password=lambda: Secret("pw"))
    return ChassisIpmiCollector(cfg, link)


def samples(out: Collected, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {s.labels: s.value for f in out.families if f.name == name for s in f.samples}


def test_fans_temperatures_psus_and_thresholds() -> None:
    current = values()
    out = make(SimBmc(SENSORS, lambda: current, power_watts=lambda: 480.0)).collect()
    fans = {r.name: r.rpm for r in out.readings if isinstance(r, FanReading)}
    assert fans == {"Fan1A RPM": 4800.0, "Fan1B RPM": 4680.0}
    temps = {r.name: r.celsius for r in out.readings if isinstance(r, ChassisTemperature)}
    assert temps == {"Inlet Temp": 24.0, "Temp 3.1": 41.0, "Temp 3.2": 39.0}
    psus = {r.name: r for r in out.readings if isinstance(r, PsuReading)}
    assert psus["PS1"].up and psus["PS1"].input_watts == 235.0
    assert not psus["PS2"].up and psus["PS2"].failed and psus["PS2"].ac_lost
    assert samples(out, "gpuwatchd_temperature_threshold_celsius")[
        (("bmc", "idrac"), ("sensor", "Inlet Temp"), ("threshold", "upper_critical"))] == 42.0
    assert samples(out, "gpuwatchd_fan_speed_threshold_rpm")[
        (("bmc", "idrac"), ("fan", "Fan1A RPM"), ("threshold", "lower_critical"))] == 600.0
    assert samples(out, "gpuwatchd_chassis_power_watts") == {
        (("bmc", "idrac"), ("chassis", "system")): 480.0}
    assert samples(out, "gpuwatchd_fan_redundancy_ok") == {
        (("bmc", "idrac"), ("group", "Fan Redundancy")): 0.0}
    bmc = out.readings[0]
    assert isinstance(bmc, BmcReading) and bmc.up and bmc.vendor == "Dell"
    assert samples(out, "gpuwatchd_bmc_info") == {
        (("bmc", "idrac"), ("vendor", "Dell"), ("firmware", "2.83"), ("protocol", "ipmi")): 1.0}


def test_the_readings_are_the_record_and_the_families_are_rendered_from_them() -> None:
    out = make(SimBmc(SENSORS, values, power_watts=lambda: 480.0)).collect()
    assert out.families == chassis_metrics.render(out.readings)
    fan = next(r for r in out.readings if isinstance(r, FanReading) and r.name == "Fan1A RPM")
    assert fan.thresholds_rpm == (("lower_critical", 600.0),)
    assert fan.lower_threshold_rpm == 600.0  # what gpuwatchctl calibrate keeps clear of
    volts = next(r for r in out.readings if isinstance(r, ChassisVoltage))
    assert (volts.name, volts.volts, volts.state) == ("12V", None, "no_reading")
    assert dict(volts.thresholds_volts)["upper_critical"] == pytest.approx(13.2, abs=0.1)
    power = next(r for r in out.readings if isinstance(r, ChassisPowerSensor))
    assert (power.name, power.watts) == ("PS1 Input Power", 235.0)
    assert [r for r in out.readings if isinstance(r, FanRedundancy)] == [
        FanRedundancy("idrac", "Fan Redundancy", False)]
    bmc = out.readings[0]
    assert isinstance(bmc, BmcReading) and bmc.power == (ChassisPower("system", 480.0),)
    assert bmc.counters.sdr_reads == 1 and bmc.counters.requests > len(SENSORS)


def test_a_sensor_without_a_reading_is_absent_and_says_so() -> None:
    out = make(SimBmc(SENSORS, values)).collect()
    assert ((("bmc", "idrac"), ("sensor", "12V"))) not in samples(out, "gpuwatchd_voltage_volts")
    state = samples(out, "gpuwatchd_bmc_sensor_state")
    base = (("bmc", "idrac"), ("sensor", "12V"), ("kind", "voltage"))
    assert state[(*base, ("state", "no_reading"))] == 1.0
    assert state[(*base, ("state", "ok"))] == 0.0


def test_threshold_crossings_set_the_sensor_state() -> None:
    current = values()
    collector = make(SimBmc(SENSORS, lambda: current))
    current[0x01] = 39
    assert _state(collector.collect(), "Inlet Temp") == "warning"
    current[0x01] = 45
    out = collector.collect()
    assert _state(out, "Inlet Temp") == "critical"
    temp = next(r for r in out.readings if isinstance(r, ChassisTemperature)
                and r.name == "Inlet Temp")
    assert temp.upper_critical_celsius == 42.0 and temp.input_id == "bmc:idrac:Inlet Temp"


def _state(out: Collected, sensor: str) -> str:
    return next(dict(labels)["state"] for labels, v in
                samples(out, "gpuwatchd_bmc_sensor_state").items()
                if dict(labels)["sensor"] == sensor and v == 1.0)


def test_dcmi_absent_means_no_chassis_power_series_not_zero() -> None:
    sim = SimBmc(SENSORS, values)  # no DCMI: answers 0xc1
    collector = make(sim)
    out = collector.collect()
    assert samples(out, "gpuwatchd_chassis_power_watts") == {}
    before = sim.commands
    collector.collect()
    per_tick = sim.commands - before
    assert per_tick == 1 + len(SENSORS), "DCMI is not asked again once absent"


def test_the_sdr_is_read_once_and_again_when_the_repository_changes() -> None:
    sim = SimBmc(SENSORS, values)
    collector = make(sim)
    for _ in range(3):
        collector.collect()
    assert collector._sdr_reads == 1
    sim.added += 1  # a record was added (new sensor, BMC firmware update)
    out = collector.collect()
    assert collector._sdr_reads == 2
    assert samples(out, "gpuwatchd_bmc_sdr_reads_total") == {(("bmc", "idrac"),): 2.0}


def test_a_bmc_that_stops_answering_reports_down_then_recovers() -> None:
    clock = ManualClock()
    sim = SimBmc(SENSORS, values)
    collector = make(sim, clock)
    assert collector.collect().readings[0].up  # type: ignore[attr-defined]
    real = sim.send_raw
    sim.send_raw = lambda *a: (_ for _ in ()).throw(RetryError("no reply"))  # type: ignore[method-assign]
    out = collector.collect()
    bmc = out.readings[0]
    assert isinstance(bmc, BmcReading) and not bmc.up and "no reply" in bmc.error
    assert samples(out, "gpuwatchd_bmc_up") == {(("bmc", "idrac"),): 0.0}
    assert samples(out, "gpuwatchd_fan_speed_rpm") == {}, "no stale values while down"
    assert len(out.readings) == 1
    sim.send_raw = real  # type: ignore[method-assign]
    clock.advance(1.0)
    out = collector.collect()
    assert samples(out, "gpuwatchd_bmc_up") == {(("bmc", "idrac"),): 1.0}
    assert samples(out, "gpuwatchd_bmc_sessions_opened_total") == {(("bmc", "idrac"),): 2.0}


def test_registry_builds_one_collector_per_ipmi_bmc_with_its_cadence() -> None:
    cfg = loads("""
interval_seconds: 2
gpus: {enabled: false}
bmcs:
  - {name: a, host: 192.0.2.1, password_file: /x, timeout_seconds: 1}
  - {name: b, host: 192.0.2.2, password_file: /x, interval_seconds: 10, timeout_seconds: 5}
  - {name: c, protocol: redfish, host: 192.0.2.3, password_file: /x}
  - {name: d, host: 192.0.2.4, password_file: /x, timeout_seconds: 5}
""")
    sim = SimBmc(SENSORS, values)
    hw = Hardware(clock=ManualClock(), ipmi_peers={"a": sim.connector})
    scheduled = [s for s in build_all(cfg, hw) if s.collector.name.startswith("chassis_ipmi")]
    assert [(s.collector.name, s.interval_seconds, s.deadline_seconds) for s in scheduled] == [
        ("chassis_ipmi:a", 2.0, 1.5), ("chassis_ipmi:b", 10.0, 5.5), ("chassis_ipmi:d", 2.0, 2.0)]
    timeouts = [s.collector.link.bmc.timeout_seconds for s in scheduled]  # type: ignore[attr-defined]
    # a command that gets no answer must end before the tick's deadline, not after it
    assert timeouts == [1.0, 5.0, pytest.approx(1.7)]
