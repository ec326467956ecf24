"""Fan drivers over recorded BMC answers (the real IpmiLink over FakeIpmi), a fake sysfs tree,
a fake NVML module and fake Redfish attributes: exact bytes, completion codes as facts."""
# ruff: noqa: S106 - a made-up password file path for a recorded BMC

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pyipmi.errors import IpmiTimeoutError

from gpuwatchd.clock import ManualClock
from gpuwatchd.config import BmcConfig, DellConfig, RedfishDellConfig, SupermicroConfig
from gpuwatchd.config.fan_drivers import Channel, ChannelError, ChannelKind, parse_channel
from gpuwatchd.control.drivers import percent
from gpuwatchd.control.drivers.dell import DellDriver
from gpuwatchd.control.drivers.hwmon import HwmonDriver
from gpuwatchd.control.drivers.nvml_fan import NvmlFanDriver
from gpuwatchd.control.drivers.redfish_oem import ALL, MFS, OFFSET, PATHS, RedfishDellDriver
from gpuwatchd.control.drivers.supermicro import SupermicroDriver
from gpuwatchd.errors import Refused, Transient, Unsupported
from gpuwatchd.links.credentials import Secret
from gpuwatchd.links.ipmi import IpmiLink
from tests.fakes.ipmi import FakeIpmi

OK = b"\x00"
MANUAL, AUTO = (0x30, b"\x30\x01\x00"), (0x30, b"\x30\x01\x01")
PCIE_QUERY = (0x30, b"\xce\x01\x16\x05\x00\x00\x00")
PCIE_ENABLED = bytes.fromhex("00" "1605000000050000" "0000")
PCIE_DISABLED = bytes.fromhex("00" "1605000000050001" "0000")
PCIE_DISABLE = (0x30, bytes.fromhex("ce00160500000005000100" "00"))
PCIE_ENABLE = (0x30, bytes.fromhex("ce00160500000005000000" "00"))


def link(fake: FakeIpmi) -> IpmiLink:
    bmc = BmcConfig(name="idrac", host="192.0.2.10", username="root", password_file="/x")
    return IpmiLink(bmc, ManualClock(), connector=fake.connector,
                    password=lambda: Secret("pw"))


def oem(fake: FakeIpmi) -> list[bytes]:
    """The OEM (netfn 0x30) requests, in order."""
    return [data for netfn, data in fake.requests if netfn == 0x30]


def fan(n: int) -> Channel:
    return Channel(ChannelKind.FAN, index=n)


def zone(n: int) -> Channel:
    return Channel(ChannelKind.ZONE, index=n)


def pwm(chip: str, n: int) -> Channel:
    return Channel(ChannelKind.PWM, chip=chip, index=n)


GPU1 = Channel(ChannelKind.GPU, index=1)


def all_fans(pct: int) -> tuple[int, bytes]:
    return (0x30, bytes([0x30, 0x02, 0xff, pct]))


# ---- Dell ----------------------------------------------------------------------------------

def test_percent_is_decimal_never_hex() -> None:
    assert percent(0.6) == 60 and percent(0.6) != 0x60 and percent(1.7) == 100 and percent(-1) == 0


def test_dell_manual_duty_and_back_to_auto_exact_bytes() -> None:
    fake = FakeIpmi({MANUAL: OK, AUTO: OK, all_fans(38): OK})
    dell = DellDriver(link(fake), DellConfig(fan_count=2), "idrac")
    dell.take_control()
    dell.write({fan(1): 0.38, fan(2): 0.38})
    dell.release()
    assert oem(fake) == [b"\x30\x01\x00", b"\x30\x02\xff\x26", b"\x30\x01\x01"]


def test_dell_0xd4_is_refused_with_an_actionable_message() -> None:
    fake = FakeIpmi({MANUAL: b"\xd4"})
    with pytest.raises(Refused) as info:
        DellDriver(link(fake), DellConfig(), "idrac").take_control()
    message = str(info.value)
    assert "0xd4" in message and "3.34.34.34" in message and "privilege" in message
    assert "redfish-dell" in message


def test_dell_0xc1_is_unsupported() -> None:
    fake = FakeIpmi({MANUAL: b"\xc1"})
    with pytest.raises(Unsupported, match="command absent"):
        DellDriver(link(fake), DellConfig(), "idrac").take_control()


