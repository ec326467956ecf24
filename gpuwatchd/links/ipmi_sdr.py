"""IPMI response decoding: Get Device ID, the SDR repository, sensor readings, thresholds.

Plain functions over bytes (IPMI 2.0 rev 1.1 sections 20.1, 33, 35, 43), so they are tested
without a BMC. :func:`read_repository` walks the SDR repository with the ``raw`` callable of
an IpmiLink (``ipmitool sdr dump`` does the same walk). Only records the BMC owns (owner
0x20) are read; sensors of other controllers (an Intel ME at 0x2c) need bridging and are
skipped.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from dataclasses import dataclass

from gpuwatchd.errors import Refused, Transient
from gpuwatchd.model import THRESHOLD_NAMES, SensorState, ThresholdName, Thresholds

RawFn = Callable[[int, int, bytes], bytes]  # (netfn, cmd, data) -> response data after cc

VENDORS = {674: "Dell", 10876: "Supermicro", 11: "HPE", 19046: "Lenovo"}  # IANA numbers
NETFN_SENSOR, NETFN_STORAGE = 0x04, 0x0a
FULL, COMPACT = 0x01, 0x02
BMC_OWNER = 0x20
SDR_CHUNK = 16  # bytes per Get SDR when a BMC cannot return a whole record (cc 0xca)
_RETRY_CC = frozenset({0xc7, 0xc8, 0xca, 0xff})  # "cannot return that many bytes" variants

# sensor type codes (table 42-3) and unit codes (table 43-15)
TEMPERATURE, VOLTAGE, CURRENT, FAN, POWER_SUPPLY, OTHER_UNITS = 0x01, 0x02, 0x03, 0x04, 0x08, 0x0b
UNIT_CELSIUS, UNIT_FAHRENHEIT, UNIT_KELVIN = 1, 2, 3
UNIT_VOLTS, UNIT_AMPS, UNIT_WATTS, UNIT_RPM = 4, 5, 6, 18
THRESHOLD_READING = 0x01
REDUNDANCY_READING = 0x0b
SENSOR_SPECIFIC = 0x6f
THRESHOLDS: tuple[ThresholdName, ...] = THRESHOLD_NAMES  # Get Sensor Thresholds bit order
_LINEAR: dict[int, Callable[[float], float]] = {
    0: lambda x: x, 1: math.log, 2: math.log10, 3: math.log2, 4: math.exp,
    5: lambda x: 10 ** x, 6: lambda x: 2 ** x, 7: lambda x: 1 / x, 8: lambda x: x * x,
    9: lambda x: x ** 3, 10: math.sqrt, 11: lambda x: x ** (1 / 3)}


@dataclass(frozen=True)
class DeviceId:
    """Get Device ID (``ipmitool mc info``): who made the BMC and its firmware."""

    manufacturer_id: int
    product_id: int
    firmware: str
    ipmi_version: str

    @property
    def vendor(self) -> str:
        """Dell, Supermicro, HPE, Lenovo, or the IANA enterprise number."""
        return VENDORS.get(self.manufacturer_id, str(self.manufacturer_id))


def parse_device_id(data: bytes) -> DeviceId | None:
    """Decode Get Device ID's response data (after the completion code); None if short."""
    if len(data) < 11:
        return None
    manufacturer = int.from_bytes(data[6:9], "little") & 0x0fffff
    return DeviceId(manufacturer_id=manufacturer, product_id=int.from_bytes(data[9:11], "little"),
                    firmware=f"{data[2] & 0x7f}.{data[3]:02x}",
                    ipmi_version=f"{data[4] & 0x0f}.{data[4] >> 4}")


