"""IPMI sensors in the shapes vendors' SDRs have, over the simulated BMC with its records
rewritten to that shape: discrete/OEM numeric sensors, PSU redundancy, repeated names."""

from __future__ import annotations

from typing import TypeVar

from gpuwatchd.model import (
    ChassisPowerSensor,
    ChassisTemperature,
    Collected,
    FanReading,
    PsuRedundancy,
)
from gpuwatchd.sim.bmc import SimBmc
from gpuwatchd.sim.sdr import SensorDef
from tests.series import duplicates_in_families
from tests.unit.test_chassis_ipmi import make

# byte offsets in an SDR (header included): sensor type, reading type, units 1, base unit, M
SENSOR_TYPE, READING_TYPE, UNITS_1, BASE_UNIT = 12, 13, 20, 21
HP_ILO4 = 11  # IANA: Hewlett-Packard
T = TypeVar("T")


def patched(sim: SimBmc, number: int, **at: int) -> None:
    """Rewrite bytes of the record of sensor ``number`` (offsets as above)."""
    for i, rec in enumerate(sim._records):
        if rec[7] == number:
            data = bytearray(rec)
            for offset, value in at.items():
                data[int(offset)] = value
            sim._records[i] = bytes(data)


def ilo4() -> SimBmc:
    """NOTE(HPE iLO 4 2.70, ProLiant DL380 Gen9, ``ipmitool sdr -v``): "Fan Block 1..3" are
    Full records of sensor type Fan with a discrete reading type (0x03), the percentage bit
    and no base unit, read as percent; "Power Meter" a Full record of type 0x0b with an OEM
    reading type (0x70) in watts; "PS Redundancy" type 0x08 with the redundancy reading type
    (0x0b: bit 0 Fully Redundant, bit 1 Redundancy Lost); several "Ambient Temp" sensors on the
    same entity 7.1 (system board), told apart only by their sensor numbers."""
    sensors = [SensorDef(0x40 + i, f"Fan Block {i}", "temperature", (29, i)) for i in (1, 2, 3)]
    sensors += [SensorDef(0x11, "Power Meter", "power"),
                SensorDef(0x50, "PS Redundancy", "psu", (10, 0)),
                SensorDef(0x2c, "Ambient Temp", "temperature"),
                SensorDef(0x2a, "Ambient Temp", "temperature"),
                SensorDef(0x2b, "Ambient Temp", "temperature"),
                SensorDef(0x30, "CPU Temp", "temperature", (3, 1))]
    values = {0x41: 34, 0x42: 36, 0x43: 41, 0x11: 240, 0x50: 0x02, 0x2a: 21, 0x2b: 24,
              0x2c: 27, 0x30: 40}
    sim = SimBmc(sensors, lambda: values, manufacturer_id=HP_ILO4)
    for n in (0x41, 0x42, 0x43):
        patched(sim, n, **{str(SENSOR_TYPE): 0x04, str(READING_TYPE): 0x03,
                           str(UNITS_1): 0x81, str(BASE_UNIT): 0})
    patched(sim, 0x11, **{str(READING_TYPE): 0x70})
    patched(sim, 0x50, **{str(READING_TYPE): 0x0b})
    return sim


def of(out: Collected, kind: type[T]) -> dict[str, T]:
    return {getattr(r, "name", ""): r for r in out.readings if isinstance(r, kind)}


def test_discrete_and_oem_numeric_sensors_are_read() -> None:
    out = make(ilo4()).collect()
    fans = {n: (f.rpm, f.ratio, f.state) for n, f in of(out, FanReading).items()}
    assert fans == {"Fan Block 1": (None, 0.34, "ok"), "Fan Block 2": (None, 0.36, "ok"),
                    "Fan Block 3": (None, 0.41, "ok")}
    meter = of(out, ChassisPowerSensor)["Power Meter"]
    assert meter.watts == 240.0 and meter.state == "ok"
    assert duplicates_in_families(out.families) == []


def test_psu_redundancy_lost_is_exported() -> None:
    out = make(ilo4()).collect()
    assert [(g.group, g.redundant) for g in out.readings if isinstance(g, PsuRedundancy)] == [
        ("PS Redundancy", False)]
    series = {s.labels: s.value for f in out.families if f.name == "gpuwatchd_psu_redundancy_ok"
              for s in f.samples}
    assert series == {(("bmc", "idrac"), ("group", "PS Redundancy")): 0.0}


def test_repeated_names_on_one_entity_named_by_sensor_number_whatever_the_order() -> None:
    sim = ilo4()
    first = {n: t.celsius for n, t in of(make(sim).collect(), ChassisTemperature).items()}
    assert first == {"Ambient Temp 7.1 2Ah": 21, "Ambient Temp 7.1 2Bh": 24,
                     "Ambient Temp 7.1 2Ch": 27, "CPU Temp": 40}
    sim._records.reverse()  # another firmware lists the same sensors in another order
    for i, rec in enumerate(sim._records):
        sim._records[i] = bytes([(i + 1) & 0xff, (i + 1) >> 8]) + rec[2:]
    again = {n: t.celsius for n, t in of(make(sim).collect(), ChassisTemperature).items()}
    assert again == first
