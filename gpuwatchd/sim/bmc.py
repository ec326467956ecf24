"""A simulated BMC that answers raw IPMI commands, behind the same interface as a real session.

:class:`SimBmc` is an IpmiLink connection (``send_raw(lun, netfn, bytes)`` returning the
completion code first), so ``gpuwatchd --demo`` and the unit tests run the real link, the real
SDR walk and the real chassis collector against it. It implements what the collector uses:
Get Device ID, the SDR repository commands, Get Sensor Reading, Get Sensor Thresholds and DCMI
Get Power Reading; anything else is answered ``0xc1`` (invalid command), as a BMC does.

Sensor values come from a callable (the demo wires fan speeds to the thermal plant), so a
value can change between two reads exactly as on a real chassis.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable, Mapping
from typing import Any

from gpuwatchd.sim.port import NodePort
from gpuwatchd.sim.sdr import PSU_AC_LOST, PSU_FAILED, PSU_PRESENT, SensorDef, repository

Values = Callable[[], Mapping[int, float]]  # sensor number -> value (unit, or state bits)


class SimBmc:
    """A BMC with the given sensors; thread-safe; counts the commands it answered."""

    def __init__(self, sensors: list[SensorDef], values: Values, *, manufacturer_id: int = 674,
                 product_id: int = 0x0100, firmware: tuple[int, int] = (2, 0x83),
                 power_watts: Callable[[], float | None] | None = None) -> None:
        self._sensors = {s.number: s for s in sensors}
        self._records = repository(sensors)
        self._values = values
        self._power = power_watts
        self._device = bytes([0x00, 0x03, firmware[0], firmware[1], 0x02, 0x9f,
                              *manufacturer_id.to_bytes(3, "little"),
                              *product_id.to_bytes(2, "little"), 0, 0, 0, 0])
        self._lock = threading.Lock()
        self.commands = 0
        self.sessions = 0
        self.added = 0x1000  # SDR repository addition timestamp

    def connector(self, req: Any) -> SimBmc:
        """An IpmiLink connector: every open gives this BMC (one session at a time)."""
        with self._lock:
            self.sessions += 1
        return self

    def close(self, graceful: bool) -> None:
        """Sessions cost nothing here."""

    def send_raw(self, lun: int, netfn: int, raw_bytes: bytes) -> bytes:
        """Answer one command: completion code first, as python-ipmi returns it."""
        with self._lock:
            self.commands += 1
        cmd, data = raw_bytes[0], raw_bytes[1:]
        handler = _HANDLERS.get((netfn, cmd))
        return handler(self, data) if handler else b"\xc1"

    def _device_id(self, data: bytes) -> bytes:
        return b"\x00" + self._device

    def _repo_info(self, data: bytes) -> bytes:
        return b"\x00" + struct.pack("<BHHIIB", 0x51, len(self._records), 0xffff,
                                     self.added, 0, 0x02)

    def _reserve(self, data: bytes) -> bytes:
        return b"\x00\x01\x00"

    def _get_sdr(self, data: bytes) -> bytes:
        if len(data) < 6:
            return b"\xc7"
        record_id, offset, count = struct.unpack_from("<HBB", data, 2)
        index = max(record_id, 1) - 1
        if index >= len(self._records):
            return b"\xcb"
        rec = self._records[index]
        next_id = index + 2 if index + 1 < len(self._records) else 0xffff
        return b"\x00" + struct.pack("<H", next_id) + rec[offset:offset + count]

    def _reading(self, data: bytes) -> bytes:
        sensor = self._sensors.get(data[0]) if data else None
        if sensor is None:
            return b"\xcb"
        value = self._values().get(sensor.number)
        if not sensor.scanning or value is None:
            return bytes([0x00, 0x00, 0x80, 0x00, 0x80])  # events on, scanning disabled
        if sensor.discrete:
            bits = sensor.to_raw(value)
            return bytes([0x00, 0x00, 0xc0, bits & 0xff, 0x80 | (bits >> 8)])
        return bytes([0x00, sensor.to_raw(value), 0xc0, _comparisons(sensor, value), 0x80])

    def _thresholds(self, data: bytes) -> bytes:
        sensor = self._sensors.get(data[0]) if data else None
        if sensor is None or sensor.discrete:
            return b"\xcb"
        return bytes([0x00, sensor.threshold_mask(), *sensor.threshold_raw()])

    def _dcmi_power(self, data: bytes) -> bytes:
        watts = self._power() if self._power is not None else None
        if watts is None or data[:1] != b"\xdc":
            return b"\xc1"
        w = round(watts)
        return b"\x00\xdc" + struct.pack("<HHHHIIB", w, w, w, w, 0, 1000, 0x40)


def _comparisons(sensor: SensorDef, value: float) -> int:
    """Threshold comparison bits of Get Sensor Reading (at or below / at or above)."""
    bits = 0
    for i, name in enumerate(("lower_non_critical", "lower_critical", "lower_non_recoverable")):
        if name in sensor.thresholds and value <= sensor.thresholds[name]:
            bits |= 1 << i
    for i, name in enumerate(("upper_non_critical", "upper_critical", "upper_non_recoverable")):
        if name in sensor.thresholds and value >= sensor.thresholds[name]:
            bits |= 1 << (i + 3)
    return bits


_HANDLERS: dict[tuple[int, int], Callable[[SimBmc, bytes], bytes]] = {
    (0x06, 0x01): SimBmc._device_id,
    (0x0a, 0x20): SimBmc._repo_info,
    (0x0a, 0x22): SimBmc._reserve,
    (0x0a, 0x23): SimBmc._get_sdr,
    (0x04, 0x2d): SimBmc._reading,
    (0x04, 0x27): SimBmc._thresholds,
    (0x2c, 0x02): SimBmc._dcmi_power,
}

PSU_OK = PSU_PRESENT
PSU_BROKEN = PSU_PRESENT | PSU_FAILED | PSU_AC_LOST
PSU_STATUS_SENSORS = {1: 0x62, 2: 0x63}  # PSU number -> its "PSn Status" sensor (demo_sensors)

# --- the demo node's iDRAC ------------------------------------------------------------------
# A Dell R730-class chassis: eight dual-rotor fans (Fan1A/Fan1B ... Fan8A/Fan8B; the second
# rotor of a counter-rotating fan turns a little slower), inlet, exhaust and two CPU
# temperatures, and two PSUs of which PS2 has failed (present, failure and AC lost asserted,
# as on a freshly unboxed used server). Names follow the style of an iDRAC's `ipmitool sdr
# elist` (both CPU sensors are called "Temp", told apart by entity 3.1/3.2). Fan thresholds:
# 600 rpm non-critical, 360 rpm critical (R730 iDRAC8 ThermalConfig, reference/fan-control.md
# (e)); the temperature thresholds (inlet 42/47 C, exhaust 70/75 C, CPU 96 C) are assumed.
DEMO_BMC = "idrac"
ROTOR_B_RATIO = 0.975
CPU_WATTS = 70.0  # each of two CPUs, steady (the demo loads the GPUs only)
BASE_WATTS = 90.0  # board, memory, drives
PSU_EFFICIENCY = 0.94
AIRFLOW_M3S_AT_MAX = 0.06  # about 127 CFM through a 2U chassis with all fans at 100 %
AIR_J_PER_M3K = 1200.0  # volumetric heat capacity of air
CPU_K_PER_W_AT_MAX = 0.25  # CPU heatsink to air at full airflow; scales like the GPUs'


def demo_sensors(fans: int = 8) -> list[SensorDef]:
    """The demo chassis' sensors (see above)."""
    fan_thresholds = {"lower_critical": 360.0, "lower_non_critical": 600.0}
    out = [SensorDef(0x30 + 2 * i + r, f"Fan{i + 1}{'AB'[r]}", "fan", (7, 1),
                     fan_thresholds) for i in range(fans) for r in (0, 1)]
    out += [SensorDef(0x04, "Inlet Temp", "temperature", (0x37, 1),
                      {"upper_non_critical": 42.0, "upper_critical": 47.0}),
            SensorDef(0x01, "Exhaust Temp", "temperature", (7, 1),
                      {"upper_non_critical": 70.0, "upper_critical": 75.0}),
            SensorDef(0x0e, "Temp", "temperature", (3, 1), {"upper_critical": 96.0}),
            SensorDef(0x0f, "Temp", "temperature", (3, 2), {"upper_critical": 96.0}),
            SensorDef(0x62, "PS1 Status", "psu", (10, 1)),
            SensorDef(0x63, "PS2 Status", "psu", (10, 2)),
            SensorDef(0x64, "PS1 Input Power", "power", (10, 1))]
    return out


