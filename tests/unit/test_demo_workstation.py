"""``gpuwatchd --demo workstation``: an RTX 2070-like card with its own two fans (issue 14).

The daemon drives the card's fans through NVML from its temperature; a duty below the card's
30 % is never requested of the card (the driver clamps); release gives the fans back to the
card's own curve (idle fan-stop); the energy counter counts.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pynvml
import pytest

from gpuwatchd.clock import ManualClock
from gpuwatchd.daemon.cli import _demo_config, parser
from gpuwatchd.daemon.service import Daemon
from gpuwatchd.sim import nvml_consumer
from gpuwatchd.sim.node import workstation
from gpuwatchd.status.table import render


def test_the_card_answers_like_a_consumer_card_with_two_fans(tmp_path: Path) -> None:
    node = workstation(ManualClock(), board=tmp_path)
    lib = node.nvml
    lib.nvmlInit()
    handle = lib.nvmlDeviceGetHandleByIndex(0)
    assert lib.nvmlDeviceGetNumFans(handle) == 2
    assert lib.nvmlDeviceGetMinMaxFanSpeed(handle) == [30, 100]
    with pytest.raises(pynvml.NVMLError):
        lib.nvmlDeviceSetFanSpeed_v2(handle, 0, 20)  # below the card's minimum
    lib.nvmlDeviceSetFanSpeed_v2(handle, 0, 45)
    assert lib.nvmlDeviceGetTargetFanSpeed(handle, 0) == 45
    lib.nvmlDeviceSetDefaultFanSpeed_v2(handle, 0)
    assert 0 not in node.card.manual  # type: ignore[union-attr]
    assert nvml_consumer.default_curve_duty(40.0) == 0.0  # idle fan-stop
    assert nvml_consumer.default_curve_duty(83.0) == 1.0
    first = lib.nvmlDeviceGetTotalEnergyConsumption(handle)
    node.clock.advance(10.0)  # type: ignore[attr-defined]
    assert lib.nvmlDeviceGetTotalEnergyConsumption(handle) > first


def test_demo_workstation_regulates_the_gpu_fans_never_below_the_cards_minimum(
        tmp_path: Path) -> None:
    assert parser().parse_args(["--demo", "workstation"]).demo == "workstation"
    assert parser().parse_args(["--demo"]).demo == "server"
    clock = ManualClock()
    node = workstation(clock, board=tmp_path / "sys")
    cfg = _demo_config(demo="workstation")
    cfg = replace(cfg, status_socket=str(tmp_path / "s.sock"),
                  exporter=replace(cfg.exporter, listen=("127.0.0.1:0",)),
                  fan_control=replace(cfg.fan_control, state_directory=str(tmp_path)))
    daemon = Daemon(cfg, node.hardware())
    daemon._build(cfg)  # collectors and the fan controller, no servers
    set_speeds: list[int] = []
    original = node.card.set_speed  # type: ignore[union-attr]

    def spy(index: int, fan: int, percent: int) -> None:
        set_speeds.append(percent)
        original(index, fan, percent)

    node.nvml.extra_calls["nvmlDeviceSetFanSpeed_v2"] = spy
    modes, duties, inputs = [], [], set()
    try:
        for _ in range(240):
            clock.advance(1.0)
            daemon.tick()
            control = daemon.snapshot.control
            assert control is not None
            modes.append(control.zones[0].mode)
            duties.append(control.zones[0].duty)
            inputs.add(control.zones[1].input_id)
        assert modes[-1] == "control" and set_speeds
        assert min(d for d in duties if d is not None) < 0.3  # the zone asked for less ...
        assert min(set_speeds) == 30  # ... and the card was never asked below its minimum
        assert all(f in node.card.manual for f in (0, 1))  # type: ignore[union-attr]
        # the case fan, on the second driver, at once: max(GPU, CPU) drives it
        assert [z.mode for z in control.zones] == ["control", "control"]
        assert [d.driver for d in control.drivers] == ["nvml", "hwmon"]
        assert "hwmon:k10temp:Tctl" in inputs
        pwm = tmp_path / "sys" / "class" / "hwmon" / "hwmon1"
        assert (pwm / "pwm2_enable").read_text().strip() == "1"
        assert abs(int((pwm / "pwm2").read_text()) / 255 - control.zones[1].duty) < 0.01
        doc = json.loads(json.dumps(daemon.status()))  # as gpuwatchctl gets it
        (row,) = doc["energy"]
        assert not row["estimated"] and row["today_kwh"] > 0  # from the card's counter
        assert row["today_cost"] == pytest.approx(row["today_kwh"] * 0.35, abs=1e-3)
        text = render(doc, now_wall=clock.time())
        assert "TODAY kWh" in text and "EUR" in text and "energy counter" in text
    finally:
        daemon._close_hardware()
    assert node.card.manual == {}  # type: ignore[union-attr]  # back to the card's curve
    assert (pwm / "pwm2_enable").read_text().strip() == "5"  # and the chip's own mode
