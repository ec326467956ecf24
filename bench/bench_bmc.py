"""Per-tick BMC read cost: gpuwatchd vs ``ipmitool sdr`` per tick vs prometheus-ipmi-exporter.

All three read the same OpenIPMI ``ipmi_sim`` on 127.0.0.1 (tests/integration/peers), emulating
a BMC with 16 fans, 8 temperatures and 2 PSUs (26 sensors), over RMCP+ cipher suite 3:

- gpuwatchd: one chassis_ipmi tick (SDR repository info, 26 Get Sensor Reading, on the session
  kept open across ticks; the SDR itself was read once);
- ``ipmitool -I lanplus -C 3 ... sdr`` spawned once per tick (what cron/shell scripts do: a
  process, a session and a full SDR walk every time);
- one scrape of Debian's prometheus-ipmi-exporter (``/ipmi?target=...``, collectors bmc and
  ipmi: the same information; FreeIPMI processes with their own sessions, SDR cached on disk).
  This is the anchor: every row prints its ratio to it.

Then ``/metrics`` latency of a running gpuwatchd (interval 1 s) while that BMC is healthy,
hung (ipmi_sim SIGSTOPped: no answer at all) and dead (killed: port unreachable), against
``GET /`` on the same server and connection.

Usage: ``.venv/bin/python bench/bench_bmc.py [--ticks 300] [--spawns 30]``
(needs openipmi, ipmitool, freeipmi-tools, prometheus-ipmi-exporter).
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gpuwatchd.clock import SystemClock  # noqa: E402
from gpuwatchd.collectors.chassis_ipmi import ChassisIpmiCollector  # noqa: E402
from gpuwatchd.config import BmcConfig, loads  # noqa: E402
from gpuwatchd.daemon.service import Daemon  # noqa: E402
from gpuwatchd.hardware import Hardware  # noqa: E402
from gpuwatchd.links.ipmi import IpmiLink  # noqa: E402
from gpuwatchd.sim.sdr import SensorDef  # noqa: E402
from tests.integration.peers.ipmisim import IpmiSim  # noqa: E402
from tests.procs import free_port, require, stop, wait_until  # noqa: E402


def chassis() -> tuple[list[SensorDef], dict[int, float]]:
    """16 fan rotors, 8 temperatures, 2 PSUs."""
    sensors = [SensorDef(0x30 + i, f"Fan{i // 2 + 1}{'AB'[i % 2]}", "fan",
                         thresholds={"lower_critical": 360}) for i in range(16)]
    sensors += [SensorDef(0x01 + i, name, "temperature", (7, 1), {"upper_critical": 90})
                for i, name in enumerate(["Inlet Temp", "Exhaust Temp", "CPU1 Temp",
                                          "CPU2 Temp", "DIMM Temp", "PCH Temp", "GPU1 Temp",
                                          "GPU2 Temp"])]
    sensors += [SensorDef(0x60, "PS1 Status", "psu", (10, 1)),
                SensorDef(0x61, "PS2 Status", "psu", (10, 2))]
    values = {s.number: 4800 + 60 * (s.number & 1) for s in sensors if s.kind == "fan"}
    values.update({s.number: 30 + s.number for s in sensors if s.kind == "temperature"})
    values.update({0x60: 0x01, 0x61: 0x0b})
    return sensors, values


def timed(fn: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def exporter(sim: IpmiSim, work: Path) -> tuple[subprocess.Popen[bytes], int]:
    binary = require("prometheus-ipmi-exporter", "prometheus-ipmi-exporter")
    config = work / "ipmi_remote.yml"
    config.write_text(f"""modules:
  default:
    user: "{sim.username}"
    pass: "{sim.password}"
    driver: "LAN_2_0"
    privilege: "admin"
    timeout: 10000
    collectors: [bmc, ipmi]
    workaround_flags: [opensesspriv]
