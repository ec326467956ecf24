"""The DRIVERS table and its factory column agree, and every reader of the table (config
checks, the factory, detection, calibrate, reload) goes by it: no else-branch defaults."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from gpuwatchd.clock import ManualClock
from gpuwatchd.config import ConfigError, FanControlConfig, loads
from gpuwatchd.config import fan_drivers as specs
from gpuwatchd.config.fan_drivers import Channel, ChannelKind, DriverSections
from gpuwatchd.control.drivers.registry import FACTORIES
from gpuwatchd.control.factory import detect, make_driver
from gpuwatchd.ctl.fan import calibratable
from gpuwatchd.links.ipmi_sdr import DeviceId
from gpuwatchd.sim.node import SimNode

BMCS = ("bmcs:\n  - {name: idrac, host: 192.0.2.10, password_file: /x}\n"
        "  - {name: rf, protocol: redfish, host: 192.0.2.11, password_file: /x}\n")


def config_for(spec: specs.DriverSpec, fans: str = "") -> str:
    bmc = {"ipmi": "idrac", "redfish": "rf", None: None}[spec.bmc_protocol]
    fans = fans or ("all" if spec.expands_all else f"[{spec.channels.example}]")
    return (BMCS + f"fan_control:\n  driver: {spec.name}\n" + (f"  bmc: {bmc}\n" if bmc else "")
            + f"  zones:\n    - {{name: z, fans: {fans}}}\n")


def test_every_spec_has_exactly_one_factory_and_every_factory_a_spec() -> None:
    assert list(FACTORIES) == list(specs.DRIVERS)
    assert all(name == spec.name for name, spec in specs.DRIVERS.items())


def test_every_settings_section_belongs_to_exactly_one_driver() -> None:
    defaults = DriverSections()
    owned = [spec.section(defaults) for spec in specs.DRIVERS.values() if spec.section]
    fields = [getattr(defaults, f.name) for f in dataclasses.fields(DriverSections)]
    assert sorted(map(id, owned)) == sorted(map(id, fields))
    assert specs.settings_of(FanControlConfig()) == tuple(fields)


@pytest.mark.parametrize("spec", list(specs.DRIVERS.values()), ids=list(specs.DRIVERS))
def test_each_driver_builds_from_its_row(spec: specs.DriverSpec, tmp_path: Path) -> None:
    """The factory of each row builds that driver (and nothing falls through to another)."""
    config = loads(config_for(spec), "t.yaml")
    node = SimNode(clock=ManualClock())
    hw = dataclasses.replace(node.hardware(), sysfs_root=str(tmp_path))
    built = make_driver(config, hw)
    try:
        assert built.driver.name == spec.name
    finally:
        built.close()


@pytest.mark.parametrize("spec", list(specs.DRIVERS.values()), ids=list(specs.DRIVERS))
def test_a_channel_is_parsed_once_and_written_back_as_the_config_wrote_it(
        spec: specs.DriverSpec) -> None:
    channel = spec.parse_channel(spec.channels.example)
    assert isinstance(channel, Channel) and str(channel) == spec.channels.example
    zone = loads(config_for(spec, f"[{spec.channels.example}]"), "t.yaml").fan_control.zones[0]
    assert zone.channels == (channel,)


def test_channels_are_typed_values() -> None:
    assert specs.parse_channel("supermicro", "cpu") == Channel(ChannelKind.ZONE, index=0)
    assert str(specs.parse_channel("supermicro", "peripheral")) == "zone1"
    assert specs.parse_channel("hwmon", "hwmon3/pwm3") == Channel(ChannelKind.PWM, "hwmon3", 3)
    assert specs.parse_channel("auto", "fan2") == Channel(ChannelKind.FAN, index=2)
    assert specs.parse_channel("auto", "zone1") == Channel(ChannelKind.ZONE, index=1)
    assert str(Channel(ChannelKind.ALL)) == "all"


@pytest.mark.parametrize(("text", "message"), [
    ("fan_control: {driver: ilo}", "t.yaml:1: fan_control.driver: 'ilo' is not one of auto, "
                                   "dell, supermicro, redfish-dell, nvml, hwmon, none"),
    (BMCS + "fan_control:\n  driver: dell\n  bmc: idrac\n  zones:\n    - name: z\n"
     "      fans: [fan1, zone0]\n",
     "t.yaml:9: fan_control.zones[0].fans[1]: 'zone0' is not a dell fan channel: expected "
     "fan1 ... fan16"),
    (BMCS + "fan_control:\n  driver: auto\n  bmc: idrac\n  zones:\n    - name: z\n"
     "      fans: [gpu0]\n",
     "fan_control.zones[0].fans[0]: 'gpu0' is not a fan channel of any driver auto can "
     "detect: expected fan1 ... fan16 (dell); zone0 ... zone15, cpu or peripheral "
     "(supermicro)"),
    ("fan_control:\n  driver: hwmon\n  zones: [{name: z, fans: [nct6798]}]\n",
     "t.yaml:3: fan_control.zones[0].fans[0]: 'nct6798' is not a hwmon fan channel"),
    ("fan_control:\n  driver: redfish-dell\n  zones: [{name: z}]\n",
     "t.yaml:2: fan_control.bmc: driver redfish-dell needs a BMC"),
    (BMCS + "fan_control:\n  driver: redfish-dell\n  bmc: idrac\n  zones: [{name: z}]\n",
     "needs a BMC with protocol: redfish, and 'idrac' speaks ipmi"),
    ("fan_control:\n  zones:\n    - {name: z, channels: [fan1]}\n",
     "t.yaml:3: fan_control.zones[0].channels: unknown key"),
])
def test_bad_driver_and_channels_name_file_line_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        loads(text, "t.yaml")
    assert message in str(info.value)


def test_an_unknown_driver_is_an_error_naming_the_known_ones_not_a_default() -> None:
    config = loads("", "t.yaml")
    fc = dataclasses.replace(config.fan_control, driver="ilo")
    with pytest.raises(ConfigError, match="'ilo' is not one of auto, dell, supermicro"):
        make_driver(dataclasses.replace(config, fan_control=fc), SimNode().hardware())
    with pytest.raises(ConfigError, match="'ilo' is not one of"):
        calibratable("ilo")


class FakeLink:
    name = "bmc.example"

    def __init__(self, manufacturer: int) -> None:
        self.device = DeviceId(manufacturer_id=manufacturer, product_id=1, firmware="1.0",
                               ipmi_version="2.0")

    def open(self) -> None: ...


def test_auto_detection_goes_by_the_vendor_column() -> None:
    for spec in specs.detectable():
        assert spec.vendor_iana is not None
        assert detect(FakeLink(spec.vendor_iana)) is spec  # type: ignore[arg-type]
    fake: Any = FakeLink(11)  # HPE: no fan driver yet
    with pytest.raises(Exception, match="no fan driver for this BMC .*set fan_control.driver "
                                        r"\(dell, supermicro, redfish-dell, nvml, hwmon\)"):
        detect(fake)


def test_calibrate_goes_by_the_calibratable_column() -> None:
    assert [n for n in specs.DRIVERS if calibratable(n)] == ["dell", "supermicro"]
    assert calibratable("auto") and not calibratable("none")
