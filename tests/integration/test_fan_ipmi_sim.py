"""Fan control end to end through real protocols: the daemon process, OpenIPMI's ipmi_sim with
an OEM plugin (C, compiled here) that turns Dell duty commands into fan rpm, and the fake
libnvidia-ml.so.1 loaded by the real nvidia-ml-py, whose GPU temperature follows the thermal
plant (a loop in this test steps gpuwatchd.sim.plant with the duty the plugin received).

Also: the hand-back on SIGTERM, ``gpuwatchctl failsafe`` after SIGKILL, and 0xd4 at the
process level. Every process is killed in teardown; every wait is bounded.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from gpuwatchd.sim.plant import P40, ThermalPlant
from gpuwatchd.sim.sdr import SensorDef
from gpuwatchd.status.client import query
from tests.fakes.fakenvml import FakeNvmlState, build_fake_nvml
from tests.integration.peers.ipmisim import IpmiSim, compile_plugin
from tests.procs import free_port, gpuwatchd_cmd, stop, wait_until

pytestmark = pytest.mark.peer

HERE = Path(__file__).resolve().parent
PLUGIN = HERE / "peers" / "oem_fan.c"
FANS = [SensorDef(0x30 + i, f"Fan{i + 1} RPM", "fan",
                  thresholds={"lower_critical": 360, "lower_non_critical": 600})
        for i in range(4)]
SENSORS = [*FANS, SensorDef(0x04, "Inlet Temp", "temperature", (0x37, 1))]
# A GPU with a small heatsink (time constant seconds, not minutes) so the loop settles within
# a test; the PID gains in CONFIG are scaled to it (and the quiet-loop windows, in seconds of
# a 2-minute heatsink, are off).
FAST_GPU = replace(P40, sink_joules_per_kelvin=40.0, die_joules_per_kelvin=4.0)
SETPOINT = 65.0
CONFIG = """\
interval_seconds: 0.25
status_socket: {socket}
gpus:
  enabled: true
  library_path: {lib}
  xid_events: false
  deadline_seconds: 0.2
bmcs:
  - name: sim
    host: 127.0.0.1
    port: {port}
    username: admin
    password_file: {password}
    cipher_suites: [3]
    timeout_seconds: 0.5
    interval_seconds: 0.5
fan_control:
  driver: dell
  bmc: sim
  write_deadline_seconds: 0.25
  state_directory: {state}
  dell: {{fan_count: 4, third_party_pcie_response: disable}}
  zones:
    - name: gpu
      inputs: ["gpu:*"]
      setpoint_celsius: {setpoint}
      ceiling_celsius: 90
      min_duty: 0.15
      kp: 0.06
      ki: 0.03
      kd: 0.05
      derivative_filter_seconds: 0.5
      derivative_window_seconds: 0
      error_deadband_celsius: 0
      feedforward_duty_per_watt: 0
      write_deadband_ratio: 0
      min_dwell_seconds: 0
      slew_up_per_second: 0.5
      slew_down_per_second: 0.2
      stale_after_seconds: 1.0
      failsafe_hold_seconds: 2
