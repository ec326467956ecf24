"""gpuwatchctl failsafe and calibrate over the simulated iDRAC; the fan status section; the
fan-control config checks."""

from __future__ import annotations

import argparse
import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from gpuwatchd.clock import ManualClock
from gpuwatchd.config import ConfigError, loads
from gpuwatchd.config import load as load_config
from gpuwatchd.control import calibrate, tuning
from gpuwatchd.control.loop import build
from gpuwatchd.ctl import fan as fan_cli
from gpuwatchd.ctl.main import main
from gpuwatchd.sim.bmc_oem import DELL_THIRD_PARTY_FLOOR
from gpuwatchd.sim.node import SimNode
from gpuwatchd.status.table import render

DEMO = resources.files("gpuwatchd.sim").joinpath("demo.yaml").read_text()


def config_file(tmp_path: Path) -> Path:
    text = DEMO.replace("fan_control:\n", f"fan_control:\n  state_directory: {tmp_path}/state\n")
    text += f"status_socket: {tmp_path}/status.sock\n"
    path = tmp_path / "gpuwatchd.yaml"
    path.write_text(text)
    return path


def test_failsafe_hands_back_a_bmc_left_in_manual_mode(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    node = SimNode(clock=ManualClock())
    bmc = node.bmcs["idrac"]
    bmc.send_raw(0, 0x30, b"\x30\x01\x00")  # a daemon died holding manual control at 20 %
    bmc.send_raw(0, 0x30, bytes.fromhex("ce00160500000005000100" "00"))
    bmc.send_raw(0, 0x30, b"\x30\x02\xff\x14")
    assert bmc.manual and not bmc.pcie_enabled and node.duty(0) == pytest.approx(0.2)
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "dell-pcie-disabled-idrac").write_text("")  # the daemon's marker
    args = argparse.Namespace(config=str(config_file(tmp_path)), attempts=1)
    assert fan_cli.failsafe(args, hardware=node.hardware) == 0
    assert not bmc.manual and bmc.pcie_enabled
    assert node.duty(0) == pytest.approx(DELL_THIRD_PARTY_FLOOR)
    assert "fans handed back to idrac" in capsys.readouterr().out
    assert not (tmp_path / "state" / "dell-pcie-disabled-idrac").exists()


def test_failsafe_restores_the_third_party_response_even_without_the_marker(
        tmp_path: Path) -> None:
    """A lost marker (deleted, as a --demo on the system state directory did) must not leave
    the iDRAC automatic with the GPU's cooling response off: where the config disables it,
    failsafe turns it back on and reads it back."""
    node = SimNode(clock=ManualClock())
    bmc = node.bmcs["idrac"]
    bmc.send_raw(0, 0x30, bytes.fromhex("ce00160500000005000100" "00"))  # no marker
    args = argparse.Namespace(config=str(config_file(tmp_path)), attempts=1)
    assert fan_cli.failsafe(args, hardware=node.hardware) == 0
    assert bmc.pcie_enabled and not bmc.manual
    assert bmc.oem_requests()[-3:] == [bytes.fromhex("ce00160500000005000000" "00"),
                                       bytes.fromhex("ce011605000000"), b"\x30\x01\x01"]


def test_failsafe_leaves_the_response_where_the_config_never_touches_it(
        tmp_path: Path) -> None:
    node = SimNode(clock=ManualClock())
    bmc = node.bmcs["idrac"]
    bmc.send_raw(0, 0x30, bytes.fromhex("ce00160500000005000100" "00"))  # the user's choice
    path = config_file(tmp_path)
    path.write_text(path.read_text().replace("third_party_pcie_response: disable",
                                             "third_party_pcie_response: unchanged"))
    args = argparse.Namespace(config=str(path), attempts=1)
    assert fan_cli.failsafe(args, hardware=node.hardware) == 0
    assert not bmc.pcie_enabled and not bmc.manual