def demo_values(node: NodePort) -> dict[int, float]:
    """Every demo sensor's value now, from the thermal plant."""
    with node.synced() as plant:
        rpms = plant.fan_rpms()
        gpu_watts = sum(plant.gpu(i).power_watts for i in range(plant.gpu_count))
        inlet = plant.inlet_celsius
        spec = plant.fan_spec
    flow = max(sum(rpms) / len(rpms), 1.0) / spec.max_rpm  # fraction of full airflow
    heat = gpu_watts + 2 * CPU_WATTS + BASE_WATTS
    cpu_rise = CPU_WATTS * CPU_K_PER_W_AT_MAX * flow ** -0.8
    values: dict[int, float] = {}
    for i, rpm in enumerate(rpms):
        values[0x30 + 2 * i] = rpm
        values[0x31 + 2 * i] = rpm * ROTOR_B_RATIO
    values.update({0x04: inlet, 0x01: inlet + heat / (AIR_J_PER_M3K * AIRFLOW_M3S_AT_MAX * flow),
                   0x0e: inlet + cpu_rise, 0x0f: inlet + cpu_rise * 0.93,
                   0x62: PSU_OK, 0x63: PSU_BROKEN, 0x64: heat / PSU_EFFICIENCY})
    return values


def demo_bmc(node: NodePort) -> SimBmc:
    """The demo node's iDRAC: fans from the plant; DCMI power = what the chassis draws."""
    with node.synced() as plant:
        sensors = demo_sensors(plant.fan_count)
    return SimBmc(sensors, lambda: demo_values(node), manufacturer_id=674, product_id=0x0100,
                  firmware=(2, 0x83), power_watts=lambda: demo_values(node)[0x64])

