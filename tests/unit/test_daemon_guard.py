"""One daemon per BMC (the lock, issue 10) and the synchronous reload (issue 16), in-process."""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpuwatchd.clock import ManualClock
from gpuwatchd.config import Config, loads
from gpuwatchd.daemon.cli import _demo_config
from gpuwatchd.daemon.lock import AlreadyRunning, BmcLock, lock_key, lock_path
from gpuwatchd.daemon.service import Daemon
from gpuwatchd.sim.node import SimNode

PLAIN = "interval_seconds: 0.2\ngpus: {enabled: false}\n"
LAN = """\
bmcs:
  - {name: idrac, host: 192.0.2.7, username: root, password_file: /nonexistent}
fan_control:
  driver: dell
  bmc: idrac
  state_directory: %s
  zones: [{name: gpu, fans: all, inputs: ["gpu:*"], setpoint_celsius: 75,
           ceiling_celsius: 85}]
"""


def test_the_lock_is_keyed_by_the_bmc_and_absent_without_fan_control(tmp_path: Path) -> None:
    lan = loads(LAN % tmp_path, "lan.yaml")
    assert lock_key(lan) == "192.0.2.7"
    assert lock_path(lan) == str(tmp_path / "bmc-192.0.2.7.lock")
    assert lock_key(loads(PLAIN, "plain.yaml")) is None
    demo = _demo_config()
    assert lock_key(demo) == "inband-sim_idrac"  # the simulator, not /dev/ipmi0
    system_inband = dataclasses.replace(demo, bmcs=tuple(
        dataclasses.replace(b, ipmi_device="/dev/ipmi0") for b in demo.bmcs))
    assert lock_key(system_inband) == "inband-_dev_ipmi0"


def test_the_demo_never_uses_the_system_state_directory(tmp_path: Path) -> None:
    demo = _demo_config()
    assert demo.fan_control.state_directory != "/var/lib/gpuwatchd"
    assert _demo_config(str(tmp_path)).fan_control.state_directory == str(tmp_path)


def test_a_second_holder_is_refused_naming_the_file_and_the_pid(tmp_path: Path) -> None:
    path = str(tmp_path / "state" / "bmc-x.lock")
    first = BmcLock(path)
    first.acquire()
    try:
        with pytest.raises(AlreadyRunning) as caught:
            BmcLock(path).acquire()
        assert str(caught.value) == (f"another gpuwatchd (pid {os.getpid()}) holds {path}: "
                                     "it drives the same fans; stop it first")
    finally:
        first.release()
    again = BmcLock(path)
    again.acquire()  # free once released (or once the holder died)
    again.release()


def test_a_daemon_for_the_same_bmc_refuses_to_start(tmp_path: Path) -> None:
    cfg = dataclasses.replace(loads(LAN % tmp_path, "lan.yaml"),
                              status_socket=str(tmp_path / "s.sock"))
    held = BmcLock(str(lock_path(cfg)))
    held.acquire()
    try:
        daemon = Daemon(cfg, SimNode().hardware())
        with pytest.raises(AlreadyRunning, match=r"bmc-192\.0\.2\.7\.lock"):
            daemon.start()
        daemon.shutdown()
    finally:
        held.release()


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[Daemon, list[str]]]:
    """A daemon (no fan control) looping in a thread; its reload returns files in turn."""
    files: list[str] = []

    def reload() -> Config:
        return loads(files.pop(0), "g.yaml")

    cfg = dataclasses.replace(loads(PLAIN, "g.yaml"), status_socket=str(tmp_path / "s.sock"))
    daemon = Daemon(cfg, SimNode().hardware(), reload=reload)
    daemon._build(cfg)
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    try:
        yield daemon, files
    finally:
        daemon.request_stop()
        thread.join(5.0)
    assert not thread.is_alive()


def test_the_reload_command_waits_for_the_loop_and_reports_the_outcome(
        running: tuple[Daemon, list[str]]) -> None:
    daemon, files = running
    files.append(PLAIN + "bogus_key: 1\n")
    doc = daemon.reload_command(5.0)
    assert doc.keys() == {"schema", "reload", "reason"} and doc["reload"] == "refused"
    assert str(doc["reason"]).startswith("g.yaml:3: bogus_key: unknown key")
    assert daemon.config.interval_seconds == 0.2
    files.append(PLAIN.replace("0.2", "0.3"))
    assert daemon.reload_command(5.0) == {"schema": 1, "reload": "applied", "source": "g.yaml"}
    assert daemon.config.interval_seconds == 0.3


def test_sighup_still_reloads_unreported(running: tuple[Daemon, list[str]]) -> None:
    daemon, files = running
    files.append(PLAIN.replace("0.2", "0.4"))
    daemon.request_reload()
    for _ in range(50):
        if daemon.config.interval_seconds == 0.4:
            break
        threading.Event().wait(0.1)
    assert daemon.config.interval_seconds == 0.4


def test_a_reload_the_loop_never_runs_is_an_error_reply_not_a_hang(tmp_path: Path) -> None:
    daemon = Daemon(loads(PLAIN, "g.yaml"), SimNode().hardware(), reload=lambda: loads(PLAIN))
    assert daemon.reload_command(0.1) == {
        "schema": 1, "error": "the main loop did not run the reload within 0.1 s"}


def test_the_demo_without_a_file_refuses_the_reload(tmp_path: Path) -> None:
    cfg = dataclasses.replace(loads(PLAIN, "g.yaml"), status_socket=str(tmp_path / "s.sock"))
    daemon = Daemon(cfg, SimNode().hardware())
    waiter = daemon._waiters.add()
    daemon._run_reload()
    assert waiter.outcome is not None and not waiter.outcome.applied
    assert waiter.outcome.reason == "there is no config file to re-read (--demo)"



class CountingServer:
    """Stands in for the StatusServer: counts the tick's ensure() calls."""

    def __init__(self) -> None:
        self.ensured = 0

    def ensure(self) -> bool:
        self.ensured += 1
        return False


def test_the_tick_checks_the_status_socket_at_most_once_a_second() -> None:
    clock = ManualClock()
    daemon = Daemon(loads(PLAIN, "g.yaml"), SimNode(clock=clock).hardware())
    server = CountingServer()
    daemon._status = server  # type: ignore[assignment]
    for _ in range(10):  # ten ticks of 0.25 s: checks at 0, 1.0, 2.0 s
        daemon._check_socket()
        clock.advance(0.25)
    assert server.ensured == 3


def test_a_reload_onto_a_bmc_another_daemon_drives_is_refused(
        tmp_path: Path, running: tuple[Daemon, list[str]]) -> None:
    daemon, files = running
    lan = LAN % tmp_path
    held = BmcLock(str(tmp_path / "bmc-192.0.2.7.lock"))
    held.acquire()
    try:
        files.append(lan)
        doc = daemon.reload_command(5.0)
        assert doc["reload"] == "refused"
        assert f"holds {tmp_path}/bmc-192.0.2.7.lock" in str(doc["reason"])
        assert daemon.config.fan_control.driver == "none"
    finally:
        held.release()
