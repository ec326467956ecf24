"""Soak: ``gpuwatchd --demo --demo-gpus N`` with a scrape (and a ``gpuwatchctl status``) a
second for ``--minutes``; RSS, open fds and threads sampled every ``--sample-seconds``.

Prints one row per sample and a verdict: the growth from the end of the warm-up (the first
sixth of the run) to the end, against the warm-up's own level. Flat means RSS within 5 % and
fds/threads unchanged.

Usage: ``.venv/bin/python bench/soak.py [--minutes 30] [--gpus 8]``
"""

from __future__ import annotations

import argparse
import http.client
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gpuwatchd.status.client import query  # noqa: E402
from tests.procs import free_port, gpuwatchd_cmd, stop, wait_until  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")


def sample(pid: int) -> tuple[float, int, int]:
    """RSS MiB, open fds, threads of ``pid``."""
    rss = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 2**20
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    threads = len(os.listdir(f"/proc/{pid}/task"))
    return rss, fds, threads


def scrape(port: int) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/metrics")
        return len(conn.getresponse().read())
    finally:
        conn.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--gpus", type=int, default=8)
    ap.add_argument("--sample-seconds", type=float, default=60.0)
    args = ap.parse_args()
    port = free_port()
    sock = os.path.join(tempfile.mkdtemp(prefix="soak-"), "status.sock")
    proc = subprocess.Popen(gpuwatchd_cmd("--demo", "--demo-gpus", str(args.gpus),
                                          "--web.listen-address", f"127.0.0.1:{port}",
                                          "--status-socket", sock, "--log.level", "warning"))
    rows: list[tuple[float, float, int, int]] = []
    failures = 0
    try:
        wait_until(lambda: scrape(port) > 1000, 30, "the first exposition")
        start = time.monotonic()
        end, next_sample = start + args.minutes * 60, start
        while time.monotonic() < end:
            try:
                scrape(port)
                query(sock)
            except (OSError, http.client.HTTPException) as exc:
                failures += 1
                print(f"scrape/status failed: {exc}", flush=True)
            if time.monotonic() >= next_sample:
                rss, fds, threads = sample(proc.pid)
                minute = (time.monotonic() - start) / 60
                rows.append((minute, rss, fds, threads))
                print(f"{minute:6.1f} min  RSS {rss:6.1f} MiB  fds {fds:3d}  threads {threads:3d}",
                      flush=True)
                next_sample += args.sample_seconds
            time.sleep(1.0)
    finally:
        stop(proc)
    warm = rows[max(1, len(rows) // 6)]
    last = rows[-1]
    print(f"after warm-up ({warm[0]:.1f} min): RSS {warm[1]:.1f} MiB, fds {warm[2]}, "
          f"threads {warm[3]}; at the end ({last[0]:.1f} min): RSS {last[1]:.1f} MiB "
          f"({(last[1] / warm[1] - 1) * 100:+.1f} %), fds {last[2]}, threads {last[3]}; "
          f"peak RSS {max(r[1] for r in rows):.1f} MiB; failed requests {failures}")


if __name__ == "__main__":
    main()
