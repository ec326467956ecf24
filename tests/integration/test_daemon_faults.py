"""The daemon as users run it, over the fake libnvidia-ml.so.1: a lost GPU and a hung call.

Must show (issue 2): with the library reporting a GPU lost mid-run, the daemon keeps serving,
``gpuwatchd_gpu_up`` goes to 0 and back to 1; a hung NVML call does not delay ``/metrics``.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
import urllib.request
from pathlib import Path

from tests.fakes.fakenvml import FakeNvmlState, build_fake_nvml
from tests.procs import free_port, gpuwatchd_cmd, stop, wait_until

UP = re.compile(r'^gpuwatchd_gpu_up\{gpu="(\d)",uuid="[^"]+"\} (\S+)$', re.M)


def scrape(port: int) -> tuple[str, float]:
    start = time.perf_counter()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        body = resp.read().decode()
    return body, time.perf_counter() - start


def gpu_up(port: int) -> dict[str, float]:
    return {gpu: float(value) for gpu, value in UP.findall(scrape(port)[0])}


def run_daemon(tmp_path: Path, state: FakeNvmlState, deadline: float = 0.5
               ) -> tuple[subprocess.Popen[str], int]:
    lib = build_fake_nvml(tmp_path / "lib")
    cfg = tmp_path / "gpuwatchd.yaml"
    cfg.write_text(f"interval_seconds: 0.5\ngpus:\n  enabled: true\n  library_path: {lib}\n"
                   f"  deadline_seconds: {deadline}\n  reinit_max_backoff_seconds: 2\n")
    state.write()
    port = free_port()
    env = {**os.environ, **state.env()}
    proc = subprocess.Popen(
        gpuwatchd_cmd("--config", str(cfg), "--web.listen-address", f"127.0.0.1:{port}",
                      "--status-socket", str(tmp_path / "s.sock")),
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return proc, port


def test_gpu_lost_mid_run_then_back(tmp_path: Path) -> None:
    state = FakeNvmlState(tmp_path / "nvml.state")
    proc, port = run_daemon(tmp_path, state)
    try:
        wait_until(lambda: gpu_up(port) == {"0": 1.0, "1": 1.0}, 15, "both GPUs up")
        state.gpus[1]["rc"] = 15  # NVML_ERROR_GPU_IS_LOST
        state.write()
        wait_until(lambda: gpu_up(port) == {"0": 1.0, "1": 0.0}, 10, "GPU 1 down, GPU 0 up")
        body, _ = scrape(port)
        assert 'gpuwatchd_gpus{state="lost"} 1.0' in body
        assert 'gpuwatchd_gpu_temperature_celsius{gpu="0"' in body
        assert 'gpuwatchd_gpu_temperature_celsius{gpu="1"' not in body
        state.gpus[1]["rc"] = 0
        state.write()
        wait_until(lambda: gpu_up(port) == {"0": 1.0, "1": 1.0}, 15, "GPU 1 back after re-init")
        assert proc.poll() is None
    finally:
        stop(proc)


def test_hung_nvml_call_does_not_delay_metrics(tmp_path: Path) -> None:
    state = FakeNvmlState(tmp_path / "nvml.state")
    proc, port = run_daemon(tmp_path, state, deadline=0.4)
    try:
        wait_until(lambda: gpu_up(port) == {"0": 1.0, "1": 1.0}, 15, "both GPUs up")
        state.set_call("nvmlDeviceGetTemperature", sleep_seconds=30)
        state.write()
        failing = 'gpuwatchd_collector_success{collector="gpu"} 0.0'
        wait_until(lambda: failing in scrape(port)[0], 10, "the gpu collector marked failing")
        worst = max(scrape(port)[1] for _ in range(40))
        assert worst < 0.25, f"a scrape took {worst:.3f} s while NVML was hung"
        state.clear_call("nvmlDeviceGetTemperature")
        state.write()
        wait_until(lambda: 'gpuwatchd_collector_success{collector="gpu"} 1.0' in scrape(port)[0],
                   15, "the gpu collector recovered after the hang ended")
    finally:
        stop(proc)
