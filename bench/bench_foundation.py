"""Foundation benchmarks: /metrics latency, daemon CPU and RSS, NVML calls per tick.

Every figure is printed with a ratio against an anchor measured in the same run, because
absolute times drift on these shared 2-core machines:

- /metrics latency (8 simulated GPUs, loop at 1 s) vs ``GET /`` (a static page on the same
  server and connection): what a scrape costs beyond an HTTP round trip;
- daemon CPU over the run vs one core; RSS vs a bare interpreter that imports the same
  libraries and sleeps (the floor a Python daemon cannot go under);
- NVML calls and time per tick, fast vs slow tier, in-process over the simulator, time vs one
  simulated NVML call.

The daemon is measured twice: with GPU telemetry only (the foundation's scope) and as the
whole demo (simulated BMC, fan control and licence watch as well; the simulator's own cost of
answering as a BMC is then part of the daemon's CPU).

Usage: ``.venv/bin/python bench/bench_foundation.py [--seconds 300] [--gpus 8]``
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gpuwatchd.clock import ManualClock  # noqa: E402
from gpuwatchd.collectors.gpu import GpuCollector  # noqa: E402
from gpuwatchd.config import GpuConfig  # noqa: E402
from gpuwatchd.links.nvml import NvmlSession  # noqa: E402
from gpuwatchd.sim.node import SimNode  # noqa: E402
from tests.procs import free_port, wait_until  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def rss_mib(pid: int) -> float:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 2**20


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def http_latency(port: int, path: str, n: int) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    out = []
    for _ in range(n):
        start = time.perf_counter()
        conn.request("GET", path)
        conn.getresponse().read()
        out.append((time.perf_counter() - start) * 1000)
    conn.close()
    return out


GPU_ONLY = """# the foundation's scope: GPU telemetry only, on the simulated node
interval_seconds: 1
gpus: {enabled: true}
hwmon: {enabled: false}
licence: {enabled: false}
"""


def daemon_run(seconds: float, gpus: int, label: str, config: str | None) -> None:
    port = free_port()
    sock = f"/tmp/gpuwatchd-bench-{os.getpid()}.sock"
    extra = ["--config", config] if config else []
    proc = subprocess.Popen([sys.executable, "-m", "gpuwatchd", "--demo", *extra, "--demo-gpus",
                             str(gpus), "--web.listen-address", f"127.0.0.1:{port}",
                             "--status-socket", sock, "--log.level", "warning"])
    bare = subprocess.Popen([sys.executable, "-c",
                             "import pynvml, prometheus_client, yaml, time; time.sleep(3600)"])
    try:
        wait_until(lambda: http_latency(port, "/", 1), 15, "the demo daemon")
        time.sleep(3)  # first ticks, slow tier, caches warm
        metrics, landing = [], []
        for _ in range(200):  # latency: 1000 scrapes, each /metrics paired with a GET /
            metrics += http_latency(port, "/metrics", 5)
            landing += http_latency(port, "/", 5)
            time.sleep(0.05)
        # CPU: the loop at 1 s with a scrape every 15 s (Prometheus' default interval)
        cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
        scrapes = 0
        while time.monotonic() < t0 + seconds:
            http_latency(port, "/metrics", 1)
            scrapes += 1
            time.sleep(min(15.0, max(0.0, t0 + seconds - time.monotonic())))
        cpu = (cpu_seconds(proc.pid) - cpu0) / (time.monotonic() - t0)
        rss, bare_rss = rss_mib(proc.pid), rss_mib(bare.pid)
    finally:
        proc.terminate()
        bare.terminate()
        proc.wait(10)
        bare.wait(10)
    p50, p99 = statistics.median(metrics), percentile(metrics, 0.99)
    a50, a99 = statistics.median(landing), percentile(landing, 0.99)
    print(f"## daemon, {label}: {gpus} simulated GPUs, interval 1 s; latency over "
          f"{len(metrics)} scrapes; CPU over {seconds:.0f} s with {scrapes} scrapes")
    print(f"/metrics latency  p50 {p50:.2f} ms  p99 {p99:.2f} ms   (target p99 <= 5 ms)")
    print(f"anchor GET /      p50 {a50:.2f} ms  p99 {a99:.2f} ms   "
          f"ratio p50 {p50 / a50:.2f}x  p99 {p99 / a99:.2f}x")
    print(f"daemon CPU        {cpu * 100:.2f} % of one core (target <= 1 %)")
    print(f"daemon RSS        {rss:.1f} MiB   anchor bare interpreter {bare_rss:.1f} MiB   "
          f"ratio {rss / bare_rss:.2f}x   (target <= 60 MB)")


def tick_costs(gpus: int, ticks: int = 200) -> None:
    clock = ManualClock()
    node = SimNode(clock=clock, gpu_count=gpus)
    cfg = GpuConfig(xid_events=False, slow_interval_seconds=30)
    link = NvmlSession(node.nvml).lease()
    collector = GpuCollector(link, clock, cfg)
    collector.collect()  # init + static + first slow
    fast, slow = [], []
    fast_calls = slow_calls = 0
    for i in range(1, ticks + 1):
        clock.advance(1.0)
        before = sum(link.calls.values())
        start = time.perf_counter()
        collector.collect()
        elapsed = (time.perf_counter() - start) * 1000
        calls = sum(link.calls.values()) - before
        if i % 30 == 0:
            slow.append(elapsed)
            slow_calls = calls
        else:
            fast.append(elapsed)
            fast_calls = calls
    handle = node.nvml.nvmlDeviceGetHandleByIndex(0)
    n = 2000
    start = time.perf_counter()
    for _ in range(n):
        node.nvml.nvmlDeviceGetTemperature(handle, 0)
    one_call = (time.perf_counter() - start) * 1000 / n
    collector.close()
    print(f"## NVML per tick, {gpus} simulated GPUs (in-process, {ticks} ticks)")
    print(f"fast tick  {fast_calls:4d} calls  {statistics.median(fast):.2f} ms  "
          f"= {statistics.median(fast) / one_call:.0f} x one sim call")
    print(f"slow tick  {slow_calls:4d} calls  {statistics.median(slow):.2f} ms  "
          f"= {statistics.median(slow) / one_call:.0f} x one sim call")
    print(f"anchor: one simulated nvmlDeviceGetTemperature {one_call * 1000:.1f} us "
          "(the fake C library through real pynvml measured 4.5 us, bench/bench_nvml_calls.py)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=300.0)
    ap.add_argument("--gpus", type=int, default=8)
    args = ap.parse_args()
    tick_costs(args.gpus)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as gpu_only:
        gpu_only.write(GPU_ONLY)
        gpu_only.flush()
        daemon_run(args.seconds, args.gpus, "GPU telemetry only", gpu_only.name)
    daemon_run(args.seconds, args.gpus, "whole demo (+ BMC, fan control, licence, all simulated)",
               None)


if __name__ == "__main__":
    main()
