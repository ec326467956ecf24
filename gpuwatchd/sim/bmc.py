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
