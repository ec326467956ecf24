"""SDR decoding, conversion and the repository walk, over bytes."""

from __future__ import annotations

import struct

import pytest

from gpuwatchd.errors import Refused
from gpuwatchd.links import ipmi_sdr as sdr
from gpuwatchd.sim.sdr import SensorDef, record

# A Full Sensor Record written out by hand from IPMI 2.0 table 43-1 ("Inlet Temp", entity 7.1,
# two's complement, M=1, unit degrees C, upper critical 42, upper non-critical 38, lower
# critical -7), independent of the encoder in gpuwatchd.sim.sdr.
INLET = bytes.fromhex(
    "0400" "51" "01" "35"  # id 4, version 1.5, Full, 53 bytes follow
    "20" "00" "04" "07" "01" "7f" "68" "01" "01"  # owner, lun, number, entity, init, caps
    "8032" "8032" "2d2d"  # masks
    "80" "01" "00" "00"  # two's complement, degrees C, no modifier, linear
    "01" "00" "00" "00" "00" "00"  # M=1, B=0, accuracy, K2=0 K1=0
    "00" "00" "00" "00" "7f" "80"  # analog flags, nominal, normal max/min, sensor max/min
    "00" "2a" "26" "00" "f9" "00"  # UNR -, UCR 42, UNC 38, LNR -, LCR -7, LNC -
    "02" "02" "0000" "00"  # hysteresis, reserved, OEM
    "ca" + b"Inlet Temp".hex())


def test_a_vendor_full_record_decodes() -> None:
    rec = sdr.parse_sdr(INLET)
    assert rec is not None
    assert (rec.name, rec.number, rec.entity_id, rec.entity_instance) == ("Inlet Temp", 4, 7, 1)
    assert (rec.sensor_type, rec.unit, rec.analog, rec.threshold_access) == (1, 1, True, 2)
    assert rec.convert(0x19) == 25.0
    assert rec.convert(0xf9) == -7.0  # two's complement


@pytest.mark.parametrize(("kind", "value"), [
    ("fan", 7560.0), ("temperature", -12.0), ("voltage", 12.06), ("power", 415.0)])
def test_encoded_records_round_trip_through_the_decoder(kind: str, value: float) -> None:
    sensor = SensorDef(0x31, "Some Sensor", kind, (7, 2), {"upper_critical": value})
    rec = sdr.parse_sdr(record(9, sensor))
    assert rec is not None and rec.name == "Some Sensor" and rec.entity_instance == 2
    assert rec.convert(sensor.to_raw(value)) == pytest.approx(value, abs=0.01)
    thresholds = sdr.parse_thresholds(rec, bytes([sensor.threshold_mask(),
                                                  *sensor.threshold_raw()]))
    assert thresholds == (("upper_critical", pytest.approx(value, abs=0.01)),)


def test_m_and_exponents_are_signed_and_nonlinear_sensors_are_linearised() -> None:
    data = bytearray(record(1, SensorDef(1, "X", "voltage")))
    data[24], data[25], data[29] = 0xfe, 0xc0, 0xe1  # M = -2, K2 = -2, K1 = 1
    rec = sdr.parse_sdr(bytes(data))
    assert rec is not None and (rec.m, rec.k2, rec.k1) == (-2, -2, 1)
    data[23] = 8  # sqr
    rec = sdr.parse_sdr(bytes(data))
    assert rec is not None and rec.convert(5) == pytest.approx((-10 * 0.01) ** 2)


def test_records_of_other_owners_and_types_are_skipped() -> None:
    data = bytearray(record(1, SensorDef(1, "ME Temp", "temperature")))
    data[5] = 0x2c  # owned by the Intel ME: needs bridging
    assert sdr.parse_sdr(bytes(data)) is None
    assert sdr.parse_sdr(bytes([1, 0, 0x51, 0x12, 3, 0, 0, 0])) is None  # MC locator
    assert sdr.parse_sdr(b"\x01\x00") is None


def test_reading_flags_and_states() -> None:
    assert sdr.parse_reading(b"\x19\xc0\x10\x80").has_value
    assert not sdr.parse_reading(b"\x00\x80\x00").has_value  # scanning disabled: "ns"
    assert not sdr.parse_reading(b"\x00\xe0\x00").has_value  # reading unavailable
    assert sdr.parse_reading(b"\x00\xc0\x03\x81").states == 0x103


def _peer(records: list[bytes], max_chunk: int = 255, cancel_once: bool = False
          ) -> tuple[sdr.RawFn, list[bytes]]:
    """A repository answering Get SDR like a BMC; records the requests."""
    requests: list[bytes] = []
    state = {"cancel": cancel_once}

    def raw(netfn: int, cmd: int, data: bytes) -> bytes:
        requests.append(bytes([cmd]) + data)
        if cmd == 0x22:
            return b"\x07\x00"
        rid, offset, count = struct.unpack_from("<HBB", data, 2)
        if state["cancel"] and offset > 0:
            state["cancel"] = False
            raise Refused("reservation cancelled", 0xc5)
        if count > max_chunk:
            raise Refused("cannot return that many bytes", 0xca)
        index = max(rid, 1) - 1
        nxt = index + 2 if index + 1 < len(records) else 0xffff
        return struct.pack("<H", nxt) + records[index][offset:offset + count]
    return raw, requests


def test_the_walk_reads_whole_records_when_the_bmc_can() -> None:
    records = [record(i + 1, SensorDef(i, f"Fan{i}", "fan")) for i in range(3)]
    raw, requests = _peer(records)
    assert [r.name for r in sdr.read_repository(raw)] == ["Fan0", "Fan1", "Fan2"]
    assert len(requests) == 1 + 3 * 2  # reserve, then header + body per record


def test_the_walk_falls_back_to_small_chunks() -> None:
    records = [record(1, SensorDef(1, "Exhaust Temp", "temperature"))]
    raw, requests = _peer(records, max_chunk=16)
    assert [r.name for r in sdr.read_repository(raw)] == ["Exhaust Temp"]
    body = [req[-1] for req in requests if req[0] == 0x23 and req[-2] > 0]  # offset > 0
    assert body[0] > 16 and body[1:] and all(n <= 16 for n in body[1:])


def test_a_cancelled_reservation_restarts_the_walk() -> None:
    records = [record(1, SensorDef(1, "A", "fan")), record(2, SensorDef(2, "B", "fan"))]
    raw, requests = _peer(records, cancel_once=True)
    assert [r.name for r in sdr.read_repository(raw)] == ["A", "B"]
    assert sum(1 for r in requests if r[0] == 0x22) == 2
