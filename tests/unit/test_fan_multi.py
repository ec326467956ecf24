"""Several fan drivers in one daemon (fan_control.drivers), hwmon inputs (issue 14).

The workstation: the GPU's own fans (nvml) and the case fans (hwmon) regulated at once, the
case fans following max(GPU, CPU); one driver's failure fails only its own zones safe.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from gpuwatchd.clock import ManualClock
from gpuwatchd.config import ConfigError, loads
from gpuwatchd.config.fan_drivers import Channel, ChannelKind
from gpuwatchd.config.load import per_driver
from gpuwatchd.config.selectors import HwmonSensorSelector, parse_selector
from gpuwatchd.control import metrics
from gpuwatchd.control.factory import Built
from gpuwatchd.control.loop import FanController
from gpuwatchd.control.multi import FanControllers
from gpuwatchd.control.selectors import resolve
from gpuwatchd.errors import Refused
from gpuwatchd.model import (
    Collected,
    CollectorResult,
    GpuFast,
    GpuReading,
    HwmonTemperature,
    Snapshot,
)
from gpuwatchd.status.sections import fan_control as fan_section
from gpuwatchd.status.text import Style

GPU0 = Channel(ChannelKind.GPU, index=0)
PWM2 = Channel(ChannelKind.PWM, chip="nct6798", index=2)


def workstation(tmp: Path, extra: str = "") -> str:
    return f"""
