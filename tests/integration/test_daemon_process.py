"""The daemon as a process: sd_notify, SIGTERM, SIGHUP reload, startup failures."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from gpuwatchd.config import EXIT_CONFIG
from tests.procs import ROOT, free_port, gpuwatchd_cmd, stop, wait_until

BASE = "interval_seconds: {interval}\ngpus: {{enabled: false}}\n"


def start(tmp_path: Path, *args: str, notify: str | None = None,
          port: int | None = None) -> tuple[subprocess.Popen[str], int]:
    port = port or free_port()
    env = dict(os.environ)
    env.pop("NOTIFY_SOCKET", None)
    if notify:
        env["NOTIFY_SOCKET"] = notify
    proc = subprocess.Popen(
        gpuwatchd_cmd(*args, "--web.listen-address", f"127.0.0.1:{port}",
                      "--status-socket", str(tmp_path / "status.sock")),
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, port


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return str(resp.read().decode())


def test_sd_notify_ready_watchdog_status_stopping(tmp_path: Path) -> None:
    """READY=1 (with STATUS) after the first tick, WATCHDOG=1 per tick, STOPPING=1 on SIGTERM."""
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(10)
        cfg = tmp_path / "g.yaml"
        cfg.write_text(BASE.format(interval=0.3))
        proc, _ = start(tmp_path, "--config", str(cfg), notify=path)
        try:
            first = sock.recv(4096).decode()
            assert "READY=1" in first and "STATUS=" in first and "WATCHDOG=1" in first
            assert "WATCHDOG=1" in sock.recv(4096).decode()
            proc.send_signal(signal.SIGTERM)
            messages = ""
            while "STOPPING=1" not in messages:
                messages += sock.recv(4096).decode()
            assert proc.wait(10) == 0
        finally:
            stop(proc)


def test_sighup_refuses_a_bad_config_and_applies_a_good_one(tmp_path: Path) -> None:
    cfg = tmp_path / "g.yaml"
    cfg.write_text(BASE.format(interval=0.3))
    proc, port = start(tmp_path, "--config", str(cfg))
    try:
        wait_until(lambda: "gpuwatchd_build_info" in scrape(port), 10, "first scrape")
        cfg.write_text("interval_seconds: 0.3\ngpus: {enabled: false}\nbogus_key: 1\n")
        proc.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        assert proc.poll() is None, "a bad reload must not stop the daemon"
        assert "gpuwatchd_build_info" in scrape(port)
        cfg.write_text(BASE.format(interval=0.5))
        proc.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == 0
        assert f"reload refused, keeping the running configuration: {cfg}:3: bogus_key: " \
               "unknown key" in err
        assert f"configuration reloaded from {cfg}" in err
    finally:
        stop(proc)


def test_invalid_config_exits_6_without_traceback(tmp_path: Path) -> None:
    cfg = tmp_path / "g.yaml"
    cfg.write_text("interval_seconds: 0\n")
    proc, _ = start(tmp_path, "--config", str(cfg))
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == EXIT_CONFIG
    assert f"{cfg}:1: interval_seconds: 0 is out of range" in err
    assert "Traceback" not in err


def test_port_in_use_exits_1_naming_the_address(tmp_path: Path) -> None:
    cfg = tmp_path / "g.yaml"
    cfg.write_text(BASE.format(interval=1))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc, _ = start(tmp_path, "--config", str(cfg), port=port)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in err
    assert "Traceback" not in err


def test_no_driver_runs_without_gpus(tmp_path: Path) -> None:
    """On this GPU-less machine with gpus.enabled auto: nvml_up 0, the collector succeeds."""
    cfg = tmp_path / "g.yaml"
    cfg.write_text("interval_seconds: 0.3\n")
    proc, port = start(tmp_path, "--config", str(cfg))
    try:
        text = wait_until(lambda: t if "gpuwatchd_nvml_up" in (t := scrape(port)) else None,
                          10, "nvml_up in /metrics")
        assert "gpuwatchd_nvml_up 0.0" in text
        assert 'gpuwatchd_collector_success{collector="gpu"} 1.0' in text
        assert "gpuwatchd_gpu_temperature_celsius" not in text
    finally:
        stop(proc)


def ctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gpuwatchd.ctl.main", *args],
                          capture_output=True, text=True, timeout=60, check=False)


def test_gpuwatchctl_reload_exits_6_on_a_refused_file_and_0_on_a_good_one(
        tmp_path: Path) -> None:
    """systemd's ExecReload=: the command waits for the daemon's verdict (issue 16)."""
    cfg = tmp_path / "g.yaml"
    cfg.write_text(BASE.format(interval=0.3))
    sock = str(tmp_path / "status.sock")
    proc, port = start(tmp_path, "--config", str(cfg))
    try:
        wait_until(lambda: "gpuwatchd_build_info" in scrape(port), 10, "first scrape")
        cfg.write_text("interval_seconds: 0.3\ngpus: {enabled: false}\nbogus_key: 1\n")
        refused = ctl("reload", "--socket", sock)
        assert refused.returncode == 6, refused.stderr
        assert refused.stderr.startswith(
            "gpuwatchctl: reload refused, the daemon keeps its running configuration: "
            f"{cfg}:3: bogus_key: unknown key")
        assert proc.poll() is None, "a refused reload must not stop the daemon"
        cfg.write_text(BASE.format(interval=0.5))
        applied = ctl("reload", "--socket", sock)
        assert (applied.returncode, applied.stdout) == (0, f"configuration reloaded from {cfg}\n")
        status = json.loads(ctl("status", "--json", "--socket", sock).stdout)
        assert status["daemon"]["interval_seconds"] == 0.5
        proc.send_signal(signal.SIGHUP)  # still works, unreported
        cfg.write_text(BASE.format(interval=0.4))
        proc.send_signal(signal.SIGHUP)
        wait_until(lambda: json.loads(ctl("status", "--json", "--socket", sock).stdout)
                   ["daemon"]["interval_seconds"] == 0.4, 10, "the SIGHUP reload")
    finally:
        stop(proc)


def _demo_file(tmp_path: Path) -> Path:
    """The demo's config with its own state directory (the lock's home)."""
    text = (ROOT / "gpuwatchd" / "sim" / "demo.yaml").read_text()
    text = text.replace("  bmc: idrac\n", f"  bmc: idrac\n  state_directory: {tmp_path}/state\n")
    path = tmp_path / "demo.yaml"
    path.write_text(text)
    return path


def test_a_removed_socket_directory_comes_back_and_a_second_daemon_is_refused(
        tmp_path: Path) -> None:
    """Issue 10: with /run/gpuwatchd removed, status said "not running" while the daemon held
    manual control, and a second daemon on the same config started and drove the same BMC."""
    demo = _demo_file(tmp_path)
    sock = str(tmp_path / "run" / "status.sock")
    args = ("--demo", "--config", str(demo), "--status-socket", sock)
    first = subprocess.Popen(gpuwatchd_cmd(*args, "--web.listen-address",
                                           f"127.0.0.1:{free_port()}"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: ctl("status", "--socket", sock).returncode in (0, 1), 30, "status")
        shutil.rmtree(tmp_path / "run")
        second = subprocess.run(gpuwatchd_cmd(*args, "--web.listen-address",
                                              f"127.0.0.1:{free_port()}"),
                                capture_output=True, text=True, timeout=60, check=False)
        lock = tmp_path / "state" / "bmc-inband-sim_idrac.lock"
        assert second.returncode == 1, second.stderr
        assert f"another gpuwatchd (pid {first.pid}) holds {lock}" in second.stderr
        assert "Traceback" not in second.stderr
        doc = wait_until(lambda: json.loads(ctl("status", "--json", "--socket", sock).stdout),
                         10, "the socket to come back")
        assert [z["mode"] for z in doc["fan_control"]["zones"]] == ["control"]
        first.send_signal(signal.SIGTERM)
        _, err = first.communicate(timeout=20)
        assert f"status socket {sock} was removed; recreated it" in err
        assert first.returncode == 0
    finally:
        stop(first)