""")
    config.chmod(0o600)
    port = free_port()
    env = dict(os.environ, HOME=str(work))  # FreeIPMI's SDR cache goes under $HOME
    proc = subprocess.Popen([binary, f"--config.file={config}",
                             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: _get(f"http://127.0.0.1:{port}/metrics"), 10, "ipmi_exporter")
    return proc, port


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=15) as resp:  # noqa: S310 - 127.0.0.1 only
        return bytes(resp.read())


def read_costs(sim: IpmiSim, work: Path, ticks: int, spawns: int) -> list[tuple[str, float]]:
    cfg = BmcConfig(name="sim", host="127.0.0.1", port=sim.port, username=sim.username,
                    password_file=str(sim.password_file), cipher_suites=(3,))
    collector = ChassisIpmiCollector(cfg, IpmiLink(cfg, SystemClock()))
    collector.collect()  # session + SDR, once
    before = collector.link.requests
    ours = statistics.median(timed(collector.collect, ticks))
    per_tick = (collector.link.requests - before) / ticks
    fans = sum(1 for r in collector.collect().readings if type(r).__name__ == "FanReading")
    assert fans == 16, fans
    collector.close()

    sim.ipmitool("sdr")  # warm the page cache for the binary
    tool = statistics.median(timed(lambda: sim.ipmitool("sdr"), spawns))

    proc, port = exporter(sim, work)
    try:
        url = f"http://127.0.0.1:{port}/ipmi?target=127.0.0.1:{sim.port}&module=default"
        body = _get(url)  # first scrape fills FreeIPMI's SDR cache
        assert b'ipmi_up{collector="ipmi"} 1' in body, body[-400:]
        scrape = statistics.median(timed(lambda: _get(url), spawns))
    finally:
        stop(proc)
    return [(f"gpuwatchd chassis_ipmi tick ({per_tick:.0f} IPMI commands, 1 session)", ours),
            ("ipmitool -I lanplus -C 3 sdr, spawned per tick", tool),
            ("anchor: prometheus-ipmi-exporter scrape (bmc + ipmi)", scrape)]


def metrics_latency(sim: IpmiSim, work: Path, n: int) -> list[tuple[str, list[float]]]:
    port = free_port()
    cfg = loads(f"""
interval_seconds: 1
status_socket: {work}/status.sock
gpus: {{enabled: false}}
exporter: {{listen: ["127.0.0.1:{port}"]}}
bmcs:
  - {{name: sim, host: 127.0.0.1, port: {sim.port}, username: {sim.username},
     password_file: {sim.password_file}, cipher_suites: [3], timeout_seconds: 2}}
""")
    daemon = Daemon(cfg, Hardware())
    daemon.start()
    loop = threading.Thread(target=daemon.run, daemon=True)
    loop.start()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def get(path: str) -> None:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()

    def sample(label: str) -> list[tuple[str, list[float]]]:
        return [(f"GET / ({label})", timed(lambda: get("/"), n)),
                (f"GET /metrics ({label})", timed(lambda: get("/metrics"), n))]

    try:
        wait_until(lambda: b"gpuwatchd_bmc_up{bmc=\"sim\"} 1.0" in _get(
            f"http://127.0.0.1:{port}/metrics"), 10, "bmc_up 1")
        rows = sample("BMC healthy")
        sim.pause()
        time.sleep(2.5)  # a tick or two waiting on the hung BMC
        rows += sample("BMC hung, SIGSTOP")
        sim.kill()
        time.sleep(1.5)
        rows += sample("BMC dead, killed")
    finally:
        daemon.request_stop()
        loop.join(10)
        conn.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ticks", type=int, default=300)
    parser.add_argument("--spawns", type=int, default=30)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-bmc-"))
    sensors, values = chassis()
    with IpmiSim(work, sensors, values) as sim:
        rows = read_costs(sim, work, args.ticks, args.spawns)
        anchor = rows[-1][1]
        print(f"BMC read per tick, ipmi_sim with {len(sensors)} sensors (median, ms):")
        for name, ms in rows:
            print(f"  {name:62s} {ms:8.2f} ms  {ms / anchor:7.3f} x anchor")
        latency = metrics_latency(sim, work, 300)
    print("/metrics latency of a running gpuwatchd (p50 / p99, ms):")
    base = statistics.median(latency[0][1])
    for name, samples in latency:
        p50, p99 = statistics.median(samples), percentile(samples, 0.99)
        print(f"  {name:40s} {p50:6.2f} / {p99:6.2f} ms  {p50 / base:5.2f} x GET / healthy")


if __name__ == "__main__":
    main()
