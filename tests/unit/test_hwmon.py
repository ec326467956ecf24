"""The hwmon collector over a fake sysfs tree of real files, directories and symlinks.

The tree is laid out as the kernel does it: ``class/hwmon/hwmonN`` is a link into
``devices/...``, and each chip's ``device`` link names its parent device. A read that fails
with an errno no plain file can produce (EIO, ENXIO, ENODATA) comes from an injected reader,
the collector's one way of opening files; nothing is mocked.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from gpuwatchd import config as cfgmod
from gpuwatchd.clock import ManualClock
from gpuwatchd.collectors.hwmon import DEADLINE_SECONDS, HwmonCollector, build
from gpuwatchd.collectors.registry import REGISTRY, build_all
from gpuwatchd.collectors.runner import CollectorRunner
from gpuwatchd.daemon.cli import _demo_config
from gpuwatchd.errors import ConfigError, Unsupported
from gpuwatchd.exporter.render import Renderer
from gpuwatchd.hardware import Hardware
from gpuwatchd.links.hwmon import read_file
from gpuwatchd.model import (
    Collected,
    CollectorResult,
    HwmonChip,
    HwmonFan,
    HwmonPwm,
    HwmonTemperature,
    Snapshot,
)
from gpuwatchd.status import table as status_view
from gpuwatchd.status.document import DaemonInfo, build_status

NCT6798 = {
    "name": "nct6798\n",
    "fan1_input": "1180\n", "fan1_min": "300\n",
    "fan2_input": "0\n",  # an unplugged header
    "fan2_min": "0\n",
    "temp1_input": "41500\n", "temp1_max": "80000\n", "temp1_crit": "100000\n",
    "temp1_label": "SYSTIN\n",
    "temp2_input": "-5000\n", "temp2_label": "CPUTIN\n",
    "temp7_input": "38000\n",  # no label: its stem
    "pwm1": "255\n", "pwm1_enable": "5\n",  # the chip's Smart Fan IV mode
    "pwm2": "102\n", "pwm2_enable": "1\n", "pwm2_mode": "1\n",  # pwm2_mode is DC/PWM, no pwm
    "in0_input": "1040\n", "intrusion0_alarm": "0\n",  # not read
}


def add_chip(root: Path, index: int, attrs: dict[str, str], device: str | None = "nct6775.656",
             old_layout: bool = False) -> Path:
    """``class/hwmon/hwmon<index>`` -> ``devices/platform/<device>/hwmon/hwmon<index>``.

    ``old_layout``: the attributes are in the parent device (``hwmonN/device/``).
    """
    parent = root / "devices" / "platform" / (device or f"virtual{index}")
    chip = parent / "hwmon" / f"hwmon{index}"
    chip.mkdir(parents=True)
    (chip / "power").mkdir()  # real chip directories hold subdirectories: never read
    for name, text in attrs.items():
        (parent if old_layout else chip).joinpath(name).write_text(text)
    if device is not None:
        (chip / "device").symlink_to(f"../../../{parent.name}")  # as the kernel writes it
    link = root / "class" / "hwmon" / f"hwmon{index}"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(chip)
    return chip


def value(col: Collected, metric: str, /, **labels: str) -> float | None:
    want = tuple((k, str(v)) for k, v in labels.items())
    for fam in col.families:
        if fam.name == metric:
            for sample in fam.samples:
                if all(pair in sample.labels for pair in want):
                    return sample.value
    return None


def collector(root: Path, reader: Callable[[str], str] = read_file) -> HwmonCollector:
    return HwmonCollector(str(root / "class" / "hwmon"), reader)


def hwmon_config(text: str) -> cfgmod.Config:
    return cfgmod.loads(f"hwmon: {text}\n", "test.yaml")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    add_chip(tmp_path, 2, NCT6798)
    return tmp_path


# --- values, units, names -------------------------------------------------------------------


def test_values_are_in_base_units(root: Path) -> None:
    col = collector(root).collect()
    assert value(col, "gpuwatchd_hwmon_fan_speed_rpm", chip="nct6798", fan="fan1") == 1180
    assert value(col, "gpuwatchd_hwmon_fan_speed_rpm", fan="fan2") == 0  # a real 0 rpm
    assert value(col, "gpuwatchd_hwmon_fan_min_rpm", fan="fan1") == 300
    assert value(col, "gpuwatchd_hwmon_temperature_celsius", sensor="SYSTIN") == 41.5
    assert value(col, "gpuwatchd_hwmon_temperature_celsius", sensor="CPUTIN") == -5.0
    assert value(col, "gpuwatchd_hwmon_temperature_celsius", sensor="temp7") == 38.0
    assert value(col, "gpuwatchd_hwmon_temperature_threshold_celsius", sensor="SYSTIN",
                 threshold="max") == 80.0
    assert value(col, "gpuwatchd_hwmon_temperature_threshold_celsius", sensor="SYSTIN",
                 threshold="crit") == 100.0
    assert value(col, "gpuwatchd_hwmon_temperature_threshold_celsius", sensor="CPUTIN") is None
    assert value(col, "gpuwatchd_hwmon_pwm_ratio", pwm="pwm2") == pytest.approx(0.4)
    assert value(col, "gpuwatchd_hwmon_pwm_ratio", pwm="pwm1") == 1.0
    assert value(col, "gpuwatchd_hwmon_pwm_mode", pwm="pwm1") == 5
    assert value(col, "gpuwatchd_hwmon_pwm_mode", pwm="pwm2") == 1
    assert value(col, "gpuwatchd_hwmon_chip_info", chip="nct6798", name="nct6798",
                 device="nct6775.656", kind="other") == 1
    assert value(col, "gpuwatchd_hwmon_read_errors_total", chip="nct6798") == 0
    pwms = [s for f in col.families if f.name == "gpuwatchd_hwmon_pwm_ratio" for s in f.samples]
    assert [dict(s.labels)["pwm"] for s in pwms] == ["pwm1", "pwm2"]  # pwm2_mode is no pwm
    assert not any("in0" in str(s.labels) for f in col.families for s in f.samples)


def test_typed_readings_for_fan_control_and_status(root: Path) -> None:
    readings = collector(root).collect().readings
    assert readings[0] == HwmonChip("nct6798", "nct6798", "nct6775.656", "other", 0)
    assert HwmonTemperature("nct6798", "SYSTIN", 41.5, 80.0, 100.0) in readings
    assert HwmonTemperature("nct6798", "temp7", 38.0) in readings
    assert HwmonFan("nct6798", "fan1", 1180.0, 300.0) in readings
    assert HwmonPwm("nct6798", "pwm2", 0.4, 1) in readings  # 102 / 255


def test_labels_name_sensors_and_repeated_labels_get_their_stem(tmp_path: Path) -> None:
    add_chip(tmp_path, 0, {
        "name": "it8688\n",
        "temp3_input": "30000\n", "temp3_label": "AUXTIN\n",
        "temp4_input": "31000\n", "temp4_label": "AUXTIN\n",
        "temp5_input": "32000\n", "temp5_label": "  \n",  # blank label: the stem
        "fan1_input": "900\n", "fan1_label": "CPU fan\n",
        "fan10_input": "800\n",  # numeric order: fan1 before fan10
        "fan2_input": "700\n"})
    col = collector(tmp_path).collect()
    temps = [(r.name, r.celsius) for r in col.readings if isinstance(r, HwmonTemperature)]
    assert temps == [("AUXTIN temp3", 30.0), ("AUXTIN temp4", 31.0), ("temp5", 32.0)]
    fans = [r.name for r in col.readings if isinstance(r, HwmonFan)]
    assert fans == ["CPU fan", "fan2", "fan10"]
    assert value(col, "gpuwatchd_hwmon_fan_speed_rpm", chip="it8688", fan="CPU fan") == 900


def test_duplicate_chip_names_get_their_device_and_gpu_chips_are_kept(tmp_path: Path) -> None:
    add_chip(tmp_path, 10, {"name": "nvme\n", "temp1_input": "45850\n"}, device="nvme1")
    add_chip(tmp_path, 2, {"name": "nvme\n", "temp1_input": "39850\n"}, device="nvme0")
    add_chip(tmp_path, 3, {"name": "amdgpu\n", "temp1_input": "52000\n",
                           "temp1_label": "edge\n", "fan1_input": "1500\n", "pwm1": "64\n",
                           "pwm1_enable": "2\n"}, device="0000:03:00.0")
    add_chip(tmp_path, 4, {"name": "acpitz\n", "temp1_input": "27800\n"}, device=None)
    add_chip(tmp_path, 5, {"name": "acpitz\n", "temp1_input": "29800\n"}, device=None)
    col = collector(tmp_path).collect()
    chips = [r for r in col.readings if isinstance(r, HwmonChip)]
    assert [c.chip for c in chips] == ["nvme@nvme0", "amdgpu", "acpitz@hwmon4", "acpitz@hwmon5",
                                       "nvme@nvme1"]  # hwmon2 .. hwmon10 in numeric order
    assert value(col, "gpuwatchd_hwmon_temperature_celsius", chip="nvme@nvme1") == 45.85
    assert value(col, "gpuwatchd_hwmon_temperature_celsius", chip="nvme@nvme0") == 39.85
    assert value(col, "gpuwatchd_hwmon_chip_info", chip="amdgpu", device="0000:03:00.0",
                 kind="gpu") == 1
    assert value(col, "gpuwatchd_hwmon_fan_speed_rpm", chip="amdgpu", fan="fan1") == 1500
    assert value(col, "gpuwatchd_hwmon_chip_info", chip="nvme@nvme0", kind="other") == 1


def test_attributes_under_device_on_old_kernels(tmp_path: Path) -> None:
    """Before Linux 3.x most drivers kept ``name`` and the inputs in ``hwmonN/device/``."""
    add_chip(tmp_path, 0, {"name": "w83627ehf\n", "fan1_input": "1400\n"}, device="w83627ehf.656",
             old_layout=True)
    col = collector(tmp_path).collect()
    assert value(col, "gpuwatchd_hwmon_fan_speed_rpm", chip="w83627ehf", fan="fan1") == 1400


# --- read errors ----------------------------------------------------------------------------


def test_an_unreadable_file_is_absent_and_counted_never_fatal(root: Path) -> None:
    chip = root / "devices" / "platform" / "nct6775.656" / "hwmon" / "hwmon2"
    (chip / "fan1_input").unlink()
    (chip / "fan1_input").mkdir()  # read() -> EISDIR, as an odd attribute would fail
    col = collector(root)
    first = col.collect()
    assert value(first, "gpuwatchd_hwmon_fan_speed_rpm", fan="fan1") is None  # absent, not 0
    assert value(first, "gpuwatchd_hwmon_fan_min_rpm", fan="fan1") == 300  # the rest is read
    assert value(first, "gpuwatchd_hwmon_temperature_celsius", sensor="SYSTIN") == 41.5
    assert value(first, "gpuwatchd_hwmon_read_errors_total", chip="nct6798") == 1
    assert HwmonFan("nct6798", "fan1", None, 300.0) in first.readings
    second = col.collect()
    assert value(second, "gpuwatchd_hwmon_read_errors_total", chip="nct6798") == 2  # a counter


@pytest.mark.parametrize("code", [errno.EIO, errno.ENXIO, errno.ENODATA, errno.EINVAL])
def test_errno_from_the_driver_is_absent_and_counted(root: Path, code: int) -> None:
    """nct6775 fan inputs on unplugged headers, thinkpad (ENXIO), amdgpu APU fans (EINVAL)."""
    def reader(path: str) -> str:
        if path.endswith(("temp1_input", "pwm2_enable")):
            raise OSError(code, os.strerror(code), path)
        return read_file(path)

    col = collector(root, reader).collect()
    assert value(col, "gpuwatchd_hwmon_temperature_celsius", sensor="SYSTIN") is None
    assert value(col, "gpuwatchd_hwmon_temperature_threshold_celsius", sensor="SYSTIN",
                 threshold="crit") == 100.0
    assert value(col, "gpuwatchd_hwmon_pwm_mode", pwm="pwm2") is None
    assert value(col, "gpuwatchd_hwmon_pwm_ratio", pwm="pwm2") == pytest.approx(0.4)
    assert value(col, "gpuwatchd_hwmon_read_errors_total", chip="nct6798") == 2


def test_garbage_is_counted_and_a_vanished_file_is_only_absent(root: Path) -> None:
    chip = root / "devices" / "platform" / "nct6775.656" / "hwmon" / "hwmon2"
    (chip / "fan1_input").write_text("N/A\n")

    def reader(path: str) -> str:
        if path.endswith("temp7_input"):  # removed between listdir and open (hot unplug)
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        return read_file(path)

    col = collector(root, reader).collect()
    assert value(col, "gpuwatchd_hwmon_fan_speed_rpm", fan="fan1") is None
    assert value(col, "gpuwatchd_hwmon_temperature_celsius", sensor="temp7") is None
    assert value(col, "gpuwatchd_hwmon_read_errors_total", chip="nct6798") == 1


def test_an_unreadable_label_falls_back_to_the_stem(root: Path) -> None:
    def reader(path: str) -> str:
        if path.endswith("temp1_label"):
            raise OSError(errno.EIO, "Input/output error", path)
        return read_file(path)

    col = collector(root, reader).collect()
    assert value(col, "gpuwatchd_hwmon_temperature_celsius", sensor="temp1") == 41.5
    assert value(col, "gpuwatchd_hwmon_read_errors_total", chip="nct6798") == 1


# --- enabled: auto / true / false, the registry, the runner ---------------------------------


def test_auto_without_hwmon_is_no_collector_and_no_error(tmp_path: Path) -> None:
    hw = Hardware(sysfs_root=str(tmp_path))
    assert build(hwmon_config("{enabled: auto}"), hw) == []  # no class/hwmon at all
    (tmp_path / "class" / "hwmon").mkdir(parents=True)
    assert build(hwmon_config("{enabled: auto}"), hw) == []  # present but empty
    assert build(cfgmod.Config(), hw) == []  # auto is the default


def test_enabled_false_reads_nothing_even_with_chips(root: Path) -> None:
    assert build(hwmon_config("{enabled: false}"), Hardware(sysfs_root=str(root))) == []


def test_enabled_true_without_hwmon_fails_the_collect_naming_the_path(tmp_path: Path) -> None:
    [scheduled] = build(hwmon_config("{enabled: true}"), Hardware(sysfs_root=str(tmp_path)))
    base = str(tmp_path / "class" / "hwmon")
    with pytest.raises(Unsupported, match=f"cannot list {base}: No such file"):
        scheduled.collector.collect()
    (tmp_path / "class" / "hwmon").mkdir(parents=True)
    runner = CollectorRunner(scheduled, ManualClock())
    try:
        assert runner.start_if_due()
        result = runner.finish()
    finally:
        runner.close()
    assert not result.ok
    assert result.error == f"Unsupported: hwmon: no chips under {base}"


def test_registered_and_run_through_the_collector_runner(root: Path) -> None:
    assert "hwmon" in REGISTRY
    cfg = cfgmod.loads("interval_seconds: 1\ngpus: {enabled: false}\nlicence: {enabled: false}\n"
                       "hwmon: {interval_seconds: 5}\n", "test.yaml")
    clock = ManualClock()
    scheduled = [s for s in build_all(cfg, Hardware(clock=clock, sysfs_root=str(root)))
                 if s.collector.name == "hwmon"]
    assert [(s.interval_seconds, s.deadline_seconds) for s in scheduled] == [
        (5.0, DEADLINE_SECONDS)]
    runner = CollectorRunner(scheduled[0], clock)
    try:
        assert runner.start_if_due()
        result = runner.finish()
        clock.advance(1.0)
        assert not runner.start_if_due()  # every 5 s, not every tick
    finally:
        runner.close()
    assert result.ok, result.error
    snap = Snapshot(1, clock.time(), clock.monotonic(), (result,))
    assert [t.name for t in snap.readings(HwmonTemperature)] == ["SYSTIN", "CPUTIN", "temp7"]
    text = Renderer(lambda: snap, clock, process_metrics=False).render().decode()
    assert ('gpuwatchd_hwmon_temperature_celsius{chip="nct6798",sensor="SYSTIN"} 41.5'
            in text)
    assert "# TYPE gpuwatchd_hwmon_read_errors_total counter" in text
    assert 'gpuwatchd_collector_success{collector="hwmon"} 1.0' in text


def test_config_ranges_and_keys_and_the_demo_leaves_hwmon_off() -> None:
    assert hwmon_config("{interval_seconds: 10}").hwmon.interval_seconds == 10.0
    with pytest.raises(ConfigError, match=r"test.yaml:1.*hwmon.interval_seconds"):
        hwmon_config("{interval_seconds: 0.1}")
    with pytest.raises(ConfigError, match="did you mean 'enabled'"):
        hwmon_config("{enable: true}")
    with pytest.raises(ConfigError, match=r"hwmon\.enabled"):
        hwmon_config("{enabled: sometimes}")
    demo = _demo_config()
    assert demo.hwmon.enabled is False
    assert not [s for s in build_all(demo, Hardware(sysfs_root="/sys"))
                if s.collector.name == "hwmon"]


# --- gpuwatchctl status ---------------------------------------------------------------------


def info() -> DaemonInfo:
    return DaemonInfo("0.1.0", 1, 1.7e9, None, 2.0, "running", 3, 999.5)


def test_status_section_lists_chips_and_the_table_shows_them(root: Path) -> None:
    chip = root / "devices" / "platform" / "nct6775.656" / "hwmon" / "hwmon2"
    (chip / "temp1_input").write_text("85000\n")  # past max 80
    (chip / "fan1_input").write_text("200\n")  # below min 300
    add_chip(root, 3, {"name": "amdgpu\n", "temp1_input": "52000\n"}, device="0000:03:00.0")
    clock = ManualClock(start_mono=1000.0)
    col = collector(root)
    col.collect()  # one failing read counted below
    (chip / "fan2_input").unlink()
    (chip / "fan2_input").mkdir()
    res = CollectorResult("hwmon", True, 0.01, clock.time(), 999.0, 10.0,
                          collected=col.collect())
    doc = build_status(Snapshot(1, clock.time(), 999.0, (res,)), info(), 1000.0)
    assert doc["health"] == {"status": "healthy", "reasons": []}  # the machine's faults
    chips = doc["hwmon"]
    assert [c["chip"] for c in chips] == ["nct6798", "amdgpu"]
    nct = chips[0]
    assert nct["read_errors"] == 1 and nct["age_seconds"] == 1.0 and not nct["stale"]
    assert nct["fans"][0] == {"name": "fan1", "rpm": 200.0, "min_rpm": 300.0}
    assert nct["fans"][1]["rpm"] is None
    assert nct["temperatures"][0] == {"name": "SYSTIN", "celsius": 85.0, "max_celsius": 80.0,
                                      "crit_celsius": 100.0}
    assert nct["pwms"] == [{"name": "pwm1", "ratio": 1.0, "mode": 5},
                           {"name": "pwm2", "ratio": 0.4, "mode": 1}]
    assert chips[1]["kind"] == "gpu"
    text = status_view.render(doc, 1.7e9 + 5)
    assert "hwmon nct6798  (nct6775.656)  1 read errors" in text
    assert "hwmon amdgpu  (0000:03:00.0)  GPU" in text
    lines = text.splitlines()
    assert any(line.split() == ["SYSTIN", "85.0C", "max", "80C", "crit", "100C"]
               for line in lines)
    assert any(line.split() == ["pwm2", "40%", "manual"] for line in lines)
    assert any(line.split() == ["pwm1", "100%", "automatic", "(5)"] for line in lines)
    assert any(line.split() == ["fan2", "-"] for line in lines)
    colour = status_view.render(doc, 1.7e9 + 5, color=True)
    assert "\x1b[33m" + "85.0C" in colour.replace(" ", "")  # past max: yellow
    assert "\x1b[33m" + "200rpm" in colour.replace(" ", "")  # below min: yellow


def test_status_without_the_collector_is_null_and_empty_is_said(root: Path) -> None:
    doc = build_status(Snapshot(1, 0.0, 999.0), info(), 1000.0)
    assert doc["hwmon"] is None
    assert "hwmon" not in status_view.render(doc, 1.7e9)
    failing = CollectorResult("hwmon", False, 0.0, 0.0, 0.0, 10.0, error="no chips")
    doc = build_status(Snapshot(1, 0.0, 999.0, (failing,)), info(), 1000.0)
    assert doc["hwmon"] == []
    assert "collector hwmon failing: no chips" in doc["health"]["reasons"]
    assert "hwmon   no chips read yet" in status_view.render(doc, 1.7e9)
