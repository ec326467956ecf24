"""``file:<path>`` zone inputs (issue 14, the ESXi host): a file another program writes with
the host's ``nvidia-smi --query-gpu=temperature.gpu --format=csv,noheader,nounits``; the zone
regulates on its hottest line and is failsafe within 2 intervals once the writer stops, or
writes garbage."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gpuwatchd.clock import ManualClock
from gpuwatchd.collectors.file_inputs import FileInputCollector, build, parse
from gpuwatchd.config import ConfigError, loads
from gpuwatchd.config.fan_drivers import Channel, ChannelKind
from gpuwatchd.config.selectors import FileSelector, parse_selector
from gpuwatchd.control.factory import Built
from gpuwatchd.control.loop import FanController
from gpuwatchd.hardware import Hardware
from gpuwatchd.model import CollectorResult, Snapshot
from tests.unit.test_fan_multi import FakeDriver

ALL = Channel(ChannelKind.FAN, index=1)


@pytest.mark.parametrize(("text", "value"), [
    ("61\n", 61.0), ("58\n66\n", 66.0), ("58, 120.5\n", 58.0), ("\n47\n\n", 47.0),
    ("", None), ("[N/A]\n", None), ("58\nssh: connect to host esxi port 22: timed out\n", None),
    ("nan\n", None), ("1e9\n", None),
])
def test_parse_takes_the_hottest_line_and_refuses_garbage(text: str, value: float | None) -> None:
    assert parse(text) == value


def test_the_selector_parses_and_needs_an_absolute_path() -> None:
    assert parse_selector("file:/run/gpuwatchd/esxi.csv") == FileSelector("/run/gpuwatchd/esxi.csv")
    assert FileSelector("/x").text == "file:/x"
    with pytest.raises(ConfigError, match="expected file:<absolute path>"):
        loads('fan_control:\n  driver: none\n  zones: [{name: z, inputs: ["file:x.csv"]}]\n')


def write(path: Path, text: str, clock: ManualClock) -> None:
    path.write_text(text)
    os.utime(path, (clock.time(), clock.time()))


def snapshot(collector: FileInputCollector, clock: ManualClock) -> Snapshot:
    now = clock.monotonic()
    res = CollectorResult("file_inputs", ok=True, duration_seconds=0.0,
                          updated_wall=clock.time(), updated_mono=now, stale_after_seconds=3.0,
                          collected=collector.collect())
    return Snapshot(seq=1, taken_wall=clock.time(), taken_mono=now, results=(res,))


@pytest.mark.parametrize("failure", ["hangs", "garbage", "gone"])
def test_the_zone_regulates_on_the_file_and_is_failsafe_within_two_intervals(
        tmp_path: Path, failure: str) -> None:
    clock = ManualClock()
    path = tmp_path / "esxi-gpu.csv"
    cfg = loads(f"interval_seconds: 2\nbmcs: [{{name: idrac, host: 192.0.2.10}}]\n"
                f"fan_control:\n  driver: dell\n  bmc: idrac\n  state_directory: {tmp_path}\n"
                f"  zones: [{{name: gpu, fans: [fan1], inputs: [\"file:{path}\"]}}]\n")
    (scheduled,) = build(cfg, Hardware(clock=clock))
    collector = scheduled.collector
    assert isinstance(collector, FileInputCollector)
    driver = FakeDriver("dell", "idrac", (ALL,))
    ctl = FanController(cfg, lambda: Built(driver, [driver.close]), clock)
    try:
        for _ in range(5):  # the writer: a fresh file every interval
            write(path, "64\n71\n", clock)
            reading = ctl.step(snapshot(collector, clock))
            clock.advance(2.0)
        (zone,) = reading.zones
        assert (zone.mode, zone.input_id, zone.input_celsius) == ("control", f"file:{path}",
                                                                 71.0)
        if failure == "garbage":
            write(path, "ssh: Connection closed by 192.0.2.20 port 22\n", clock)
        elif failure == "gone":
            path.unlink()
        modes = []
        for _ in range(2):  # hangs: the file is left as it was, getting older
            clock.advance(2.0)
            modes.append(ctl.step(snapshot(collector, clock)).zones[0].mode)
        assert "failsafe" in modes  # within 2 intervals of the loss
        assert "failsafe" in driver.calls
    finally:
        ctl.release()


def test_no_file_input_no_collector() -> None:
    assert build(loads(""), Hardware(clock=ManualClock())) == []