def test_dell_selector_0xff_refused_falls_back_to_one_fan_at_a_time() -> None:
    fake = FakeIpmi({all_fans(50): b"\xcc", (0x30, b"\x30\x02\x00\x32"): OK,
                     (0x30, b"\x30\x02\x01\x32"): OK, (0x30, b"\x30\x02\x00\x28"): OK,
                     (0x30, b"\x30\x02\x01\x28"): OK})
    dell = DellDriver(link(fake), DellConfig(fan_count=2), "idrac")
    dell.write({fan(1): 0.5, fan(2): 0.5})
    assert dell.per_fan
    dell.write({fan(1): 0.4, fan(2): 0.4})  # 0xff not tried again
    assert oem(fake) == [b"\x30\x02\xff\x32", b"\x30\x02\x00\x32", b"\x30\x02\x01\x32",
                         b"\x30\x02\x00\x28", b"\x30\x02\x01\x28"]


def test_dell_different_duties_go_fan_by_fan() -> None:
    fake = FakeIpmi({(0x30, b"\x30\x02\x00\x14"): OK, (0x30, b"\x30\x02\x01\x3c"): OK})
    DellDriver(link(fake), DellConfig(fan_count=2), "idrac").write({fan(1): 0.2, fan(2): 0.6})
    assert oem(fake) == [b"\x30\x02\x00\x14", b"\x30\x02\x01\x3c"]


def test_dell_other_refusals_of_a_write_propagate() -> None:
    fake = FakeIpmi({all_fans(50): b"\xd4"})
    with pytest.raises(Refused) as info:
        DellDriver(link(fake), DellConfig(fan_count=1), "idrac").write({fan(1): 0.5})
    assert info.value.code == 0xd4


def test_dell_no_reply_is_transient() -> None:
    fake = FakeIpmi({all_fans(50): IpmiTimeoutError()})
    with pytest.raises(Transient):
        DellDriver(link(fake), DellConfig(fan_count=1), "idrac").write({fan(1): 0.5})


def test_dell_third_party_response_disabled_while_regulating_and_restored(
        tmp_path: Path) -> None:
    fake = FakeIpmi({MANUAL: OK, AUTO: OK, PCIE_QUERY: PCIE_ENABLED, PCIE_DISABLE: OK,
                     PCIE_ENABLE: OK})
    dell = DellDriver(link(fake), DellConfig(third_party_pcie_response="disable"), "idrac",
                      marker=str(tmp_path / "marker"))
    dell.take_control()
    assert dell.pcie_found is True and dell.pcie_disabled_by_us
    dell.failsafe()  # the iDRAC must see the GPUs again: response back on
    assert not dell.pcie_disabled_by_us
    dell.take_control()  # control again: off again
    dell.release()
    # the response is back on before automatic mode: never automatic with it off
    assert oem(fake) == [MANUAL[1], PCIE_QUERY[1], PCIE_DISABLE[1], PCIE_ENABLE[1], AUTO[1],
                         MANUAL[1], PCIE_QUERY[1], PCIE_DISABLE[1], PCIE_ENABLE[1], AUTO[1]]


def test_dell_third_party_already_disabled_is_left_as_found() -> None:
    fake = FakeIpmi({MANUAL: OK, AUTO: OK, PCIE_QUERY: PCIE_DISABLED})
    dell = DellDriver(link(fake), DellConfig(third_party_pcie_response="disable"), "idrac")
    dell.take_control()
    dell.release()
    assert oem(fake) == [MANUAL[1], PCIE_QUERY[1], AUTO[1]]


@pytest.mark.parametrize(("on_exit", "tail"), [("leave", []), ("enable", [PCIE_ENABLE[1]])])
def test_dell_third_party_on_exit_setting(on_exit: Any, tail: list[bytes],
                                          tmp_path: Path) -> None:
    fake = FakeIpmi({MANUAL: OK, AUTO: OK, PCIE_QUERY: PCIE_ENABLED, PCIE_DISABLE: OK,
                     PCIE_ENABLE: OK})
    dell = DellDriver(link(fake), DellConfig(third_party_pcie_response="disable",
                                             third_party_pcie_on_exit=on_exit), "idrac",
                      marker=str(tmp_path / "marker"))
    dell.take_control()
    dell.release()
    assert oem(fake)[3:] == [*tail, AUTO[1]]


