"""``ssh:<name>`` zone inputs against a REAL sshd on 127.0.0.1 (issue 14, the ESXi host).

The test starts Debian's ``/usr/sbin/sshd`` with a host key and a client key generated here,
and an authorized_keys line whose forced command plays the ESXi host's ``nvidia-smi``: it
prints recorded CSV, hangs (sleep), drops the connection (kills its sshd) or prints garbage,
as the test's mode file says. The zone regulates on the remote GPU temperature and is
failsafe within 2 intervals of a hang, a drop or garbage; the key never appears in argv (the
ssh processes' /proc/<pid>/cmdline), the logs or the metrics.
"""

from __future__ import annotations

import getpass
import logging
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gpuwatchd.clock import SystemClock
from gpuwatchd.collectors.remote_gpus import RemoteGpuCollector, build
from gpuwatchd.collectors.runner import CollectorRunner
from gpuwatchd.config import Config, loads
from gpuwatchd.config.fan_drivers import Channel, ChannelKind
from gpuwatchd.control.factory import Built
from gpuwatchd.control.loop import FanController
from gpuwatchd.exporter.render import Renderer
from gpuwatchd.hardware import Hardware
from gpuwatchd.model import RemoteGpuSet, Snapshot
from tests.unit.test_fan_multi import FakeDriver

SSHD = "/usr/sbin/sshd"
# Recorded on a P40 under ESXi 8 (nvidia-smi 535.x): index, uuid, temperature.gpu, power.draw.
CSV = ("0, GPU-6f3a1c2e-58b1-7f0e-2c4d-1a9b8e7d6c5f, 71, 182.35\n"
       "1, GPU-0b2c4d6e-8f10-1a2b-3c4d-5e6f708192a3, 64, [N/A]\n")
REMOTE_SH = """#!/bin/sh
case "$(cat {mode})" in
  good) cat {csv} ;;
  hang) sleep 30 ;;
  drop) kill -9 $PPID ;;
  *) echo "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver." ;;
esac
"""
INTERVAL = 1.0
ALL = Channel(ChannelKind.FAN, index=1)


@dataclass
class Host:
    dir: Path
    port: int
    key: Path
    known_hosts: Path
    mode: Path

    def set(self, mode: str) -> None:
        self.mode.write_text(mode)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(path)],
                   check=True)
    return path.with_suffix(".pub").read_text().strip()


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    if not os.path.exists(SSHD) or shutil.which("ssh") is None:
        pytest.fail(f"{SSHD} or ssh missing: apt-get install openssh-server openssh-client")
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation dir
    host_pub = _keygen(tmp_path / "host_key")
    client_pub = _keygen(tmp_path / "client_key")
    (tmp_path / "gpu.csv").write_text(CSV)
    mode = tmp_path / "mode"
    mode.write_text("good")
    script = tmp_path / "remote.sh"
    script.write_text(REMOTE_SH.format(mode=mode, csv=tmp_path / "gpu.csv"))
    (tmp_path / "authorized_keys").write_text(
        f'command="/bin/sh {script}",no-pty,no-port-forwarding {client_pub}\n')
    port = _free_port()
    config = tmp_path / "sshd_config"
    config.write_text("\n".join([
        "ListenAddress 127.0.0.1", f"HostKey {tmp_path / 'host_key'}",
        f"AuthorizedKeysFile {tmp_path / 'authorized_keys'}", f"PidFile {tmp_path / 'sshd.pid'}",
        "StrictModes no", "UsePAM no", "PasswordAuthentication no",
        "KbdInteractiveAuthentication no", "PubkeyAuthentication yes",
        "PermitRootLogin prohibit-password", "LogLevel ERROR", ""]))
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {host_pub}\n")  # the pinned host key
    log = (tmp_path / "sshd.log").open("w")
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config), "-p", str(port)],
                            stdout=log, stderr=log)
    try:
        _wait_listening(port, proc, tmp_path / "sshd.log")
        yield Host(tmp_path, port, tmp_path / "client_key", known, mode)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def _wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"sshd exited {proc.returncode}: {log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail("sshd did not listen within 10 s")


def _config(host: Host) -> Config:
    return loads(
        f"interval_seconds: {INTERVAL}\n"
        f"remote_gpus:\n  - name: esxi\n    host: 127.0.0.1\n    port: {host.port}\n"
        f"    user: {getpass.getuser()}\n    key_file: {host.key}\n"
        f"    known_hosts_file: {host.known_hosts}\n    timeout_seconds: 0.8\n"
        f"bmcs: [{{name: idrac, host: 192.0.2.10}}]\n"
        f"fan_control:\n  driver: dell\n  bmc: idrac\n  state_directory: {host.dir}\n"
        f"  zones: [{{name: gpu, fans: [fan1], inputs: [\"ssh:esxi\"]}}]\n")


