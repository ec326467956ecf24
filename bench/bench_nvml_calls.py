"""Cost of one NVML call through real nvidia-ml-py over the fake libnvidia-ml.so.1.

Each row is the median over batches, in microseconds per call, and its ratio to an anchor
measured in the same run: a ctypes call to libc ``abs()`` (the floor of any ctypes call).
The last rows are whole GPU-collector ticks (2 GPUs) through the same library.

Usage: ``.venv/bin/python bench/bench_nvml_calls.py`` (needs gcc).
"""

from __future__ import annotations

import ctypes
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pynvml  # noqa: E402

from gpuwatchd.clock import ManualClock  # noqa: E402
from gpuwatchd.collectors.gpu import GpuCollector  # noqa: E402
from gpuwatchd.config import GpuConfig  # noqa: E402
from gpuwatchd.errors import GpuwatchdError  # noqa: E402
from gpuwatchd.links.nvml import NvmlSession  # noqa: E402
from tests.fakes.fakenvml import FakeNvmlState, build_fake_nvml  # noqa: E402


def per_call(fn: Callable[[], object], batches: int = 200, batch: int = 200) -> float:
    """Median over ``batches`` of the mean time of ``batch`` calls, in microseconds."""
    out = []
    for _ in range(batches):
        start = time.perf_counter_ns()
        for _ in range(batch):
            fn()
        out.append((time.perf_counter_ns() - start) / batch / 1000)
    return statistics.median(out)


def main() -> None:
    work = Path(tempfile.mkdtemp())
    lib = build_fake_nvml(work)
    state = FakeNvmlState(work / "state")
    state.set_call("nvmlDeviceGetFanSpeed_v2", rc=3)
    state.write()
    os.environ.update(state.env())

    libc = ctypes.CDLL(None)
    anchor = per_call(lambda: libc.abs(-3))
    pynvml.nvmlLib = ctypes.CDLL(str(lib))
    pynvml.nvmlInit()
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    link = NvmlSession(pynvml).lease()
    link.initialized = True

    def not_supported() -> None:
        try:
            link.call("nvmlDeviceGetFanSpeed_v2", handle, 0)
        except GpuwatchdError:
            pass

    rows = [
        ("anchor: ctypes call to libc abs()", anchor),
        ("pynvml.nvmlDeviceGetTemperature", per_call(
            lambda: pynvml.nvmlDeviceGetTemperature(handle, 0))),
        ("pynvml.nvmlDeviceGetMemoryInfo (struct)", per_call(
            lambda: pynvml.nvmlDeviceGetMemoryInfo(handle))),
        ("NvmlLink.call(nvmlDeviceGetTemperature)", per_call(
            lambda: link.call("nvmlDeviceGetTemperature", handle, 0))),
        ("NvmlLink.call error path (NOT_SUPPORTED)", per_call(not_supported)),
    ]
    pynvml.nvmlShutdown()
    pynvml.nvmlLib = None

    clock = ManualClock()
    cfg = GpuConfig(library_path=str(lib), xid_events=False, slow_interval_seconds=3600)
    collector = GpuCollector(NvmlSession(pynvml, cfg.library_path).lease(), clock, cfg)
    collector.collect()
    calls = collector.link.calls
    before = sum(calls.values())
    fast = per_call(collector.collect, batches=100, batch=20)
    fast_calls = (sum(calls.values()) - before) / 2000

    def slow_tick() -> None:
        collector._next_slow = float("-inf")
        collector.collect()

    before = sum(calls.values())
    slow = per_call(slow_tick, batches=100, batch=20)
    slow_calls = (sum(calls.values()) - before) / 2000
    rows.append((f"GPU collector fast tick, 2 GPUs ({fast_calls:.0f} calls)", fast))
    rows.append((f"GPU collector fast+slow tick, 2 GPUs ({slow_calls:.0f} calls)", slow))
    collector.close()
    for name, micros in rows:
        print(f"{name:55s} {micros:9.2f} us  {micros / anchor:8.1f} x anchor")


if __name__ == "__main__":
    main()