def test_dell_12g_without_the_third_party_command_still_regulates() -> None:
    fake = FakeIpmi({MANUAL: OK, AUTO: OK})  # 0xc1 for 0x30 0xce
    dell = DellDriver(link(fake), DellConfig(third_party_pcie_response="disable"), "idrac")
    dell.take_control()
    assert dell.pcie_found is None and not dell.pcie_disabled_by_us
    dell.release()


def test_dell_release_tries_every_step_and_reports_the_first_failure(tmp_path: Path) -> None:
    fake = FakeIpmi({MANUAL: OK, AUTO: IpmiTimeoutError(), PCIE_QUERY: PCIE_ENABLED,
                     PCIE_DISABLE: OK, PCIE_ENABLE: OK})
    dell = DellDriver(link(fake), DellConfig(third_party_pcie_response="disable"), "idrac",
                      marker=str(tmp_path / "marker"))
    dell.take_control()
    with pytest.raises(Transient):
        dell.release()


# ---- Supermicro -------------------------------------------------------------------------

GET_MODE = (0x30, b"\x45\x00")


def smc(fake: FakeIpmi, **kw: Any) -> SupermicroDriver:
    return SupermicroDriver(link(fake), SupermicroConfig(**kw), "smc")


def test_supermicro_full_mode_zone_duties_and_previous_mode_back() -> None:
    fake = FakeIpmi({GET_MODE: b"\x00\x02", (0x30, b"\x45\x01\x01"): OK,
                     (0x30, b"\x70\x66\x01\x00\x2d"): OK, (0x30, b"\x70\x66\x01\x01\x2d"): OK,
                     (0x30, b"\x45\x01\x02"): OK})
    driver = smc(fake)
    driver.take_control()
    driver.write({zone(0): 0.45, zone(1): 0.45})
    driver.release()
    assert oem(fake) == [b"\x45\x00", b"\x45\x01\x01", b"\x70\x66\x01\x00\x2d",
                         b"\x70\x66\x01\x01\x2d", b"\x45\x01\x02"]
    assert driver.generation == "x10"


def test_supermicro_x9_found_from_0xcc_uses_the_0_255_scale() -> None:
    fake = FakeIpmi({(0x30, b"\x70\x66\x01\x00\x32"): b"\xcc",
                     (0x30, b"\x91\x5a\x03\x10\x80"): OK})
    driver = smc(fake)
    driver.write({zone(0): 0.5})
    assert driver.generation == "x9"
    assert oem(fake)[-1] == b"\x91\x5a\x03\x10\x80"


def test_supermicro_revert_is_read_back_and_failsafe_is_full() -> None:
    fake = FakeIpmi({GET_MODE: b"\x00\x00", (0x30, b"\x45\x01\x01"): OK})
    driver = smc(fake)
    assert driver.in_control() is False
    fake.responses[GET_MODE] = b"\x00\x01"
    assert driver.in_control() is True
    driver.failsafe()
    assert oem(fake)[-1] == b"\x45\x01\x01"


def test_supermicro_release_mode_overrides_previous() -> None:
    fake = FakeIpmi({GET_MODE: b"\x00\x01", (0x30, b"\x45\x01\x00"): OK})
    driver = smc(fake, release_mode="standard")
    driver.take_control()  # already Full: not set again
    driver.release()
    assert oem(fake) == [b"\x45\x00", b"\x45\x01\x00"]


def test_supermicro_refused_mode_is_refused() -> None:
    fake = FakeIpmi({GET_MODE: b"\xd4"})
    with pytest.raises(Refused):
        smc(fake).take_control()


def test_channel_names() -> None:
    assert parse_channel("dell", "fan3") == fan(3)
    with pytest.raises(ChannelError) as info:
        parse_channel("dell", "zone0")
    assert str(info.value) == "'zone0' is not a dell fan channel: expected fan1 ... fan16"
    assert parse_channel("supermicro", "peripheral") == zone(1)
    assert parse_channel("nvml", "gpu12") == Channel(ChannelKind.GPU, index=12)
    assert parse_channel("hwmon", "nct6798/pwm2") == pwm("nct6798", 2)


# ---- hwmon ---------------------------------------------------------------------------------

