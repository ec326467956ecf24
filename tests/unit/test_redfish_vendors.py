"""The Redfish collector over trees in the shapes real BMCs serve (tests/data/redfish, each
with its vendor and firmware in its NOTE): every sensor once, under a stable name, in its unit."""

from __future__ import annotations

from typing import Any

import pytest

from gpuwatchd.collectors import redfish_sensors
from gpuwatchd.model import (
    BmcReading,
    ChassisCurrent,
    ChassisPowerSensor,
    ChassisTemperature,
    ChassisVoltage,
    Collected,
    FanReading,
    FanRedundancy,
    PsuReading,
    PsuRedundancy,
)
from tests.fakes.redfish import FakeRedfish
from tests.fakes.redfish_trees import CAPTURED, V1, captured, dell_legacy, dmtf_modern
from tests.series import duplicates_in_families
from tests.unit.test_chassis_redfish import make


def collect(tree: dict[str, Any], ticks: int = 1) -> Collected:
    c = make(FakeRedfish(tree))
    out = c.collect()
    for _ in range(ticks - 1):
        out = c.collect()
    return out


def of(out: Collected, kind: type) -> dict[str, Any]:
    found = [r for r in out.readings if isinstance(r, kind)]
    names = [getattr(r, "group", None) or getattr(r, "name", None) or r.bmc for r in found]
    assert len(names) == len(set(names)), f"a {kind.__name__} name repeats: {names}"
    return dict(zip(names, found, strict=True))


@pytest.mark.parametrize("name", CAPTURED)
def test_every_fixture_names_its_source(name: str) -> None:
    note = (captured.__globals__["DATA"] / f"{name}.json").read_text()
    assert '"NOTE": "NOTE(' in note


@pytest.mark.parametrize("tree", [*CAPTURED, "dell_legacy", "dmtf_modern"])
def test_no_duplicate_series_two_ticks(tree: str) -> None:
    built = {"dell_legacy": dell_legacy, "dmtf_modern": dmtf_modern}
    out = collect(built[tree]() if tree in built else captured(tree), ticks=2)
    assert duplicates_in_families(out.families) == []
    assert of(out, BmcReading)  # the names check of each kind
    for kind in (FanReading, ChassisTemperature, ChassisVoltage, ChassisCurrent,
                 ChassisPowerSensor, PsuReading, FanRedundancy):
        of(out, kind)


def test_idrac9_sensors_beside_legacy_thermal_each_once() -> None:
    out = collect(captured("idrac9_modern"), ticks=2)
    temps = {n: t.celsius for n, t in of(out, ChassisTemperature).items()}
    assert temps == {"System Board Inlet Temp": 23.0, "System Board Exhaust Temp": 39.0,
                     "CPU1 Temp": 48.0, "CPU2 Temp": 46.0, "DIMM Socket A1 Temp": 34.0,
                     "PERC1 Battery Temp": 31.0}
    assert of(out, ChassisTemperature)["CPU1 Temp"].upper_critical_celsius == 98
    assert {n: v.volts for n, v in of(out, ChassisVoltage).items()} == {
        "PS1 Voltage 1": 230.0, "PS2 Voltage 2": 232.0}
    assert {n: a.amperes for n, a in of(out, ChassisCurrent).items()} == {
        "PS1 Current 1": 0.8, "PS2 Current 2": 0.6}
    assert set(of(out, FanReading)) == {"System Board Fan1A", "System Board Fan1B"}
    psus = of(out, PsuReading)
    assert set(psus) == {"PS1", "PS2"}
    assert (psus["PS1"].input_watts, psus["PS1"].capacity_watts) == (184.0, 1400.0)
    assert psus["PS1"].output_watts == pytest.approx(172.96)  # only the legacy Power has it
    bmc = of(out, BmcReading)["idrac"]
    assert [(p.chassis, p.watts) for p in bmc.power] == [("System.Embedded.1", 336.0)]
    assert of(out, ChassisPowerSensor) == {}  # the board's power is the chassis power
    assert list(of(out, FanRedundancy)) == ["Fan Redundancy"]


def test_dmtf_sensors_every_kind_in_its_unit_and_the_cooling_unit() -> None:
    out = collect(captured("dmtf_sensors"))
    temps = of(out, ChassisTemperature)
    for name in ("Ambient Temperature", "CPU 1 Temperature", "DIMM 1 Temperature",
                 "Battery Temperature", "Coolant Supply Temperature"):
        assert temps[name].celsius is not None, name
    volts = of(out, ChassisVoltage)
    assert volts["12V Rail"].volts == 12.08
    assert dict(volts["12V Rail"].thresholds_volts) == {"upper_critical": 12.8,
                                                        "lower_critical": 11.2}
    assert of(out, ChassisCurrent)["CPU 1 Current"].amperes == 14.2
    assert {n: p.watts for n, p in of(out, ChassisPowerSensor).items()} == {"Total Power": 388.0}
    assert len(of(out, FanReading)) == 4  # the fans' sensors are not read twice
    bmc = of(out, BmcReading)["idrac"]
    assert [(p.chassis, p.watts) for p in bmc.power] == [("CDU1", 950.0)]


def test_unnamed_redundancy_groups_distinct_and_disabled_left_out() -> None:
    out = collect(captured("dmtf_sensors"))
    groups = {n: g.redundant for n, g in of(out, FanRedundancy).items()}
    assert groups == {"Fan Redundancy 1U 1": True, "Fan Redundancy 1U 2": False}


def test_ilo4_percent_fans_and_bay_numbered_psus() -> None:
    out = collect(captured("ilo4"))
    fans = {n: (f.rpm, f.ratio, f.state) for n, f in of(out, FanReading).items()}
    assert fans["Fan 1"] == (None, 0.19, "ok") and fans["Fan 3"][1] == 0.23
    assert "Fan 6" not in fans  # Absent
    cpu = of(out, ChassisTemperature)["02-CPU 1"]
    assert (cpu.celsius, dict(cpu.thresholds_celsius)) == (40.0, {"upper_critical": 70.0})
    assert set(of(out, PsuReading)) == {"HpServerPowerSupply 1", "HpServerPowerSupply 2"}


def test_ilo5_psus_named_by_member_id_not_list_order() -> None:
    tree = captured("ilo5")
    before = {n: p.failed for n, p in of(collect(tree), PsuReading).items()}
    assert before == {"HpeServerPowerSupply 0": False, "HpeServerPowerSupply 1": True}
    tree[f"{V1}/Chassis/1/Power"]["PowerSupplies"].reverse()
    after = {n: p.failed for n, p in of(collect(tree), PsuReading).items()}
    assert after == before


def test_sensor_units_scaled_or_left_out() -> None:
    doc = {"Name": "VCC", "ReadingType": "Voltage", "ReadingUnits": "mV", "Reading": 1800}
    reading = redfish_sensors.sensor(doc, "b")
    assert isinstance(reading, ChassisVoltage) and reading.volts == pytest.approx(1.8)
    assert redfish_sensors.sensor(dict(doc, ReadingUnits="furlong"), "b") is None
    assert redfish_sensors.sensor(dict(doc, ReadingType="Humidity"), "b") is None
    pump = {"Name": "Pump", "ReadingType": "Rotational", "ReadingUnits": "RPM", "Reading": 3,
            "PhysicalContext": "Pump"}
    assert redfish_sensors.sensor(pump, "b") is None


def test_ilo5_power_redundancy_group_exported() -> None:
    out = collect(captured("ilo5"))
    assert {n: g.redundant for n, g in of(out, PsuRedundancy).items()} == {
        "PowerSupply Redundancy Group 1": False}
