"""The IPMI chassis collector against OpenIPMI's ipmi_sim on 127.0.0.1, checked with ipmitool.

Every test starts its own ipmi_sim on a free UDP port (tests/integration/peers/ipmisim.py)
and always kills it. Values change by rewriting the files ipmi_sim polls.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gpuwatchd.clock import ManualClock, SystemClock
from gpuwatchd.collectors.chassis_ipmi import ChassisIpmiCollector, build
from gpuwatchd.collectors.runner import CollectorRunner
from gpuwatchd.config import BmcConfig, loads
from gpuwatchd.errors import Refused
from gpuwatchd.hardware import Hardware
from gpuwatchd.links import ipmi_pyipmi
from gpuwatchd.links.ipmi import IpmiLink
from gpuwatchd.links.ipmi_pyipmi import ConnectRequest
from gpuwatchd.model import BmcReading, ChassisTemperature, Collected, FanReading, PsuReading
from gpuwatchd.sim.sdr import SensorDef
from tests.integration.peers.ipmisim import DCMI_PLUGIN, IpmiSim, compile_plugin
from tests.procs import wait_until

SENSORS = [
    SensorDef(0x30, "Fan1A RPM", "fan", thresholds={"lower_critical": 600}),
    SensorDef(0x31, "Fan1B RPM", "fan", thresholds={"lower_critical": 600}),
    SensorDef(0x32, "Fan2A RPM", "fan", thresholds={"lower_critical": 600}),
    SensorDef(0x33, "Fan2B RPM", "fan", thresholds={"lower_critical": 600}),
    SensorDef(0x01, "Inlet Temp", "temperature", (0x37, 1),
              {"upper_non_critical": 38, "upper_critical": 42}),
    SensorDef(0x02, "Exhaust Temp", "temperature", (7, 1), {"upper_critical": 70}),
    SensorDef(0x0e, "Temp", "temperature", (3, 1), {"upper_critical": 95}),
    SensorDef(0x0f, "Temp", "temperature", (3, 2), {"upper_critical": 95}),
    SensorDef(0x10, "12V", "voltage", scanning=False),  # ipmitool: "ns"
    SensorDef(0x60, "PS1 Status", "psu", (10, 1)),
    SensorDef(0x61, "PS2 Status", "psu", (10, 2)),
]
MISSING = [SensorDef(0x50, "GPU5 Temp", "temperature")]  # an SDR without a sensor: no reading
VALUES = {0x30: 4800, 0x31: 4680, 0x32: 4920, 0x33: 4560, 0x01: 23, 0x02: 36, 0x0e: 44,
          0x0f: 41, 0x10: 12.0, 0x60: 0x01, 0x61: 0x0b}  # PS2: present, failed, AC lost
PLUGIN_CACHE: dict[str, Path] = {}


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[IpmiSim]:
    if "dcmi" not in PLUGIN_CACHE:
        PLUGIN_CACHE["dcmi"] = compile_plugin(DCMI_PLUGIN, tmp_path)
    watts = tmp_path / "watts.val"
    watts.write_text("455\n")
    peer = IpmiSim(tmp_path, SENSORS, VALUES, sdr_only=MISSING,
                   plugins=[(PLUGIN_CACHE["dcmi"], str(watts))])
    with peer:
        yield peer


def bmc_config(sim: IpmiSim, **kw: Any) -> BmcConfig:
    fields: dict[str, Any] = {"name": "sim", "host": "127.0.0.1", "port": sim.port,
                              "username": "admin", "password_file": str(sim.password_file),
                              "timeout_seconds": 0.5}
    fields.update(kw)
    return BmcConfig(**fields)


def collector(sim: IpmiSim, clock: Any = None, **kw: Any) -> ChassisIpmiCollector:
    cfg = bmc_config(sim, **kw)
    return ChassisIpmiCollector(cfg, IpmiLink(cfg, clock or SystemClock()))


def ipmitool_readings(sim: IpmiSim, interface: str = "lanplus") -> dict[str, str]:
    """``ipmitool sdr elist``: sensor number (hex) -> the reading column."""
    out = {}
    for line in sim.ipmitool("sdr", "elist", interface=interface).splitlines():
        cols = [c.strip() for c in line.split("|")]
        if len(cols) == 5:
            out[cols[1]] = cols[4]
    return out


def by_type(out: Collected, kind: type) -> list[Any]:
    return [r for r in out.readings if isinstance(r, kind)]


def test_rmcpplus_reads_what_ipmitool_reads(sim: IpmiSim) -> None:
    c = collector(sim, cipher_suites=(17, 3))
    out = c.collect()
    assert c.link.cipher_suite == 3, "ipmi_sim declines suite 17; the link falls back to 3"
    tool = ipmitool_readings(sim)
    fans = {f.name: f.rpm for f in by_type(out, FanReading)}
    assert fans == {"Fan1A RPM": 4800, "Fan1B RPM": 4680, "Fan2A RPM": 4920, "Fan2B RPM": 4560}
    assert tool["30h"] == "4800 RPM" and tool["33h"] == "4560 RPM"
    temps = {t.name: t.celsius for t in by_type(out, ChassisTemperature)}
    assert temps == {"Inlet Temp": 23, "Exhaust Temp": 36, "Temp 3.1": 44, "Temp 3.2": 41,
                     "GPU5 Temp": None}
    assert tool["01h"] == "23 degrees C" and tool["0Fh"] == "41 degrees C"
    psus = {p.name: p for p in by_type(out, PsuReading)}
    assert psus["PS1"].up and not psus["PS2"].up and psus["PS2"].ac_lost
    assert "Failure detected" in tool["61h"] and "AC lost" in tool["61h"]
    bmc = by_type(out, BmcReading)[0]
    assert (bmc.vendor, bmc.firmware, bmc.power_watts) == ("Dell", "2.41", 455.0)
    assert "455 Watts" in sim.ipmitool("dcmi", "power", "reading")
    thresholds = re.split(r"\s*\|\s*", next(line for line in sim.ipmitool("sensor").splitlines()
                                           if line.startswith("Inlet Temp")))
    temp = next(t for t in by_type(out, ChassisTemperature) if t.name == "Inlet Temp")
    assert float(thresholds[8]) == temp.upper_critical_celsius == 42.0


def test_values_follow_the_files_ipmi_sim_polls(sim: IpmiSim) -> None:
    c = collector(sim)
    c.collect()
    sim.set(0x30, 9000)
    sim.set(0x02, 52)

    def changed() -> bool:
        out = c.collect()
        fans = {f.name: f.rpm for f in by_type(out, FanReading)}
        temps = {t.name: t.celsius for t in by_type(out, ChassisTemperature)}
        return fans["Fan1A RPM"] == 9000 and temps["Exhaust Temp"] == 52
    wait_until(changed, 3.0, "the new values")
    assert ipmitool_readings(sim)["30h"] == "9000 RPM"


def test_ipmi_15_lan_when_configured(sim: IpmiSim) -> None:
    c = collector(sim, ipmi_version="1.5")
    out = c.collect()
    assert c.link.interface == "rmcp" and by_type(out, BmcReading)[0].up
    fans = {f.name: f.rpm for f in by_type(out, FanReading)}
    assert fans["Fan2A RPM"] == 4920
    assert ipmitool_readings(sim, interface="lan")["32h"] == "4920 RPM"


def test_sensors_without_a_reading_are_absent_not_zero(sim: IpmiSim) -> None:
    out = collector(sim).collect()
    tool = ipmitool_readings(sim)
    assert tool["10h"] == "Disabled" and tool["50h"] == "No Reading"
    states = {dict(s.labels)["sensor"]: dict(s.labels)["state"] for f in out.families
              if f.name == "gpuwatchd_bmc_sensor_state" for s in f.samples if s.value == 1.0}
    assert states["12V"] == states["GPU5 Temp"] == "no_reading"
    assert states["Inlet Temp"] == "ok"
    names = {dict(s.labels).get("sensor") for f in out.families
             if f.name in ("gpuwatchd_voltage_volts", "gpuwatchd_temperature_celsius")
             for s in f.samples}
    assert "12V" not in names and "GPU5 Temp" not in names and "Exhaust Temp" in names


def _up(out: Collected) -> bool:
    reading = by_type(out, BmcReading)[0]
    return bool(reading.up)


def test_bmc_killed_and_restarted_session_reopened(sim: IpmiSim) -> None:
    clock = ManualClock()
    c = collector(sim, clock)
    assert _up(c.collect())
    sim.kill()
    started = time.monotonic()
    out = c.collect()
    assert not _up(out) and time.monotonic() - started < 1.0  # ICMP unreachable: fast
    assert not [f for f in out.families if f.name == "gpuwatchd_fan_speed_rpm"]
    assert not _up(c.collect()), "the re-open fails too: the backoff starts"
    sim.sensors.append(SensorDef(0x34, "Fan3A RPM", "fan"))  # the rebooted BMC has a new fan
    sim.set(0x34, 3000)
    sim._write_config()
    sim.start()
    assert not _up(c.collect()), "still inside the backoff: no attempt yet"
    clock.advance(1.0)
    out = c.collect()
    assert _up(out)
    assert c.link.sessions_opened == 2 and c._sdr_reads == 2, "new SDR read after the reboot"
    assert len(c.link.errors) >= 1
    assert {f.name for f in by_type(out, FanReading)} >= {"Fan1A RPM", "Fan3A RPM"}


class _PauseAfter:
    """A real python-ipmi session that SIGSTOPs ipmi_sim before its n-th command."""

    def __init__(self, sim: IpmiSim, n: int) -> None:
        self.sim, self.n = sim, n

    def __call__(self, req: ConnectRequest) -> Any:
        conn = ipmi_pyipmi.connect(req)
        real = conn.send_raw

        def send_raw(lun: int, netfn: int, raw: bytes) -> bytes:
            self.n -= 1
            if self.n == 0:  # once
                self.sim.pause()
            return real(lun, netfn, raw)
        conn.send_raw = send_raw  # type: ignore[method-assign]
        return conn


def test_a_bmc_that_stops_answering_mid_tick_does_not_hold_the_loop(sim: IpmiSim) -> None:
    cfg = loads(f"""