@pytest.fixture
def sysfs(tmp_path: Path) -> Path:
    chip = tmp_path / "class" / "hwmon" / "hwmon3"
    chip.mkdir(parents=True)
    (chip / "name").write_text("nct6798\n")
    (chip / "pwm2").write_text("200\n")
    (chip / "pwm2_enable").write_text("5\n")
    (chip / "pwm3").write_text("255\n")  # no pwm3_enable: no automatic mode
    return tmp_path


def test_hwmon_manual_write_detect_third_party_and_restore(sysfs: Path) -> None:
    chip = sysfs / "class" / "hwmon" / "hwmon3"
    driver = HwmonDriver((pwm("nct6798", 2), pwm("hwmon3", 3)), str(sysfs))
    driver.take_control()
    assert (chip / "pwm2_enable").read_text() == "1"
    driver.write({pwm("nct6798", 2): 0.4, pwm("hwmon3", 3): 0.2})
    assert (chip / "pwm2").read_text() == "102" and (chip / "pwm3").read_text() == "51"
    assert driver.in_control() is True
    (chip / "pwm2").write_text("180")  # somebody else (fancontrol, a BIOS tool) wrote it
    assert driver.in_control() is False
    driver.release()
    assert (chip / "pwm2_enable").read_text() == "5"  # the chip's own mode, as found
    assert (chip / "pwm3").read_text() == "255"  # no automatic mode: full speed


def test_hwmon_unknown_channel_names_the_chips(sysfs: Path) -> None:
    with pytest.raises(Unsupported, match="hwmon3"):
        HwmonDriver((pwm("it8688", 1),), str(sysfs)).take_control()


# ---- NVML ----------------------------------------------------------------------------------

class FakeNvml:
    """The few pynvml calls the NVML fan driver makes; GPU 1 has two fans."""

    class NVMLError(Exception):
        def __init__(self, value: int) -> None:
            super().__init__(f"NVML error {value}")
            self.value = value

    def __init__(self) -> None:
        self.speeds: dict[tuple[int, int], int | str] = {}
        self.calls: list[tuple[Any, ...]] = []
        self.refuse = False

    def nvmlInit(self) -> None: ...
    def nvmlShutdown(self) -> None: ...
    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i

    def nvmlDeviceGetUUID(self, h: int) -> str:
        return f"GPU-{h}"

    def nvmlDeviceGetNumFans(self, h: int) -> int:
        return 2 * h

    def nvmlDeviceSetFanSpeed_v2(self, h: int, fan: int, pct: int) -> None:
        if self.refuse:
            raise self.NVMLError(4)  # NO_PERMISSION
        self.speeds[(h, fan)] = pct

    def nvmlDeviceGetTargetFanSpeed(self, h: int, fan: int) -> int:
        value = self.speeds.get((h, fan), 30)
        return value if isinstance(value, int) else 30

    def nvmlDeviceSetDefaultFanSpeed_v2(self, h: int, fan: int) -> None:
        self.speeds[(h, fan)] = "auto"

    def nvmlDeviceGetMinMaxFanSpeed(self, h: int) -> list[int]:
        return [30, 100]  # an RTX 2070: 30 % is the lowest it accepts


def test_nvml_fans_set_read_back_and_restored() -> None:
    from gpuwatchd.links.nvml import NvmlSession

    lib = FakeNvml()
    driver = NvmlFanDriver(NvmlSession(lib).lease())
    driver.take_control()
    assert driver.channels() == (GPU1,)  # GPU 0 is passive
    driver.write({GPU1: 0.55})
    assert lib.speeds == {(1, 0): 55, (1, 1): 55}
    assert driver.in_control() is True
    lib.speeds[(1, 1)] = 80  # nvidia-settings wrote it
    assert driver.in_control() is False
    driver.release()
    assert lib.speeds == {(1, 0): "auto", (1, 1): "auto"}
    lib.refuse = True
    with pytest.raises(Refused):
        driver.write({GPU1: 0.5})


def test_nvml_fans_are_clamped_to_the_cards_range_never_below_its_minimum() -> None:
    from gpuwatchd.links.nvml import NvmlSession

    lib = FakeNvml()
    driver = NvmlFanDriver(NvmlSession(lib).lease())
    driver.take_control()
    driver.write({GPU1: 0.1})  # below the card's 30 %: written as 30 %, not refused
    assert lib.speeds == {(1, 0): 30, (1, 1): 30}
    assert driver.in_control() is True  # the card reports the 30 % it was given
    driver.failsafe()  # back to the card's own curve (idle fan-stop)
    assert lib.speeds == {(1, 0): "auto", (1, 1): "auto"}