@dataclass(frozen=True)
class SdrRecord:
    """One Full (0x01) or Compact (0x02) sensor record, the fields gpuwatchd uses."""

    record_type: int
    number: int
    lun: int
    entity_id: int
    entity_instance: int
    sensor_type: int
    reading_type: int
    name: str
    unit: int = 0
    percentage: bool = False
    analog_format: int = 0  # 0 unsigned, 1 one's complement, 2 two's complement, 3 none
    m: int = 1
    b: int = 0
    k1: int = 0
    k2: int = 0
    linearization: int = 0
    threshold_access: int = 0  # 0 none, 1 readable, 2 readable and settable, 3 fixed

    @property
    def numeric(self) -> bool:
        """True for a Full record with a numeric reading, whatever its reading type.

        NOTE(HPE iLO 4 2.x, ProLiant Gen9): "Fan Block N" (percent) and "Power Meter" (watts)
        are Full records with a discrete or OEM reading type and a numeric value
        (``ipmitool sdr -v``: "Sensor Type (Discrete): Fan ... Sensor Reading: 34.496
        percent"); ipmitool prints their values, so gpuwatchd reads them too.
        """
        return self.record_type == FULL and self.analog_format != 3

    @property
    def analog(self) -> bool:
        """True for a threshold-based sensor with a numeric reading (it has thresholds)."""
        return self.numeric and self.reading_type == THRESHOLD_READING

    @property
    def sensor_id(self) -> str:
        """The sensor number as ``ipmitool sdr elist`` writes it: ``2Ah`` (``1:2Ah`` on LUN 1)."""
        return f"{self.lun}:{self.number:02X}h" if self.lun else f"{self.number:02X}h"

    def convert(self, raw: int) -> float | None:
        """``y = L[(M*x + B*10^K1) * 10^K2]`` in the record's unit (None if undefined)."""
        if self.analog_format == 1 and raw & 0x80:
            raw = -((raw ^ 0xff) & 0x7f)
        elif self.analog_format == 2 and raw & 0x80:
            raw -= 0x100
        value = (self.m * raw + self.b * 10.0 ** self.k1) * 10.0 ** self.k2
        try:
            return _LINEAR.get(self.linearization, _LINEAR[0])(value)
        except (ValueError, ZeroDivisionError, OverflowError):
            return None


def celsius(unit: int, value: float) -> float:
    """A temperature in the record's unit (``UNIT_*``) in degrees Celsius."""
    if unit == UNIT_FAHRENHEIT:
        return (value - 32.0) * 5.0 / 9.0
    return value - 273.15 if unit == UNIT_KELVIN else value


def threshold_state(states: int) -> SensorState:
    """Threshold comparison bits of Get Sensor Reading: 0-2 at/below LNC/LCR/LNR, 3-5
    at/above UNC/UCR/UNR."""
    if states & 0b110110:
        return "critical"
    return "warning" if states & 0b001001 else "ok"


def _signed(value: int, bits: int) -> int:
    return value - (1 << bits) if value & (1 << (bits - 1)) else value


def parse_sdr(data: bytes) -> SdrRecord | None:
    """Decode one record (header included); None for other types, owners or a short record."""
    if len(data) < 5 or data[3] not in (FULL, COMPACT) or len(data) < 5 + data[4]:
        return None
    kind = data[3]
    name_at = 47 if kind == FULL else 31  # offset of the ID string type/length byte
    if data[5] != BMC_OWNER or len(data) <= name_at:
        return None
    code = data[name_at]
    raw_name = data[name_at + 1:name_at + 1 + (code & 0x1f)]
    name = raw_name.split(b"\0")[0].decode("latin-1").strip() if code >> 6 == 3 else ""
    common = {"record_type": kind, "number": data[7], "lun": data[6] & 0x03,
              "entity_id": data[8], "entity_instance": data[9], "sensor_type": data[12],
              "reading_type": data[13], "name": name, "unit": data[21],
              "percentage": bool(data[20] & 0x01),
              "threshold_access": (data[11] >> 2) & 0x03}
    if kind == COMPACT:
        return SdrRecord(**common)  # type: ignore[arg-type]
    return SdrRecord(
        **common,  # type: ignore[arg-type]
        analog_format=data[20] >> 6, linearization=data[23] & 0x7f,
        m=_signed(data[24] | (data[25] & 0xc0) << 2, 10),
        b=_signed(data[26] | (data[27] & 0xc0) << 2, 10),
        k2=_signed(data[29] >> 4, 4), k1=_signed(data[29] & 0x0f, 4))


