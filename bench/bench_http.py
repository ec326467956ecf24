"""HTTP benchmark: scrape latency and bytes with and without gzip, keep-alive vs a connection
per scrape, each as a ratio to the same run's landing page (``GET /`` on a kept-alive
connection: an HTTP round trip with no exposition).

The daemon runs ``--demo --demo-gpus N`` (the whole simulated node) as a child process.

Usage: ``.venv/bin/python bench/bench_http.py [--gpus 8] [--requests 500]``
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.procs import free_port, gpuwatchd_cmd, stop, wait_until  # noqa: E402


def _get(conn: http.client.HTTPConnection, path: str, gzip: bool) -> int:
    conn.request("GET", path, headers={"Accept-Encoding": "gzip"} if gzip else {})
    return len(conn.getresponse().read())


def measure(port: int, path: str, n: int, gzip: bool, keep_alive: bool) -> tuple[list[float],
                                                                                  int]:
    """Milliseconds per request and the body size on the wire."""
    times, size = [], 0
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    for _ in range(n):
        if not keep_alive:
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        start = time.perf_counter()
        size = _get(conn, path, gzip)
        times.append((time.perf_counter() - start) * 1000)
    conn.close()
    return times, size


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gpus", type=int, default=8)
    ap.add_argument("--requests", type=int, default=500)
    args = ap.parse_args()
    port = free_port()
    proc = subprocess.Popen(gpuwatchd_cmd("--demo", "--demo-gpus", str(args.gpus),
                                          "--web.listen-address", f"127.0.0.1:{port}",
                                          "--status-socket", f"/tmp/bench-http-{port}.sock",
                                          "--log.level", "warning"))
    try:
        wait_until(lambda: measure(port, "/metrics", 1, False, True)[1] > 1000, 30,
                   "the demo's first exposition")
        cases = [("landing page (anchor)", "/", False, True),
                 ("/metrics keep-alive", "/metrics", False, True),
                 ("/metrics keep-alive gzip", "/metrics", True, True),
                 ("/metrics new connection", "/metrics", False, False),
                 ("/metrics new connection gzip", "/metrics", True, False)]
        anchor = 0.0
        print(f"{args.gpus} simulated GPUs, {args.requests} requests per case")
        print(f"{'case':32} {'p50 ms':>8} {'p99 ms':>8} {'x anchor p50':>13} {'bytes':>8}")
        for label, path, gz, keep in cases:
            times, size = measure(port, path, args.requests, gz, keep)
            p50 = statistics.median(times)
            p99 = sorted(times)[int(0.99 * (len(times) - 1))]
            anchor = anchor or p50
            print(f"{label:32} {p50:8.2f} {p99:8.2f} {p50 / anchor:13.2f} {size:8d}")
    finally:
        stop(proc)


if __name__ == "__main__":
    main()