class ThermometerNvml(FakeNvml):
    """The card's own temperature, set by the test."""

    celsius = 40

    def nvmlDeviceGetTemperature(self, h: int, sensor: int) -> int:
        assert sensor == 0  # NVML_TEMPERATURE_GPU
        return self.celsius


def test_nvml_cool_card_at_its_minimum_is_handed_back_to_its_own_curve() -> None:
    from gpuwatchd.config.fan_drivers import NvmlConfig
    from gpuwatchd.links.nvml import NvmlSession

    lib = ThermometerNvml()
    driver = NvmlFanDriver(NvmlSession(lib).lease(), NvmlConfig(card_curve_below_celsius=50.0))
    driver.take_control()
    driver.write({GPU1: 0.1})  # cool (40 C) and at the card's minimum: its own curve
    assert lib.speeds == {(1, 0): "auto", (1, 1): "auto"}  # fan-stop possible
    assert driver.card_curve() == {GPU1}
    assert driver.in_control() is True  # the card's own target is not a foreign write
    driver.write({GPU1: 0.6})  # the zone wants more: written at once
    assert lib.speeds == {(1, 0): 60, (1, 1): 60} and driver.card_curve() == set()
    driver.write({GPU1: 0.2})
    assert lib.speeds == {(1, 0): "auto", (1, 1): "auto"}
    lib.celsius = 51  # inside the hysteresis (50 .. 52 C): stays on the card's curve
    for _ in range(3):
        driver.write({GPU1: 0.2})
    assert lib.speeds == {(1, 0): "auto", (1, 1): "auto"} and driver.card_curve() == {GPU1}
    lib.celsius = 52  # warm: duties written again
    driver.write({GPU1: 0.2})
    assert lib.speeds == {(1, 0): 30, (1, 1): 30} and driver.card_curve() == set()
    lib.celsius = 51  # cooling, but not below 50 C: no flapping back
    driver.write({GPU1: 0.2})
    assert lib.speeds == {(1, 0): 30, (1, 1): 30}
    lib.celsius = 49
    driver.write({GPU1: 0.2})
    assert lib.speeds == {(1, 0): "auto", (1, 1): "auto"}


def test_nvml_without_the_setting_never_reads_the_temperature_and_always_writes() -> None:
    from gpuwatchd.links.nvml import NvmlSession

    lib = ThermometerNvml()
    session = NvmlSession(lib)
    driver = NvmlFanDriver(session.lease())
    driver.take_control()
    driver.write({GPU1: 0.1})
    assert lib.speeds == {(1, 0): 30, (1, 1): 30}
    assert session.calls["nvmlDeviceGetTemperature"] == 0


def test_nvml_card_curve_setting_is_validated_and_reaches_the_driver(tmp_path: Any) -> None:
    from gpuwatchd.config import ConfigError, loads

    config = loads("fan_control:\n  driver: nvml\n  nvml: {card_curve_below_celsius: 45}\n"
                   f"  state_directory: {tmp_path}\n  zones: [{{name: gpu}}]\n")
    assert config.fan_control.nvml.card_curve_below_celsius == 45.0
    for bad in ("150", ".nan", "warm"):
        with pytest.raises(ConfigError, match="card_curve_below_celsius"):
            loads(f"fan_control:\n  driver: nvml\n  nvml: {{card_curve_below_celsius: {bad}}}\n"
                  f"  state_directory: {tmp_path}\n  zones: [{{name: gpu}}]\n")


class PassiveNvml(FakeNvml):
    def nvmlDeviceGetNumFans(self, h: int) -> int:
        return 0  # Tesla P40s: no fans of their own


def test_nvml_with_no_gpu_that_has_fans_monitors_with_a_reason_and_logs_once(
        tmp_path: Any, caplog: pytest.LogCaptureFixture) -> None:
    from gpuwatchd.config import loads
    from gpuwatchd.control.factory import Built
    from gpuwatchd.control.loop import FanController
    from gpuwatchd.links.nvml import NvmlSession

    driver = NvmlFanDriver(NvmlSession(PassiveNvml()).lease())
    config = loads(f"interval_seconds: 1\nfan_control:\n  driver: nvml\n"
                   f"  state_directory: {tmp_path}\n  zones: [{{name: gpu}}]\n")
    ctl = FanController(config, lambda: Built(driver, [driver.close]), ManualClock())
    caplog.set_level("INFO", logger="gpuwatchd.control.drivers.nvml_fan")
    try:
        for t in range(5):
            reading = ctl.step(_gpu_snapshot(100.0 + t))
    finally:
        ctl.release()
    (zone,) = reading.zones
    assert zone.mode == "monitor" and "no GPU with fans" in zone.reason
    assert not reading.driver.manual and reading.driver.writes == 0
    assert [r.getMessage() for r in caplog.records].count(
        "NVML fan control: no GPU with fans") == 1


