"""One hwmon chip lookup (gpuwatchd.links.hwmon) under the collector and the fan driver.

The same fake sysfs tree as tests/unit/test_hwmon.py: the chip a fan-control channel names is
the chip the metrics and the status table show under that name.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gpuwatchd.config.fan_drivers import parse_channel
from gpuwatchd.control.drivers.hwmon import HwmonDriver
from gpuwatchd.errors import Unsupported
from gpuwatchd.links import hwmon as sysfs
from gpuwatchd.model import HwmonChip
from tests.unit.test_hwmon import add_chip, collector

CHIP = {"name": "nct6798\n", "pwm2": "200\n", "pwm2_enable": "5\n", "fan1_input": "900\n"}


@pytest.fixture
def twins(tmp_path: Path) -> Path:
    """Two chips of one name (hwmon2 on nct6775.656, hwmon10 on nct6775.2592) and a third."""
    add_chip(tmp_path, 10, CHIP, device="nct6775.2592")
    add_chip(tmp_path, 2, CHIP, device="nct6775.656")
    add_chip(tmp_path, 3, {"name": "k10temp\n", "temp1_input": "40000\n"}, device="0000:00:18.3")
    return tmp_path


def test_the_collector_and_the_link_name_chips_alike(twins: Path) -> None:
    chips = sysfs.discover(sysfs.class_dir(str(twins)))
    assert [(c.entry, c.chip) for c in chips] == [
        ("hwmon2", "nct6798@nct6775.656"), ("hwmon3", "k10temp"),
        ("hwmon10", "nct6798@nct6775.2592")]
    readings = collector(twins).collect().readings
    assert [r.chip for r in readings if isinstance(r, HwmonChip)] == [c.chip for c in chips]


def test_the_driver_finds_a_chip_by_its_label_name_or_directory(twins: Path) -> None:
    base = twins / "class" / "hwmon"
    second = base / "hwmon10"
    channel = parse_channel("hwmon", "nct6798@nct6775.2592/pwm2")
    driver = HwmonDriver((channel,), str(twins))
    driver.take_control()
    driver.write({channel: 0.4})
    assert (second / "pwm2").read_text() == "102" and (second / "pwm2_enable").read_text() == "1"
    assert (base / "hwmon2" / "pwm2").read_text() == "200\n", "the other chip is untouched"
    driver.release()
    assert sysfs.locate(str(base), "nct6798", "pwm2") == str(base / "hwmon2" / "pwm2"), \
        "a shared name: the first chip (hwmonN order) that has the channel"
    assert sysfs.locate(str(base), "hwmon10", "pwm2") == str(second / "pwm2")


def test_attributes_under_device_on_old_kernels_are_found_for_the_driver_too(
        tmp_path: Path) -> None:
    add_chip(tmp_path, 0, {"name": "w83627ehf\n", "pwm1": "128\n"}, device="w83627ehf.656",
             old_layout=True)
    base = tmp_path / "class" / "hwmon"
    assert sysfs.locate(str(base), "w83627ehf", "pwm1") == str(base / "hwmon0" / "device" /
                                                                 "pwm1")


def test_no_such_chip_names_the_chips_there(twins: Path) -> None:
    with pytest.raises(Unsupported, match=r"hwmon3 k10temp.*hwmon10 nct6798@nct6775.2592"):
        sysfs.locate(str(twins / "class" / "hwmon"), "it8688", "pwm1")
    with pytest.raises(Unsupported, match="cannot list"):
        sysfs.discover(str(twins / "nowhere"))