@dataclass(frozen=True)
class RepositoryInfo:
    """Get SDR Repository Info: changes when a record is added or the repository erased."""

    record_count: int
    most_recent_addition: int
    most_recent_erase: int


def parse_repository_info(data: bytes) -> RepositoryInfo:
    """Decode Get SDR Repository Info (``ipmitool sdr info``)."""
    if len(data) < 13:
        raise Transient(f"short SDR repository info ({len(data)} bytes)")
    count, _free, added, erased = struct.unpack_from("<HHII", data, 1)
    return RepositoryInfo(count, added, erased)


def read_repository(raw: RawFn) -> list[SdrRecord]:
    """Every BMC-owned Full/Compact sensor record (``ipmitool sdr dump`` does this walk)."""
    return [r for data in read_records(raw) if (r := parse_sdr(data)) is not None]


def read_records(raw: RawFn) -> list[bytes]:
    """Every record of the SDR repository as the BMC sent it, header included
    (``ipmitool sdr dump FILE``; ``gpuwatchctl dump`` writes them as hex).

    Reserve SDR Repository (0x0a 0x22), then Get SDR (0x0a 0x23) per record: the 5-byte
    header first, then the body at once or, when the BMC says it cannot return that many
    bytes, in 16-byte pieces. A reservation cancelled mid-walk (the repository changed)
    restarts the walk, at most three times.
    """
    for _attempt in range(3):
        try:
            return _walk(raw)
        except Refused as exc:
            if exc.code != 0xc5:  # reservation cancelled
                raise
    raise Transient("the SDR repository kept changing during the read")


def _walk(raw: RawFn) -> list[bytes]:
    reservation = raw(NETFN_STORAGE, 0x22, b"")[:2]
    records: list[bytes] = []
    record_id, seen = 0, set[int]()
    chunk = 0xff
    while record_id != 0xffff and record_id not in seen and len(seen) < 4096:
        seen.add(record_id)
        head = raw(NETFN_STORAGE, 0x23, reservation + struct.pack("<HBB", record_id, 0, 5))
        next_id, header = struct.unpack_from("<H", head)[0], head[2:7]
        body, chunk = _read_body(raw, reservation, record_id, header[4], chunk)
        records.append(header + body)
        record_id = next_id
    return records


def _read_body(raw: RawFn, reservation: bytes, record_id: int, length: int,
               chunk: int) -> tuple[bytes, int]:
    body = b""
    while len(body) < length:
        size = min(length - len(body), chunk)
        request = reservation + struct.pack("<HBB", record_id, 5 + len(body), size)
        try:
            body += raw(NETFN_STORAGE, 0x23, request)[2:]
        except Refused as exc:
            if exc.code not in _RETRY_CC or chunk == SDR_CHUNK:
                raise
            chunk = SDR_CHUNK
    return body[:length], chunk


@dataclass(frozen=True)
class SensorReading:
    """Get Sensor Reading (``ipmitool raw 0x04 0x2d N``)."""

    raw: int
    scanning: bool
    unavailable: bool
    states: int

    @property
    def has_value(self) -> bool:
        """False when the BMC says there is no reading ("ns" in ``ipmitool sdr``)."""
        return self.scanning and not self.unavailable


def parse_reading(data: bytes) -> SensorReading:
    """Decode Get Sensor Reading's response data."""
    if len(data) < 2:
        raise Transient(f"short sensor reading ({len(data)} bytes)")
    states = data[2] if len(data) > 2 else 0
    if len(data) > 3:
        states |= (data[3] & 0x7f) << 8
    return SensorReading(data[0], bool(data[1] & 0x40), bool(data[1] & 0x20), states)


def parse_thresholds(record: SdrRecord, data: bytes) -> Thresholds:
    """Get Sensor Thresholds (``ipmitool raw 0x04 0x27 N``) in the record's unit, in bit order
    (lower non-critical, critical, non-recoverable, then the upper ones); readable ones only."""
    if len(data) < 7:
        return ()
    out: list[tuple[ThresholdName, float]] = []
    for bit, name in enumerate(THRESHOLDS):
        if data[0] & (1 << bit):
            value = record.convert(data[1 + bit])
            if value is not None:
                out.append((name, value))
    return tuple(out)