class Loop:
    """The daemon's tick in small: the runner's deadline worker, a Snapshot, the controller."""

    def __init__(self, cfg: Config) -> None:
        self.clock = SystemClock()
        (scheduled,) = build(cfg, Hardware(clock=self.clock))
        assert isinstance(scheduled.collector, RemoteGpuCollector)
        self.collector = scheduled.collector
        self.runner = CollectorRunner(scheduled, self.clock)
        self.driver = FakeDriver("dell", "idrac", (ALL,))
        self.ctl = FanController(cfg, lambda: Built(self.driver, [self.driver.close]),
                                 self.clock)
        self.seq = 0
        self.snapshot: Snapshot | None = None

    def tick(self) -> str:
        start = time.monotonic()
        self.runner.start_if_due()
        self.runner.finish()
        self.seq += 1
        now = self.clock.monotonic()
        snap = Snapshot(self.seq, self.clock.time(), now, results=(self.runner.result,))
        control = self.ctl.step(snap)
        self.snapshot = Snapshot(self.seq, snap.taken_wall, now, snap.results, control=control)
        time.sleep(max(0.0, INTERVAL - (time.monotonic() - start)))
        return control.zones[0].mode

    def close(self) -> None:
        self.ctl.release()
        self.runner.close()


@pytest.fixture
def loop(host: Host) -> Iterator[Loop]:
    lp = Loop(_config(host))
    try:
        yield lp
    finally:
        lp.close()


def _regulating(loop: Loop) -> None:
    modes = [loop.tick() for _ in range(4)]
    assert modes[-1] == "control", (modes, loop.runner.result.error)
    assert loop.snapshot is not None and loop.snapshot.control is not None
    zone = loop.snapshot.control.zones[0]
    assert (zone.input_id, zone.input_celsius) == ("ssh:esxi", 71.0)  # the hottest GPU
    (remote,) = loop.runner.result.collected.readings
    assert isinstance(remote, RemoteGpuSet)
    assert [(g.index, g.temperature_celsius, g.power_watts) for g in remote.gpus] == [
        (0, 71.0, 182.35), (1, 64.0, None)]


def test_the_zone_regulates_on_the_remote_gpu_over_one_persistent_connection(
        host: Host, loop: Loop) -> None:
    _regulating(loop)
    sockets = os.listdir(loop.collector._control_dir)  # the control master's socket
    assert len(sockets) == 1, sockets
    assert "failsafe" not in loop.driver.calls


@pytest.mark.parametrize("failure", ["hang", "drop", "garbage"])
def test_a_hang_drop_or_garbage_fails_the_zone_safe_within_two_intervals(
        host: Host, loop: Loop, failure: str) -> None:
    _regulating(loop)
    host.set(failure)
    modes = [loop.tick(), loop.tick()]
    assert "failsafe" in modes, (modes, loop.runner.result.error)
    assert "failsafe" in loop.driver.calls
    assert loop.snapshot is not None and loop.snapshot.control is not None
    host.set("good")  # the host comes back: a new connection, the data fresh again
    for _ in range(3):
        loop.tick()
    assert loop.runner.result.ok, loop.runner.result.error
    (remote,) = loop.runner.result.collected.readings
    assert isinstance(remote, RemoteGpuSet) and remote.error == "" and len(remote.gpus) == 2


def _ssh_cmdlines(control_dir: str) -> list[str]:
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if control_dir.encode() in raw:
            out.append(raw.replace(b"\0", b" ").decode())
    return out


def test_the_key_never_appears_in_argv_logs_or_metrics(
        host: Host, loop: Loop, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    key_text = host.key.read_text()
    body = [line for line in key_text.splitlines() if line and "PRIVATE KEY" not in line]
    assert body
    _regulating(loop)
    host.set("hang")  # while the ssh client hangs, look at every ssh process's argv
    loop.runner.start_if_due()
    time.sleep(0.4)
    cmdlines = _ssh_cmdlines(loop.collector._control_dir)
    loop.runner.finish()
    assert cmdlines  # the hanging client (and the control master) were seen
    argv = " ".join(loop.collector.last_argv)
    assert str(host.key) in argv and "BatchMode=yes" in argv
    assert "StrictHostKeyChecking=yes" in argv
    assert f"UserKnownHostsFile={host.known_hosts}" in argv
    assert "PasswordAuthentication=no" in argv
    assert loop.snapshot is not None
    metrics = Renderer(lambda: loop.snapshot, loop.clock, process_metrics=False).render().decode()
    assert 'input="ssh:esxi"' in metrics
    for text in [*cmdlines, argv, caplog.text, metrics, loop.runner.result.error]:
        for line in body:
            assert line not in text
        assert "PRIVATE KEY" not in text


def test_an_unpinned_host_key_is_refused(host: Host, loop: Loop) -> None:
    host.known_hosts.write_text(f"[127.0.0.1]:{host.port} "
                                f"{(host.dir / 'client_key.pub').read_text()}")  # another key
    modes = [loop.tick() for _ in range(2)]
    assert "control" not in modes  # never regulates on a host it cannot verify
    assert not loop.runner.result.ok and "ssh failed" in loop.runner.result.error
