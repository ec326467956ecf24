"""Must show (issue 13): the demo with PS2 failed and a fan stopped.

``gpuwatchctl status`` exits 1 and names both; the journal gets exactly one line for each
when it fails and one when it recovers, and none while nothing changes.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from gpuwatchd.clock import ManualClock
from gpuwatchd.config.schema import NotifyConfig
from gpuwatchd.ctl.main import main
from gpuwatchd.daemon.cli import _demo_config
from gpuwatchd.daemon.service import Daemon
from gpuwatchd.health.events import MESSAGE_IDS
from gpuwatchd.sim.bmc import PSU_BROKEN, PSU_OK
from gpuwatchd.sim.node import SimNode
from tests.unit.test_status import serving, socket_dir

FAN = 2  # the third fan: rotors Fan3A and Fan3B


class Demo:
    """The demo daemon on a manual clock, PS2 repaired to start with (the demo fails it)."""

    def __init__(self, notify: NotifyConfig | None = None) -> None:
        self.clock = ManualClock()
        self.node = SimNode(clock=self.clock)
        self.bmc = self.node.bmcs["idrac"]
        self.bmc.faults.psus[2] = PSU_OK
        config = replace(_demo_config(), notify=notify or NotifyConfig())
        self.daemon = Daemon(config, self.node.hardware())
        self.daemon._build(self.daemon.config)

    def ticks(self, n: int) -> None:
        for _ in range(n):
            self.daemon.tick()
            self.clock.advance(self.daemon.config.interval_seconds)


def lines(caplog: pytest.LogCaptureFixture, sensor: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records
            if r.name == "gpuwatchd.events" and getattr(r, "SENSOR", "") == sensor]


def status(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["status", "--no-color", "--socket", str(path)])
    return code, capsys.readouterr().out


def test_failed_psu_and_stopped_fan_exit_1_and_log_once_each_way(
        caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.INFO, logger="gpuwatchd.events")
    demo = Demo()
    try:
        with socket_dir() as sockdir:
            sock = sockdir / "status.sock"
            with serving(sock, demo.daemon.status, group=None):
                demo.ticks(3)
                code, out = status(sock, capsys)
                assert code == 0, out
                assert "hardware  ok" in out
                assert not lines(caplog, "PS2") and not lines(caplog, "Fan3A")

                demo.bmc.faults.psus[2] = PSU_BROKEN
                demo.node.fail_fan(FAN)
                demo.ticks(20)  # the rotor spins down over a few ticks
                code, out = status(sock, capsys)
                assert code == 1, out
                assert "hardware  faulty" in out
                assert "BMC idrac PSU PS2: failed, AC lost  [psu_failed]" in out
                assert "BMC idrac fan Fan3A: 0 rpm  [fan_failed]" in out
                assert "health  healthy" in out  # the daemon itself is fine

                demo.ticks(10)  # nothing changes: nothing more is logged
                psu, fan = lines(caplog, "PS2"), lines(caplog, "Fan3A")
                assert [r.getMessage() for r in psu] == ["BMC idrac PSU PS2: failed, AC lost"]
                assert len(fan) == 1 and fan[0].getMessage().startswith("BMC idrac fan Fan3A:")
                assert psu[0].levelno == fan[0].levelno == logging.CRITICAL
                assert vars(psu[0])["MESSAGE_ID"] == MESSAGE_IDS["psu_failed"]
                assert vars(fan[0])["MESSAGE_ID"] == MESSAGE_IDS["fan_failed"]
                assert vars(psu[0])["BMC"] == "idrac"

                demo.bmc.faults.psus[2] = PSU_OK
                demo.node.fail_fan(FAN, failed=False)
                demo.ticks(30)
                code, out = status(sock, capsys)
                assert code == 0, out
                psu, fan = lines(caplog, "PS2"), lines(caplog, "Fan3A")
                assert len(psu) == 2 and len(fan) == 2
                for record in (psu[1], fan[1]):
                    assert vars(record)["MESSAGE_ID"] == MESSAGE_IDS["condition_cleared"]
                    assert record.levelno == logging.INFO
                    assert "recovered" in record.getMessage()
    finally:
        demo.daemon._close_hardware()


def test_the_demo_as_shipped_is_faulty_from_the_first_tick(
        caplog: pytest.LogCaptureFixture) -> None:
    """PS2 failed at start: one line at the first tick, the verdict ``faulty``."""
    caplog.set_level(logging.INFO, logger="gpuwatchd.events")
    demo = Demo()
    demo.bmc.faults.psus.clear()
    try:
        demo.ticks(5)
        doc = demo.daemon.status()
        hardware = doc["hardware"]
        assert isinstance(hardware, dict) and hardware["status"] == "faulty"
        kinds = {(c["kind"], c["sensor"]) for c in hardware["conditions"]}
        assert ("psu_failed", "PS2") in kinds and ("psu_redundancy_lost", "PSU redundancy") in kinds
        assert len(lines(caplog, "PS2")) == 1
    finally:
        demo.daemon._close_hardware()


def test_the_daemon_passes_the_same_events_to_the_notify_command(tmp_path: Path) -> None:
    """notify.command gets the PSU's failure and its recovery (critical, and its recovery)."""
    out = tmp_path / "events.jsonl"
    script = f"import sys; open({str(out)!r}, 'ab').write(sys.stdin.buffer.read() + b'\\n')"
    demo = Demo(NotifyConfig(command=(sys.executable, "-c", script), min_severity="critical"))
    try:
        demo.ticks(2)
        demo.bmc.faults.psus[2] = PSU_BROKEN
        demo.ticks(3)
        demo.bmc.faults.psus[2] = PSU_OK
        demo.ticks(3)
        hook = demo.daemon._events._hook
        assert hook is not None and hook.drain(20.0)
    finally:
        demo.daemon.shutdown()
    sent = [json.loads(line) for line in out.read_text().splitlines()]
    psu = [(e["kind"], e["fields"].get("CONDITION")) for e in sent
           if e["fields"].get("SENSOR") == "PS2"]
    assert psu == [("psu_failed", "psu_failed"), ("condition_cleared", "psu_failed")]
    assert all(e["kind"] != "psu_redundancy_lost" for e in sent)  # a warning: below critical
