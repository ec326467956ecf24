"""Connection floods against a running daemon (``--demo``) at systemd's default fd limit.

The unit sets no LimitNOFILE=, so the daemon runs with systemd's default soft limit of 1,024.
Before the connection slots, 1,500 slow connections exhausted it, pinned a core and sent the
fan zone to failsafe (issue 10); eight idle clients of the status socket made every
``gpuwatchctl status`` answer "busy". Loopback only; each flood is bounded in count and time.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpuwatchd.status.client import query
from tests.procs import free_port, gpuwatchd_cmd, require, stop, wait_until

UNIT_NOFILE = 1024  # systemd's default soft LimitNOFILE
FLOOD = 2000
FLOOD_SECONDS = 10.0


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[int, str, subprocess.Popen[bytes]]]:
    port, sock = free_port(), str(tmp_path / "status.sock")
    prlimit = require("prlimit", "util-linux")
    argv = [prlimit, f"--nofile={UNIT_NOFILE}:{UNIT_NOFILE}", *gpuwatchd_cmd(
        "--demo", "--web.listen-address", f"127.0.0.1:{port}", "--status-socket", sock,
        "--log.level", "warning")]
    proc = subprocess.Popen(argv, stderr=subprocess.DEVNULL)  # prlimit execs: same pid
    try:
        wait_until(lambda: _zone_modes(sock) == ["control"], 60, "the demo's zone in control")
        yield port, sock, proc
    finally:
        stop(proc)


def _zone_modes(sock: str) -> list[str]:
    doc = query(sock, timeout_seconds=2.0)
    fc = doc.get("fan_control") or {}
    return [z["mode"] for z in fc.get("zones", [])]


def _scrape_seconds(port: int) -> float:
    start = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        assert resp.status == 200 and b"gpuwatchd_fan_zone_mode" in resp.read()
    finally:
        conn.close()
    return time.monotonic() - start


def _raise_own_fd_limit(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, need), hard))


class Slowloris(threading.Thread):
    """Keeps up to ``count`` connections open, each trickling one header line a second (under
    the server's 10 s read timeout), reopening those the server closes; stops by itself."""

    def __init__(self, port: int, count: int, seconds: float) -> None:
        super().__init__(daemon=True)
        self.port, self.count, self.until = port, count, time.monotonic() + seconds
        self.socks: list[socket.socket] = []
        self.opened = 0

    def run(self) -> None:
        next_trickle = 0.0
        while time.monotonic() < self.until:
            while len(self.socks) < self.count and time.monotonic() < self.until:
                try:
                    self.socks.append(socket.create_connection(("127.0.0.1", self.port), 0.2))
                    self.opened += 1
                except OSError:
                    break  # accept queue full: trickle, then try again
            if time.monotonic() >= next_trickle:
                self._trickle()
                next_trickle = time.monotonic() + 1.0
        for sock in self.socks:
            sock.close()

    def _trickle(self) -> None:
        alive = []
        for sock in self.socks:
            try:
                sock.send(b"X-a: b\r\n")
                alive.append(sock)
            except OSError:
                sock.close()
        self.socks = alive


def _failsafe_entries(port: int) -> float:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    return sum(float(v) for v in re.findall(
        r"^gpuwatchd_fan_zone_failsafe_entries_total\{[^}]*\} (\S+)$", text, re.M))


def test_slowloris_of_2000_keeps_the_zone_in_control_and_scrapes_answering(
        demo: tuple[int, str, subprocess.Popen[bytes]]) -> None:
    port, sock, proc = demo
    _raise_own_fd_limit(FLOOD + 256)
    before = _failsafe_entries(port)
    flood = Slowloris(port, FLOOD, FLOOD_SECONDS)
    flood.start()
    worst, most_fds = 0.0, 0
    while flood.is_alive():
        worst = max(worst, _scrape_seconds(port))
        assert _zone_modes(sock) == ["control"]
        most_fds = max(most_fds, len(os.listdir(f"/proc/{proc.pid}/fd")))
        time.sleep(0.2)
    flood.join()
    assert flood.opened >= FLOOD, f"the flood opened only {flood.opened} connections"
    assert worst < 1.0, f"a scrape took {worst:.2f} s during the flood"
    assert most_fds < UNIT_NOFILE // 2, f"the daemon held {most_fds} fds"
    assert _failsafe_entries(port) == before, "the fan zone went to failsafe during the flood"
    assert proc.poll() is None


class IdleStatusFlood(threading.Thread):
    """Keeps ``count`` connections to the status socket open without ever sending a request
    (eight of them used to make every ``gpuwatchctl status`` answer "busy"), reopening the
    ones the daemon evicts; stops by itself."""

    def __init__(self, path: str, count: int, seconds: float) -> None:
        super().__init__(daemon=True)
        self.path, self.count, self.until = path, count, time.monotonic() + seconds
        self.opened = 0

    def run(self) -> None:
        socks: list[socket.socket] = []
        while time.monotonic() < self.until:
            socks = [s for s in socks if not _closed_by_peer(s)]
            while len(socks) < self.count:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    sock.connect(self.path)
                except OSError:
                    sock.close()
                    break
                socks.append(sock)
                self.opened += 1
            time.sleep(0.05)
        for sock in socks:
            sock.close()


def _closed_by_peer(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        gone = sock.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        gone = True
    if gone:
        sock.close()
    return gone


def test_idle_status_clients_never_make_gpuwatchctl_status_busy(
        demo: tuple[int, str, subprocess.Popen[bytes]]) -> None:
    port, sock, proc = demo
    before = _failsafe_entries(port)
    flood = IdleStatusFlood(sock, 64, FLOOD_SECONDS / 2)
    flood.start()
    answers = 0
    while flood.is_alive():
        ctl = subprocess.run([sys.executable, "-m", "gpuwatchd.ctl.main", "status", "--json",
                              "--socket", sock], capture_output=True, text=True, timeout=30,
                             check=False)
        assert ctl.returncode in (0, 1), ctl.stderr  # healthy or degraded, never "busy" (4)
        assert json.loads(ctl.stdout)["fan_control"]["zones"][0]["mode"] == "control"
        answers += 1
    flood.join()
    assert flood.opened > 64, "the flood's idle connections were never evicted"
    assert answers >= 3
    assert _failsafe_entries(port) == before, "the fan zone went to failsafe during the flood"
    assert proc.poll() is None