interval_seconds: 2
gpus: {{enabled: false}}
bmcs:
  - {{name: sim, host: 127.0.0.1, port: {sim.port}, username: admin,
     password_file: {sim.password_file}, timeout_seconds: 0.4}}
""")
    clock = SystemClock()
    scheduled = build(cfg, Hardware(clock=clock, ipmi_peers={"sim": _PauseAfter(sim, 12)}))[0]
    assert scheduled.deadline_seconds == pytest.approx(0.9)
    runner = CollectorRunner(scheduled, clock)
    try:
        started = time.monotonic()
        assert runner.start_if_due()
        result = runner.finish()  # SIGSTOP during this tick's sensor reads
        elapsed = time.monotonic() - started
        assert elapsed < scheduled.deadline_seconds + 0.2, f"tick took {elapsed:.2f} s"
        bmc = result.collected.readings[0]
        assert isinstance(bmc, BmcReading) and not bmc.up and "no reply" in bmc.error
        sim.resume()
        time.sleep(1.0)  # the first re-open waits out a 1 s backoff
        runner._next_due = float("-inf")
        runner.start_if_due()
        assert runner.finish().collected.readings[0].up  # type: ignore[attr-defined]
    finally:
        sim.resume()
        runner.close()


@pytest.mark.parametrize("version", ["2.0", "1.5"])
def test_wrong_password_is_a_clear_error_without_the_secret(
        sim: IpmiSim, tmp_path: Path, version: str, caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "Wr0ng-Pass-x9"
    secret = tmp_path / "wrong.password"
    secret.write_text(wrong)
    secret.chmod(0o600)
    c = collector(sim, password_file=str(secret), ipmi_version=version, timeout_seconds=0.3)
    out = c.collect()
    bmc = by_type(out, BmcReading)[0]
    assert not bmc.up
    assert f"BMC sim (127.0.0.1:{sim.port})" in bmc.error
    assert ("wrong password" in bmc.error if version == "2.0"
            else "wrong user name or password" in bmc.error)
    with pytest.raises(Exception) as info:
        IpmiLink(bmc_config(sim, password_file=str(secret)), SystemClock()).open()
    if version == "2.0":
        assert isinstance(info.value, Refused)
    captured = capsys.readouterr()
    exposition = repr(out.families)
    for text in (caplog.text, captured.out, captured.err, bmc.error, str(info.value),
                 exposition):
        assert wrong not in text and sim.password not in text