def _gpu_snapshot(now: float) -> Any:
    from gpuwatchd.model import Collected, CollectorResult, GpuFast, GpuReading, Snapshot

    gpus = (GpuReading(index=0, uuid="GPU-0", name="Tesla P40", up=True,
                       fast=GpuFast(temperature_celsius=60.0)),)
    res = CollectorResult("gpu", ok=True, duration_seconds=0.0, updated_wall=now,
                          updated_mono=now, stale_after_seconds=1.5,
                          collected=Collected(readings=gpus))
    return Snapshot(seq=1, taken_wall=now, taken_mono=now, results=(res,))


# ---- Redfish (Dell OEM attributes) ----------------------------------------------------------

class FakeAttributes:
    def __init__(self, attrs: dict[str, Any], modern: bool = True) -> None:
        self.attrs, self.modern = attrs, modern
        self.patches: list[dict[str, Any]] = []

    def get(self, path: str) -> dict[str, Any]:
        if path != PATHS[0 if self.modern else 1]:
            raise Unsupported(f"{path}: HTTP 404")
        return {"Attributes": dict(self.attrs)}

    def patch(self, path: str, body: dict[str, Any]) -> None:
        self.patches.append(body["Attributes"])
        self.attrs.update(body["Attributes"])


def test_redfish_minimum_fan_speed_clamped_rate_limited_and_restored() -> None:
    clock = ManualClock()
    attrs = FakeAttributes({MFS: 20, "ThermalSettings.1.MFSMinimumLimit": 9,
                            "ThermalSettings.1.MFSMaximumLimit": 60}, modern=False)
    driver = RedfishDellDriver(attrs, RedfishDellConfig(min_write_interval_seconds=60),
                               "idrac9", clock.monotonic)
    driver.take_control()
    driver.write({ALL: 0.05})  # below MFSMinimumLimit -> 9
    driver.write({ALL: 0.9})  # above the maximum -> 60, a rise: at once
    clock.advance(10)
    driver.write({ALL: 0.3})  # a fall within the interval: later
    clock.advance(60)
    driver.write({ALL: 0.3})
    driver.release()
    assert [p[MFS] for p in attrs.patches] == [9, 60, 30, 20]


def test_redfish_offset_steps_and_missing_attributes() -> None:
    attrs = FakeAttributes({OFFSET: "Off"})
    driver = RedfishDellDriver(attrs, RedfishDellConfig(attribute="offset"), "idrac9",
                               ManualClock().monotonic)
    driver.take_control()
    assert [driver.value_for(d) for d in (0.0, 0.2, 0.3, 0.6, 0.9)] == \
        ["Off", "Low", "Medium", "High", "Max"]
    with pytest.raises(Unsupported, match="no Dell thermal attributes"):
        RedfishDellDriver(FakeAttributes({}), RedfishDellConfig(), "x",
                          ManualClock().monotonic).take_control()



def test_dell_marker_tells_a_fresh_process_to_turn_the_response_back_on(tmp_path: Path) -> None:
    marker = str(tmp_path / "state" / "dell-pcie-disabled-idrac")
    answers = {MANUAL: OK, AUTO: OK, PCIE_QUERY: PCIE_ENABLED, PCIE_DISABLE: OK,
               PCIE_ENABLE: OK}
    cfg = DellConfig(third_party_pcie_response="disable")
    DellDriver(link(FakeIpmi(answers)), cfg, "idrac", marker=marker).take_control()
    assert Path(marker).exists()  # the daemon dies here, holding the response off
    fake = FakeIpmi(answers)
    fresh = DellDriver(link(fake), cfg, "idrac", marker=marker)  # gpuwatchctl failsafe
    fresh.release()
    assert oem(fake) == [PCIE_ENABLE[1], AUTO[1]] and not Path(marker).exists()
    fake = FakeIpmi(answers)
    DellDriver(link(fake), cfg, "idrac", marker=marker).release()  # nothing to restore now
    assert oem(fake) == [AUTO[1]]