def test_failsafe_exits_1_when_the_response_does_not_read_back_enabled(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    node = SimNode(clock=ManualClock())
    bmc = node.bmcs["idrac"]
    bmc.send_raw(0, 0x30, b"\x30\x01\x00")
    bmc.send_raw(0, 0x30, bytes.fromhex("ce00160500000005000100" "00"))
    real_pcie = bmc._pcie
    bmc._pcie = lambda data: b"\x00" if len(data) == 11 else real_pcie(data)  # type: ignore[method-assign]
    args = argparse.Namespace(config=str(config_file(tmp_path)), attempts=1)
    assert fan_cli.failsafe(args, hardware=node.hardware) == 1
    assert "still reads disabled" in capsys.readouterr().err
    assert bmc.manual and node.duty(0) == 1.0  # never automatic with the response off


def test_failsafe_fails_with_exit_1_when_the_bmc_never_answers(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    node = SimNode(clock=ManualClock())
    node.bmcs["idrac"].faults.silent = True
    args = argparse.Namespace(config=str(config_file(tmp_path)), attempts=1)
    assert fan_cli.failsafe(args, hardware=node.hardware) == 1
    assert "could not hand the fans back after 1 attempt" in capsys.readouterr().err


def test_failsafe_with_fan_control_off_and_a_bad_config(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    off = tmp_path / "off.yaml"
    off.write_text("gpus: {enabled: false}\n")
    assert main(["failsafe", "--config", str(off)]) == 0
    assert "nothing to hand back" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("fan_control:\n  drivr: dell\n")
    assert main(["failsafe", "--config", str(bad)]) == 6
    assert "did you mean 'driver'" in capsys.readouterr().err


def test_calibrate_finds_the_floor_and_the_daemon_uses_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clock = ManualClock()
    node = SimNode(clock=clock, profile="idle")
    args = argparse.Namespace(config=str(config_file(tmp_path)), attempts=1, settle=10.0,
                              margin=3.0)  # keep 4x the 600 rpm threshold: stops at 5 %
    assert fan_cli.calibrate_cmd(args, hardware=node.hardware, sleep=clock.advance) == 0
    out = capsys.readouterr().out
    assert "<- Fan1A at 2400 rpm is within 300% of its lower threshold" in out
    assert "floor 10%" in out
    cal = calibrate.load(str(tmp_path / "state"), "idrac", "dell")
    assert cal is not None and cal.floor_duty == 0.1 and cal.lower_threshold_rpm == 600.0
    assert [round(d, 2) for d, _, _ in cal.points] == [1.0, 0.8, 0.6, 0.5, 0.4, 0.3, 0.25,
                                                        0.2, 0.15, 0.1, 0.05]
    mean_at_half = dict((d, m) for d, m, _ in cal.points)[0.5]
    assert mean_at_half == pytest.approx((1600 + 8000) * (1 + 0.975) / 2, rel=0.02)
    assert not node.bmcs["idrac"].manual  # handed back at the end
    from gpuwatchd.config import load
    from gpuwatchd.control.loop import build

    config = load(args.config)
    controller = build(config, node.hardware())
    assert controller is not None and controller.zones[0].min_duty == 0.15  # max(0.15, 0.1)
    controller.release()


def test_calibrate_refuses_while_the_daemon_runs_and_non_ipmi_drivers(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from gpuwatchd.status.server import StatusServer

    path = config_file(tmp_path)
    server = StatusServer(str(tmp_path / "status.sock"), lambda: {"schema": 1}, group=None)
    server.start()
    try:
        assert main(["calibrate", "--config", str(path)]) == 1
        assert "stop it first" in capsys.readouterr().err
    finally:
        server.stop()
    hwmon = tmp_path / "hwmon.yaml"
    hwmon.write_text("fan_control:\n  driver: hwmon\n  zones:\n    - name: case\n"
                     "      fans: [nct6798/pwm2]\n")
    assert main(["calibrate", "--config", str(hwmon)]) == 2


def test_corrupt_calibration_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "calibration-idrac.json").write_text("{not json")
    assert calibrate.load(str(tmp_path), "idrac", "dell") is None
    (tmp_path / "calibration-idrac.json").write_text(json.dumps(
        {"schema": 1, "driver": "supermicro", "points": [], "floor_duty": 0.2,
         "target": "idrac", "created_wall": 0}))
    assert calibrate.load(str(tmp_path), "idrac", "dell") is None


# ---- status ---------------------------------------------------------------------------------

def test_status_shows_each_zone_mode_input_setpoint_and_duty(tmp_path: Path) -> None:
    from gpuwatchd.daemon.cli import _demo_config
    from gpuwatchd.daemon.service import Daemon

    clock = ManualClock()
    node = SimNode(clock=clock, profile="full")
    daemon = Daemon(_demo_config(str(tmp_path)), node.hardware())
    daemon._build(daemon.config)
    try:
        for _ in range(3):
            daemon.tick()
            clock.advance(1.0)
        doc = json.loads(json.dumps(daemon.status()))
        zone = doc["fan_control"]["zones"][0]
        assert zone["mode"] == "control" and zone["setpoint_celsius"] == 75.0
        assert zone["input"].startswith("gpu:") and 0.15 <= zone["duty"] <= 1.0
        text = render(doc, clock.time())
        lines = text.splitlines()
        head = next(i for i, line in enumerate(lines) if line.startswith("FAN ZONE"))
        assert lines[head].split()[:8] == ["FAN", "ZONE", "MODE", "INPUT", "TEMP", "SETPOINT",
                                           "CEILING", "DUTY"]
        assert lines[head + 1].split()[:2] == ["gpu", "control"]
        assert f"{zone['duty'] * 100:.0f}%" in lines[head + 1]
        assert "fan driver dell on idrac: manual" in text
        node.nvml.lose_gpu(0)
        daemon.tick()
        doc = daemon.status()
        assert doc["health"]["status"] == "degraded"
        assert any(r.startswith("fan zone gpu in failsafe: gpu_lost") for r in
                   doc["health"]["reasons"])
    finally:
        daemon._close_hardware()


# ---- config ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "message"), [
    ("fan_control:\n  driver: dell\n  zones: [{name: z}]\n", "driver dell needs a BMC"),
    ("bmcs: [{name: r, protocol: redfish, host: h}]\nfan_control:\n  driver: dell\n  bmc: r\n"
     "  zones: [{name: z}]\n", "needs a BMC with protocol: ipmi"),
    ("fan_control:\n  driver: nvml\n  zones: [{name: z, inputs: ['gpu:x']}]\n",
     "inputs[0]: 'gpu:x': after gpu: give"),
    ("fan_control:\n  driver: nvml\n  zones: [{name: z, inputs: ['bmc:nope:Exhaust']}]\n",
     "no BMC named 'nope'"),
    ("fan_control:\n  driver: nvml\n  zones: [{name: z, fans: [fan1]}]\n",
     "not a nvml fan channel"),
    ("fan_control:\n  driver: hwmon\n  zones: [{name: z}]\n", "hwmon needs the PWM channels"),
    ("interval_seconds: 2\nfan_control:\n  driver: nvml\n  zones: [{name: z, "
     "stale_after_seconds: 1}]\n", "shorter than interval_seconds"),
    ("fan_control:\n  driver: nvml\n  zones: [{name: z, slew_down_per_second: 0}]\n",
     "out of range"),
    ("fan_control:\n  dell: {third_party_pcie_response: off}\n", "is not one of"),
])
def test_fan_control_config_errors_name_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        loads(text, "t.yaml")
    assert message in str(info.value) and "t.yaml:" in str(info.value)


def test_the_demo_config_loads_with_the_documented_defaults() -> None:
    cfg = loads(DEMO, "demo.yaml")
    zone = cfg.fan_control.zones[0]
    assert (zone.kp, zone.slew_up_per_second, zone.slew_down_per_second) == (0.04, 0.1, 0.01)
    assert cfg.fan_control.dell.fan_count == 8


def test_the_demo_never_uses_the_system_state_directory() -> None:
    from dataclasses import replace

    from gpuwatchd.daemon import cli

    cfg = cli._demo_config()
    assert cfg.fan_control.state_directory == cli.demo_state_directory(10045)
    assert not cfg.fan_control.state_directory.startswith("/var/lib/gpuwatchd")
    assert cfg.fan_control.state_directory.endswith(f"gpuwatchd-demo-{os.getuid()}-10045")
    other = cli._private_state(replace(cfg, exporter=replace(
        cfg.exporter, listen=("127.0.0.1:10046",))))
    assert other.fan_control.state_directory == cli.demo_state_directory(10046)


# ---- the hand-back record (issue 10, item 8) ------------------------------------------------

def _crash_holding_manual_control(tmp_path: Path, node: SimNode, clock: ManualClock) -> None:
    """A daemon on config_file(tmp_path) that takes manual control, then dies (no release)."""
    from gpuwatchd.config import load
    from gpuwatchd.daemon.service import Daemon

    daemon = Daemon(load(config_file(tmp_path)), node.hardware())
    daemon._build(daemon.config)
    for _ in range(3):
        daemon.tick()
        clock.advance(1.0)
    assert node.bmcs["idrac"].manual and not node.bmcs["idrac"].pcie_enabled
    control: Any = daemon._control
    control._supervisor.actuator.close()  # the process is gone: nothing released


def test_failsafe_hands_back_from_the_record_when_the_config_is_invalid(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clock = ManualClock()
    node = SimNode(clock=clock, profile="full")
    bmc = node.bmcs["idrac"]
    _crash_holding_manual_control(tmp_path, node, clock)
    record = tmp_path / "state" / "handback-idrac.json"
    assert record.exists()
    path = config_file(tmp_path)
    path.write_text("fan_control:\n  drivr: dell\n  state_directory: " f"{tmp_path}/state\n")
    args = argparse.Namespace(config=str(path), attempts=1)
    assert fan_cli.failsafe(args, hardware=node.hardware) == 0
    assert not bmc.manual and bmc.pcie_enabled
    out, err = capsys.readouterr()
    assert f"fans handed back to idrac (dell): automatic control (from {record})" in out
    assert "the config does not validate (the records were used)" in err
    assert not record.exists() and not (tmp_path / "state" / "dell-pcie-disabled-idrac").exists()
    assert fan_cli.failsafe(args, hardware=node.hardware) == 6  # no record left, bad config


def test_failsafe_finds_the_record_in_the_default_or_given_state_directory(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clock = ManualClock()
    node = SimNode(clock=clock, profile="full")
    _crash_holding_manual_control(tmp_path, node, clock)
    unparseable = tmp_path / "broken.yaml"
    unparseable.write_text("fan_control: [\n")  # not even YAML: no state_directory in it
    args = argparse.Namespace(config=str(unparseable), attempts=1,
                              state_directory=str(tmp_path / "state"))
    assert fan_cli.failsafe(args, hardware=node.hardware) == 0
    assert not node.bmcs["idrac"].manual


def test_failsafe_from_a_record_exits_1_and_keeps_it_when_the_bmc_never_answers(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clock = ManualClock()
    node = SimNode(clock=clock, profile="full")
    _crash_holding_manual_control(tmp_path, node, clock)
    node.bmcs["idrac"].faults.silent = True
    (tmp_path / "gpuwatchd.yaml").write_text("interval_seconds: .nan\n")
    args = argparse.Namespace(config=str(tmp_path / "gpuwatchd.yaml"), attempts=1,
                              state_directory=str(tmp_path / "state"))
    assert fan_cli.failsafe(args, hardware=node.hardware) == 1
    assert "could not hand the fans back after 1 attempt(s) to idrac" in capsys.readouterr().err
    assert (tmp_path / "state" / "handback-idrac.json").exists()


def test_the_record_names_the_credential_source_never_the_secret(tmp_path: Path) -> None:
    from gpuwatchd.control import handback

    secret = tmp_path / "bmc.pass"
    secret.write_text("hunter2-very-secret\n")
    cfg = loads(f"""\
bmcs:
  - {{name: idrac, host: 192.0.2.10, port: 6230, username: root, password_file: {secret}}}
fan_control:
  driver: auto
  bmc: idrac
  state_directory: {tmp_path}/state
  dell: {{third_party_pcie_response: disable, third_party_pcie_on_exit: enable}}
  zones: [{{name: gpu, setpoint_celsius: 70}}]
""", "t.yaml")
    path = handback.write_record(cfg, "dell", "idrac")  # auto, detected as dell
    text = Path(path).read_text()
    assert "hunter2" not in text and str(secret) in text
    assert [p.name for p in (tmp_path / "state").iterdir()] == ["handback-idrac.json"]
    record = handback.read_record(path)
    assert record.config.bmcs == cfg.bmcs and record.driver == "dell"
    fc = record.config.fan_control
    assert (fc.driver, fc.bmc, fc.dell, fc.state_directory) == (
        "dell", "idrac", cfg.fan_control.dell, cfg.fan_control.state_directory)
    Path(path).write_text("{not json")
    with pytest.raises(ConfigError, match="not a hand-back record"):
        handback.read_record(path)


def test_no_manual_control_without_the_record(tmp_path: Path) -> None:
    from dataclasses import replace

    from gpuwatchd.daemon import cli
    from gpuwatchd.daemon.service import Daemon

    (tmp_path / "state").write_text("a file where the state directory should be")
    clock = ManualClock()
    node = SimNode(clock=clock, profile="full")
    cfg = cli._demo_config(str(tmp_path / "state"))
    daemon = Daemon(replace(cfg, status_socket=str(tmp_path / "s.sock")), node.hardware())
    daemon._build(daemon.config)
    try:
        for _ in range(3):
            daemon.tick()
            clock.advance(1.0)
        assert not node.bmcs["idrac"].manual and node.bmcs["idrac"].pcie_enabled
        zone = daemon.status()["fan_control"]["zones"][0]  # type: ignore[index]
        assert zone["mode"] == "monitor" and "hand-back record" in zone["reason"]
    finally:
        daemon._close_hardware()


def test_a_failed_hand_back_reaches_the_journal_at_error_priority(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.procs import free_port

    password = tmp_path / "pw"
    password.write_text("x\n")
    path = tmp_path / "gpuwatchd.yaml"  # a BMC on a port where nobody answers
    path.write_text(f"""\
bmcs:
  - {{name: sim, host: 127.0.0.1, port: {free_port()}, username: u, password_file: {password},
     timeout_seconds: 0.2}}
fan_control:
  driver: dell
  bmc: sim
  state_directory: {tmp_path}/state
  zones: [{{name: gpu}}]
""")
    journal = tmp_path / "journal"
    with open(journal, "w") as stream:
        st = os.fstat(stream.fileno())
        done = subprocess.run(
            [sys.executable, "-m", "gpuwatchd.ctl.main", "failsafe", "--config", str(path),
             "--attempts", "1"], stderr=stream, stdout=subprocess.DEVNULL, timeout=60,
            env={**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}, check=False)
    assert done.returncode == 1
    lines = journal.read_text().splitlines()
    assert any(line.startswith("<3>gpuwatchctl: could not hand the fans back") for line in lines)


def test_calibrate_names_a_dead_fan_and_finds_the_floor_of_the_healthy_ones(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clock = ManualClock()
    node = SimNode(clock=clock, profile="idle")
    node.fail_fan(2)  # Fan3A and Fan3B read 0 rpm whatever the duty (the C4130's dead fan)
    args = argparse.Namespace(config=str(config_file(tmp_path)), attempts=1, settle=10.0,
                              margin=3.0)
    assert fan_cli.calibrate_cmd(args, hardware=node.hardware, sleep=clock.advance) == 0
    out = capsys.readouterr().out
    assert "Fan3A: failed" in out and "Fan3B: failed" in out
    assert "failed fans (left out of the floor): Fan3A, Fan3B" in out
    assert "floor 10%" in out
    cal = calibrate.load(str(tmp_path / "state"), "idrac", "dell")
    assert cal is not None and cal.floor_duty == 0.1 and cal.floor_found
    assert cal.failed_fans == ("Fan3A", "Fan3B")
    assert not node.bmcs["idrac"].manual


def test_calibrate_with_every_fan_dead_has_no_floor_and_exits_1(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clock = ManualClock()
    node = SimNode(clock=clock, profile="idle")
    for fan in range(node.fan_count):
        node.fail_fan(fan)
    args = argparse.Namespace(config=str(config_file(tmp_path)), attempts=1, settle=10.0,
                              margin=0.2)
    assert fan_cli.calibrate_cmd(args, hardware=node.hardware, sleep=clock.advance) == 1
    assert "no floor: no healthy fan reports a speed" in capsys.readouterr().err
    assert calibrate.load(str(tmp_path / "state"), "idrac", "dell") is None
    assert not node.bmcs["idrac"].manual


def test_calibrate_without_a_floor_below_full_exits_1(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clock = ManualClock()
    node = SimNode(clock=clock, profile="idle")
    args = argparse.Namespace(config=str(config_file(tmp_path)), attempts=1, settle=10.0,
                              margin=30.0)  # 31 x 600 rpm: not even 80 % keeps clear of it
    assert fan_cli.calibrate_cmd(args, hardware=node.hardware, sleep=clock.advance) == 1
    assert "no floor: no duty below 100 %" in capsys.readouterr().err
    assert calibrate.load(str(tmp_path / "state"), "idrac", "dell") is None


def test_calibrate_aborts_and_hands_back_when_a_gpu_passes_its_setpoint(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clock = ManualClock()
    node = SimNode(clock=clock, profile="full")  # 2 x 250 W: 60 C at 80 %, hotter below
    args = argparse.Namespace(config=str(config_file(tmp_path)), attempts=1, settle=60.0,
                              margin=0.2)
    assert fan_cli.calibrate_cmd(args, hardware=node.hardware, sleep=clock.advance) == 1
    captured = capsys.readouterr()
    assert "aborted" in captured.out and "passed the setpoint 75 C" in captured.err
    assert calibrate.load(str(tmp_path / "state"), "idrac", "dell") is None
    assert not node.bmcs["idrac"].manual  # handed back
    assert max(node.gpu_view(i).temperature_celsius for i in range(2)) < 85.0


def tune_args(tmp_path: Path, **kw: object) -> argparse.Namespace:
    base = {"config": str(config_file(tmp_path)), "attempts": 1, "zone": None,
            "from_duty": 0.8, "to_duty": 0.5, "hold": 60.0, "run": 600.0}
    return argparse.Namespace(**{**base, **kw})


def test_tune_identifies_the_zone_and_the_daemon_uses_the_gains(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clock = ManualClock()
    node = SimNode(clock=clock, profile="full")
    args = tune_args(tmp_path)
    assert fan_cli.tune_cmd(args, hardware=node.hardware, sleep=clock.advance) == 0
    assert "time constant" in capsys.readouterr().out
    found = tuning.load(str(tmp_path / "state"), "gpu")
    assert found is not None
    model, gains = found
    with node.synced() as plant:
        truth = plant.conv_resistance(plant.fan_spec.target_rpm(0.5)) * \
            plant.gpu_spec.sink_joules_per_kelvin
    assert model.time_constant_seconds == pytest.approx(truth, rel=0.25)
    assert not node.bmcs["idrac"].manual  # handed back
    controller = build(load_config(args.config), node.hardware())
    assert controller is not None and controller.zones[0].tuned == gains
    assert controller.zones[0].pid.gains.kp == gains.kp
    controller.release()


def test_tune_aborts_into_failsafe_above_the_setpoint(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clock = ManualClock()
    node = SimNode(clock=clock, profile="full")
    args = tune_args(tmp_path, to_duty=0.2)  # 250 W at 20 % would pass 75 C
    assert fan_cli.tune_cmd(args, hardware=node.hardware, sleep=clock.advance) == 1
    assert "passed the setpoint 75 C" in capsys.readouterr().err
    assert not node.bmcs["idrac"].manual
    assert max(node.gpu_view(i).temperature_celsius for i in range(2)) < 77.0
    assert tuning.load(str(tmp_path / "state"), "gpu") is None
    assert fan_cli.tune_cmd(tune_args(tmp_path, to_duty=0.9), hardware=node.hardware,
                            sleep=clock.advance) == 2