interval_seconds: 1
fan_control:
  state_directory: {tmp}
  drivers:
    - {{driver: nvml}}
    - {{name: case, driver: hwmon}}
  zones:
    - {{name: gpu, driver: nvml, fans: [gpu0], inputs: ["gpu:*"], setpoint_celsius: 70}}
    - name: case
      driver: case
      fans: [nct6798/pwm2]
      inputs: ["gpu:*", "hwmon:k10temp:Tctl"]
      setpoint_celsius: 70
      ceiling_celsius: 95
{extra}"""


class FakeDriver:
    """A fan driver over nothing: records calls; ``refuse`` makes its writes refused."""

    def __init__(self, name: str, target: str, channels: tuple[Channel, ...]) -> None:
        self.name, self.target, self._channels = name, target, channels
        self.calls: list[str] = []
        self.written: list[dict[Channel, float]] = []
        self.refuse = False

    def channels(self) -> tuple[Channel, ...]:
        return self._channels

    def take_control(self) -> None:
        self.calls.append("take_control")

    def write(self, duties: Mapping[Channel, float]) -> None:
        if self.refuse:
            raise Refused(f"{self.target}: write refused")
        self.calls.append("write")
        self.written.append(dict(duties))

    def in_control(self) -> bool | None:
        return None

    def failsafe(self) -> None:
        self.calls.append("failsafe")

    def release(self) -> None:
        self.calls.append("release")

    def close(self) -> None:
        self.calls.append("close")


def snapshot(now: float, gpu: float, cpu: float) -> Snapshot:
    def result(name: str, readings: tuple[object, ...]) -> CollectorResult:
        return CollectorResult(name, ok=True, duration_seconds=0.0, updated_wall=now,
                               updated_mono=now, stale_after_seconds=1.5,
                               collected=Collected(readings=readings))
    gpus = (GpuReading(index=0, uuid="GPU-0", name="GeForce RTX 2070", up=True,
                       fast=GpuFast(temperature_celsius=gpu)),)
    temps = (HwmonTemperature("k10temp", "Tctl", cpu),)
    return Snapshot(seq=int(now), taken_wall=now, taken_mono=now,
                    results=(result("gpu", gpus), result("hwmon", temps)))


def test_the_config_holds_several_drivers_each_zone_with_its_own(tmp_path: Path) -> None:
    cfg = loads(workstation(tmp_path))
    fc = cfg.fan_control
    assert [(d.name, d.driver, d.bmc) for d in fc.drivers] == [("nvml", "nvml", None),
                                                             ("case", "hwmon", None)]
    assert [z.channels for z in fc.zones] == [(GPU0,), (PWM2,)]
    assert fc.zones[1].inputs[1] == HwmonSensorSelector("k10temp", "Tctl")
    one, two = per_driver(cfg)
    assert (one.fan_control.driver, [z.name for z in one.fan_control.zones]) == ("nvml", ["gpu"])
    assert (two.fan_control.driver, [z.name for z in two.fan_control.zones]) == ("hwmon",
                                                                                 ["case"])
    assert not one.fan_control.drivers and not two.fan_control.drivers


def test_the_single_driver_form_still_means_one_driver_for_every_zone() -> None:
    cfg = loads("bmcs:\n- {name: idrac, host: 10.0.0.2}\nfan_control:\n  driver: dell\n"
                "  bmc: idrac\n  zones:\n  - {name: a, fans: [fan1]}\n  - {name: b}\n")
    assert per_driver(cfg) == (cfg,)
    assert cfg.fan_control.zones[0].channels == (Channel(ChannelKind.FAN, index=1),)


@pytest.mark.parametrize(("text", "message"), [
    ("fan_control:\n  driver: nvml\n  drivers: [{driver: hwmon}]\n  zones: [{name: z}]\n",
     r"fan_control\.drivers: give fan_control\.driver/bmc .* or drivers, not both"),
    ("fan_control:\n  drivers: [{driver: nvml}, {driver: hwmon}]\n  zones: [{name: z}]\n",
     r"zones\[0\]\.driver: with several drivers every zone names its driver"),
    ("fan_control:\n  drivers: [{driver: nvml}]\n  zones: [{name: z, driver: gpu}]\n",
     r"zones\[0\]\.driver: no driver named 'gpu' \(drivers: nvml\)"),
    ("fan_control:\n  drivers: [{driver: nvml}, {driver: nvml}]\n  zones: []\n",
     r"drivers\[1\]\.name: duplicate driver name 'nvml'"),
    ("fan_control:\n  drivers: [{driver: dell}]\n  zones: [{name: z}]\n",
     r"drivers\[0\]\.bmc: driver dell needs a BMC"),
    ("fan_control:\n  drivers: [{driver: hwmun}]\n  zones: [{name: z}]\n",
     r"drivers\[0\]\.driver: 'hwmun' is not one of .*did you mean 'hwmon'"),
    ("fan_control:\n  drivers: [{driver: hwmon}]\n  zones: [{name: z, fans: [gpu0]}]\n",
     r"zones\[0\]\.fans\[0\]: 'gpu0' is not a hwmon fan channel"),
    ("fan_control:\n  drivers: [{driver: hwmon}]\n  zones: [{name: z}]\n",
     r"zones\[0\]\.fans: hwmon needs the PWM channels listed"),
    ("fan_control:\n  driver: nvml\n  zones: [{name: z, driver: nvml}]\n",
     r"zones\[0\]\.driver: names one of fan_control\.drivers, and there are none"),
    ("fan_control:\n  drivers: [{driver: nvml, bmc: idrac}]\n  zones: [{name: z}]\n",
     r"drivers\[0\]\.bmc: no BMC named 'idrac'"),
])
def test_several_drivers_are_checked_at_load(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        loads(text)


def test_a_hwmon_selector_parses_prints_back_and_reads_the_hwmon_reading() -> None:
    sel = parse_selector("hwmon:k10temp:Tctl")
    assert sel == HwmonSensorSelector("k10temp", "Tctl") and sel.text == "hwmon:k10temp:Tctl"
    with pytest.raises(ValueError, match="expected hwmon:<chip>:<sensor name>"):
        parse_selector("hwmon:k10temp")
    (value,) = resolve((sel,), snapshot(10.0, 50.0, 81.5), 10.5)
    assert (value.celsius, value.age_seconds, value.id) == (81.5, 0.5, "hwmon:k10temp:Tctl")
    (gone,) = resolve((HwmonSensorSelector("nct6798", "SYSTIN"),), snapshot(10, 50, 60), 10)
    assert gone.celsius is None and gone.error == "not reported by hwmon"


def rig(tmp: Path) -> tuple[FanControllers, FakeDriver, FakeDriver]:
    gpu = FakeDriver("nvml", "nvml", (GPU0, Channel(ChannelKind.GPU, index=1)))
    case = FakeDriver("hwmon", "hwmon", (PWM2,))
    one, two = per_driver(loads(workstation(tmp)))
    ctl = FanControllers([FanController(one, lambda: Built(gpu, [gpu.close]), ManualClock()),
                          FanController(two, lambda: Built(case, [case.close]), ManualClock())])
    return ctl, gpu, case


def test_gpu_fans_and_case_fans_are_regulated_at_once_from_max_gpu_cpu(tmp_path: Path) -> None:
    ctl, gpu, case = rig(tmp_path)
    try:
        reading = ctl.step(snapshot(100.0, 60.0, 85.0))
        assert [(z.zone, z.mode, z.input_id) for z in reading.zones] == [
            ("gpu", "control", "gpu:0"), ("case", "control", "hwmon:k10temp:Tctl")]
        assert [d.target for d in reading.drivers] == ["nvml", "hwmon"]
        assert gpu.calls[:2] == ["take_control", "write"] == case.calls[:2]
        assert set(gpu.written[-1]) == {GPU0, Channel(ChannelKind.GPU, index=1)}
        # the CPU at 85 C drives the case fans harder than the GPU at 60 C its own
        assert case.written[-1][PWM2] > gpu.written[-1][GPU0]
    finally:
        ctl.release()
    assert gpu.calls[-1] == "close" and case.calls[-1] == "close"


def test_one_driver_failing_fails_only_its_own_zones_safe(tmp_path: Path) -> None:
    ctl, gpu, case = rig(tmp_path)
    try:
        ctl.step(snapshot(100.0, 60.0, 80.0))
        case.refuse = True
        for t in range(1, 6):  # the CPU cooling: every tick a new (lower) duty to write
            reading = ctl.step(snapshot(100.0 + t, 60.0, 80.0 - t))
        modes = {z.zone: z.mode for z in reading.zones}
        assert modes == {"gpu": "control", "case": "failsafe"}
        assert "failsafe" in case.calls and "failsafe" not in gpu.calls
        assert reading.drivers[0].manual and not reading.drivers[1].manual
        section = fan_section.build(Snapshot(1, 0.0, 105.0, control=reading), 105.0)
        assert [r.split(":")[0] for r in section.reasons] == ["fan zone case in failsafe"]
        text = "\n".join(fan_section.render(section.data, Style(color=False)))
        assert "fan driver nvml on nvml: manual" in text
        assert "fan driver hwmon on hwmon: BMC automatic" in text
    finally:
        ctl.release()


def test_metrics_have_one_series_per_driver(tmp_path: Path) -> None:
    ctl, _gpu, _case = rig(tmp_path)
    try:
        reading = ctl.step(snapshot(100.0, 60.0, 85.0))
    finally:
        ctl.release()
    collected = metrics.render(list(reading.zones), reading.driver, reading.others)
    (info,) = [f for f in collected.families if f.name == "gpuwatchd_fan_control_info"]
    assert [dict(s.labels)["driver"] for s in info.samples] == ["nvml", "hwmon"]
