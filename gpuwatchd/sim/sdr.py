"""Sensor definitions and their IPMI Sensor Data Records, for simulated and emulated BMCs.

One :class:`SensorDef` list describes a chassis; from it come the SDR bytes (Full Sensor
Records for numeric sensors, Compact ones for discrete sensors, IPMI 2.0 tables 43-1/43-2),
the raw readings, and the thresholds. The demo's simulated BMC (gpuwatchd.sim.bmc) answers
with them, and the integration tests feed the same records to OpenIPMI's ``ipmi_sim``
(``main_sdr_add``), so both peers describe a chassis identically.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# kind -> (sensor type, reading type, unit code, M, K2, two's complement, record type)
KINDS: dict[str, tuple[int, int, int, int, int, bool, int]] = {
    "fan": (0x04, 0x01, 18, 120, 0, False, 0x01),  # 120 rpm per count, as iDRACs report: 0-30600
    "temperature": (0x01, 0x01, 1, 1, 0, True, 0x01),  # 1 C per count, -128..127 C
    "voltage": (0x02, 0x01, 4, 6, -2, False, 0x01),  # 0.06 V per count: 0-15.3 V
    "power": (0x0b, 0x01, 6, 5, 0, False, 0x01),  # 5 W per count: 0-1275 W
    "psu": (0x08, 0x6f, 0, 1, 0, False, 0x02),  # sensor-specific: presence, failure, ...
    "fan_redundancy": (0x04, 0x0b, 0, 1, 0, False, 0x02),  # bit 0 = fully redundant
}
THRESHOLD_ORDER = ("lower_non_critical", "lower_critical", "lower_non_recoverable",
                   "upper_non_critical", "upper_critical", "upper_non_recoverable")
PSU_PRESENT, PSU_FAILED, PSU_AC_LOST = 0x01, 0x02, 0x08
BMC = 0x20


@dataclass(frozen=True)
class SensorDef:
    """One sensor of a simulated chassis."""

    number: int
    name: str
    kind: str
    entity: tuple[int, int] = (7, 1)  # (entity id, instance); 7 = system board
    thresholds: dict[str, float] = field(default_factory=dict)
    scanning: bool = True  # False: the BMC reports no reading ("ns")

    @property
    def spec(self) -> tuple[int, int, int, int, int, bool, int]:
        return KINDS[self.kind]

    @property
    def discrete(self) -> bool:
        return self.spec[6] == 0x02

    def to_raw(self, value: float) -> int:
        """A value in the sensor's unit as the raw byte (clamped); discrete: the state bits."""
        _, _, _, m, k2, signed, _ = self.spec
        if self.discrete:
            return int(value) & 0x7fff
        raw = round(value / (m * 10.0 ** k2))
        if signed:
            return max(-128, min(127, raw)) & 0xff
        return max(0, min(255, raw))

    def threshold_mask(self) -> int:
        return sum(1 << i for i, name in enumerate(THRESHOLD_ORDER) if name in self.thresholds)

    def threshold_raw(self) -> list[int]:
        """Raw thresholds in order lnc, lcr, lnr, unc, ucr, unr (0 where unset)."""
        return [self.to_raw(self.thresholds[n]) if n in self.thresholds else 0
                for n in THRESHOLD_ORDER]


def record(record_id: int, sensor: SensorDef) -> bytes:
    """The SDR (Full for numeric sensors, Compact for discrete ones), header included."""
    stype, rtype, unit, m, k2, signed, kind = sensor.spec
    name = sensor.name.encode("latin-1")[:16]
    mask = sensor.threshold_mask()
    key = bytes([BMC, 0x00, sensor.number, sensor.entity[0], sensor.entity[1],
                 0x67 if sensor.scanning else 0x27,  # init: scanning, events, thresholds...
                 0x48 if mask else 0x40,  # auto re-arm; thresholds readable and settable
                 stype, rtype])
    if kind == 0x02:
        masks = b"\x7f\x00\x7f\x00\x7f\x00"
        body = key + masks + bytes([0, 0, 0, 0x01, 0, 0, 0, 0, 0, 0, 0])
    else:
        masks = bytes([0x95, 0x7a, 0x95, 0x7a, mask, mask])
        r = sensor.threshold_raw()
        body = (key + masks
                + bytes([0x80 if signed else 0x00, unit, 0, 0,  # units 1-3, linear
                         m & 0xff, (m >> 2) & 0xc0, 0, 0, 0, (k2 & 0x0f) << 4,
                         0, 0, 0, 0, 0xff if not signed else 0x7f, 0x00 if not signed else 0x80,
                         r[5], r[4], r[3], r[2], r[1], r[0], 0, 0, 0, 0, 0]))
    body += bytes([0xc0 | len(name)]) + name
    return bytes([record_id & 0xff, record_id >> 8, 0x51, kind, len(body)]) + body


def repository(sensors: list[SensorDef]) -> list[bytes]:
    """The SDR repository for ``sensors``, record ids from 1."""
    return [record(i + 1, s) for i, s in enumerate(sensors)]