"""


@dataclass
class Bed:
    sim: IpmiSim
    state: FakeNvmlState
    config: Path
    socket: Path
    env: dict[str, str]

    def oem(self) -> list[str]:
        log = self.sim.workdir / "oem.log"
        return log.read_text().splitlines() if log.exists() else []

    def mode(self) -> str:
        return (self.sim.workdir / "fan.mode").read_text().strip()

    def duty(self) -> float:
        return int((self.sim.workdir / "fan.duty").read_text()) / 100.0

    def start(self) -> subprocess.Popen[str]:
        return subprocess.Popen(
            gpuwatchd_cmd("--config", str(self.config), "--web.listen-address",
                          f"127.0.0.1:{free_port()}", "--log.level", "debug"),
            env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def zone(self) -> dict[str, Any]:
        doc = query(str(self.socket), 2.0)
        return dict(doc["fan_control"]["zones"][0])


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    where = tmp_path_factory.mktemp("builds")
    return compile_plugin(PLUGIN, where), build_fake_nvml(where)


@pytest.fixture
def bed(tmp_path: Path, builds: tuple[Path, Path]) -> Iterator[Bed]:
    plugin, lib = builds
    work = tmp_path / "bmc"
    work.mkdir()
    sim = IpmiSim(work, SENSORS, {0x04: 24}, firmware=(2, 0x30),
                  plugins=[(plugin, f"{work} 0x30 {len(FANS)}")])
    state = FakeNvmlState(tmp_path / "nvml.state", gpus=1)
    state.gpus[0].update({"temperature.0": 60, "margin": 32, "power_mw": 250_000})
    state.write()
    sock = tmp_path / "status.sock"
    config = tmp_path / "gpuwatchd.yaml"
    config.write_text(CONFIG.format(socket=sock, lib=lib, port=sim.port,
                                    password=sim.password_file, state=tmp_path / "state",
                                    setpoint=SETPOINT))
    env = {**os.environ, **state.env()}
    env.pop("NOTIFY_SOCKET", None)
    with sim:
        yield Bed(sim, state, config, sock, env)


class PlantLoop:
    """Steps a thermal plant in real time with the duty the plugin reports, and writes the GPU
    temperature and power into the fake NVML state (every 50 ms)."""

    def __init__(self, bed: Bed) -> None:
        self.bed = bed
        self.watts = 250.0
        self.plant = ThermalPlant(1, 1, gpu_spec=FAST_GPU, profiles=[lambda t: self.watts],
                                  duty=0.8)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._start = time.monotonic()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            try:
                self.plant.set_duty(self.bed.duty())
            except (OSError, ValueError):
                pass  # the plugin is rewriting the file: next time
            self.plant.advance_to(time.monotonic() - self._start)
            gpu = self.plant.gpu(0)
            self.bed.state.gpus[0].update({
                "temperature.0": round(gpu.temperature_celsius),
                "margin": round(92 - gpu.temperature_celsius),
                "power_mw": round(gpu.power_watts * 1000)})
            self.bed.state.write()

    @property
    def celsius(self) -> float:
        return self.plant.gpu(0).temperature_celsius

    def __enter__(self) -> PlantLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)


def test_closed_loop_settles_lowers_at_idle_raises_under_load_and_hands_back_on_sigterm(
        bed: Bed) -> None:
    with PlantLoop(bed) as loop:
        proc = bed.start()
        try:
            wait_until(lambda: bed.mode() == "manual", 10, "manual fan control on the BMC")
            # 3rd-party response off (just after manual mode: once its marker is on disk)
            wait_until(lambda: "ce 00 16 05 00 00 00 05 00 01 00 00" in bed.oem(), 5,
                       "the third-party PCIe response disabled")

            def settled() -> bool:
                return abs(loop.celsius - SETPOINT) < 3.0 and bed.zone()["mode"] == "control"

            wait_until(settled, 25, f"the GPU near {SETPOINT} C")
            time.sleep(2.0)
            assert abs(loop.celsius - SETPOINT) < 3.0, "did not stay near the setpoint"
            loaded = bed.duty()
            assert 0.2 < loaded < 0.8  # well below the iDRAC's 80 % floor
            # the BMC's fan sensors report what the plugin made of the duty in force (read
            # twice around ipmitool: the daemon may write a new duty meanwhile)

            def fan_matches_duty() -> bool:
                before = bed.duty()
                rpm = float(bed.sim.ipmitool("sensor", "reading", "Fan1 RPM").split("|")[1])
                duties = (before, bed.duty())
                return min(abs(rpm - (1600 + 16000 * d)) for d in duties) <= 120

            wait_until(fan_matches_duty, 10, "ipmitool's Fan1 RPM to match the duty")

            loop.watts = 50.0  # the job ends: idle
            wait_until(lambda: bed.duty() <= 0.16, 20, "the duty down at idle")
            assert loop.celsius < SETPOINT
            loop.watts = 250.0  # a new job
            wait_until(lambda: bed.duty() >= loaded - 0.05, 15, "the duty up under load")
            assert loop.celsius < 90.0

            proc.send_signal(signal.SIGTERM)
            assert proc.wait(10) == 0
        finally:
            stop(proc)
    assert bed.mode() == "auto"  # the response back on first, then automatic
    assert bed.oem()[-2:] == ["ce 00 16 05 00 00 00 05 00 00 00 00", "30 01 01"]
    assert bed.duty() == 0.8  # the iDRAC's own floor for the GPU it cannot see


def test_gpuwatchctl_failsafe_after_sigkill_hands_the_fans_back(bed: Bed) -> None:
    proc = bed.start()
    try:
        wait_until(lambda: bed.mode() == "manual" and bed.duty() < 0.8, 10,
                   "manual control at a lower duty")
        proc.kill()  # no chance to hand back
        proc.wait(5)
        assert bed.mode() == "manual"
    finally:
        stop(proc)
    done = subprocess.run([sys.executable, "-m", "gpuwatchd.ctl.main", "failsafe", "--config",
                           str(bed.config)], env=bed.env, capture_output=True, text=True,
                          timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    assert "fans handed back to sim" in done.stdout
    assert bed.mode() == "auto" and bed.duty() == 0.8
    # the response back on, read back to confirm, then automatic
    assert bed.oem()[-3:] == ["ce 00 16 05 00 00 00 05 00 00 00 00", "ce 01 16 05 00 00 00",
                              "30 01 01"]
    assert "from " in done.stdout and "handback-sim.json" in done.stdout  # the record first
    assert not list((bed.config.parent / "state").glob("handback-*"))
    assert bed.sim.password not in done.stdout + done.stderr


def test_0xd4_from_the_bmc_keeps_the_daemon_monitoring_and_says_why(bed: Bed) -> None:
    (bed.sim.workdir / "oem.fault").write_text("d4\n")
    proc = bed.start()
    try:
        zone = wait_until(lambda: (z := bed.zone())["mode"] == "monitor" and
                          "0xd4" in z["reason"] and z, 10, "monitor mode with 0xd4")
        assert "3.34.34.34" in zone["reason"]
        status = subprocess.run([sys.executable, "-m", "gpuwatchd.ctl.main", "status", "--socket",
                                 str(bed.socket), "--no-color"], capture_output=True,
                                text=True, timeout=10, check=False)
        assert status.returncode == 1 and "0xd4" in status.stdout
        assert not any(line.startswith("30 02") for line in bed.oem())  # never a duty write
        assert bed.mode() == "auto"
    finally:
        stop(proc)


def test_failsafe_after_sigkill_with_an_invalid_config_on_disk_uses_the_record(
        bed: Bed) -> None:
    proc = bed.start()
    try:
        wait_until(lambda: bed.mode() == "manual" and bed.duty() < 0.8, 10,
                   "manual control at a lower duty")
        proc.kill()
        proc.wait(5)
    finally:
        stop(proc)
    valid = bed.config.read_text()
    bed.config.write_text(valid.replace("interval_seconds: 0.25", "interval_seconds: .nan"))
    done = subprocess.run([sys.executable, "-m", "gpuwatchd.ctl.main", "failsafe", "--config",
                           str(bed.config)], env=bed.env, capture_output=True, text=True,
                          timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    assert "fans handed back to sim" in done.stdout and "the records were used" in done.stderr
    assert bed.mode() == "auto" and bed.duty() == 0.8
    assert bed.sim.password not in done.stdout + done.stderr