@pytest.mark.parametrize(("answer", "error"), [
    (b"\xc1", Unsupported), (b"\xd5", Unsupported), (b"\xd4", Refused), (b"\xcc", Refused),
    (IpmiTimeoutError(), Transient)])
def test_each_completion_code_to_manual_mode(answer: Any, error: type) -> None:
    """Absent (0xc1/0xd5) and not allowed (0xd4) / bad argument (0xcc) are facts that keep
    the controller monitoring; no reply is a retry."""
    fake = FakeIpmi({MANUAL: answer})
    with pytest.raises(error) as info:
        DellDriver(link(fake), DellConfig(), "idrac").take_control()
    if error is not Transient:
        assert "manual fan control" in str(info.value)


def test_dell_never_disables_the_response_without_a_durable_marker(tmp_path: Path) -> None:
    answers = {MANUAL: OK, AUTO: OK, PCIE_QUERY: PCIE_ENABLED, PCIE_DISABLE: OK,
               PCIE_ENABLE: OK}
    cfg = DellConfig(third_party_pcie_response="disable")
    fake = FakeIpmi(answers)
    DellDriver(link(fake), cfg, "idrac").take_control()  # no state directory at all
    assert PCIE_DISABLE[1] not in oem(fake)
    readonly = tmp_path / "ro"
    readonly.mkdir()
    (readonly / "state").write_text("a file where the directory should be")
    fake = FakeIpmi(answers)
    dell = DellDriver(link(fake), cfg, "idrac", marker=str(readonly / "state" / "marker"))
    dell.take_control()  # the marker cannot be written: the response stays on
    assert oem(fake) == [MANUAL[1], PCIE_QUERY[1]] and not dell.pcie_disabled_by_us
    marker = tmp_path / "state" / "marker"
    fake = FakeIpmi(answers)
    DellDriver(link(fake), cfg, "idrac", marker=str(marker)).take_control()
    assert oem(fake)[-1] == PCIE_DISABLE[1] and marker.exists()
    assert [p.name for p in marker.parent.iterdir()] == ["marker"]  # no temporary left


def test_dell_failsafe_never_leaves_automatic_with_the_response_off(tmp_path: Path) -> None:
    fake = FakeIpmi({MANUAL: OK, AUTO: OK, PCIE_QUERY: PCIE_ENABLED, PCIE_DISABLE: OK,
                     PCIE_ENABLE: b"\xc9", all_fans(100): OK})
    dell = DellDriver(link(fake), DellConfig(third_party_pcie_response="disable", fan_count=1),
                      "idrac", marker=str(tmp_path / "marker"))
    dell.take_control()
    with pytest.raises(Refused):
        dell.failsafe()  # the response cannot be turned back on: full speed, not automatic
    assert oem(fake)[3:] == [PCIE_ENABLE[1], all_fans(100)[1]] and dell.pcie_disabled_by_us


def test_dell_recovery_restores_the_response_without_a_marker_and_confirms_it() -> None:
    cfg = DellConfig(third_party_pcie_response="disable")
    fake = FakeIpmi({AUTO: OK, PCIE_ENABLE: OK, PCIE_QUERY: PCIE_ENABLED})
    DellDriver(link(fake), cfg, "idrac", recovering=True).release()
    assert oem(fake) == [PCIE_ENABLE[1], PCIE_QUERY[1], AUTO[1]]
    fake = FakeIpmi({AUTO: OK, PCIE_ENABLE: OK, PCIE_QUERY: PCIE_DISABLED})  # did not take
    with pytest.raises(Refused, match="still reads disabled"):
        DellDriver(link(fake), cfg, "idrac", recovering=True).release()
    fake = FakeIpmi({AUTO: OK})  # 12G: no such setting, nothing to restore
    DellDriver(link(fake), cfg, "idrac", recovering=True).release()
    fake = FakeIpmi({AUTO: OK})
    DellDriver(link(fake), DellConfig(third_party_pcie_on_exit="leave",
                                      third_party_pcie_response="disable"), "idrac",
               recovering=True).release()
    assert oem(fake) == [AUTO[1]]
