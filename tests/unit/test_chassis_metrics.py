"""The chassis and hwmon metric catalogues and their renderers: readings in, families out.

The readings (gpuwatchd.model) are the one record; these check that the renderers are pure
functions of them, that every reading type is rendered, and that every metric name is written
out in full where it is defined and used (``grep gpuwatchd_fan_speed_rpm`` finds it).
"""

from __future__ import annotations

import inspect
import re
from typing import get_args

from gpuwatchd.collectors import chassis_metrics, hwmon_metrics
from gpuwatchd.model import (
    BmcIdentity,
    BmcLinkCounters,
    BmcReading,
    ChassisCurrent,
    ChassisEnergy,
    ChassisPower,
    ChassisPowerSensor,
    ChassisSensor,
    ChassisTemperature,
    ChassisVoltage,
    Family,
    FanReading,
    FanRedundancy,
    HwmonChip,
    HwmonFan,
    HwmonPwm,
    HwmonTemperature,
    PsuReading,
    PsuRedundancy,
)

BMC = BmcReading("idrac", "ipmi", True, BmcIdentity("Dell", "2.83"),
                 (ChassisPower("system", 455.0),), "",
                 BmcLinkCounters(40, 1, (("cc_0xcb", 2),), 1))
SENSORS: tuple[object, ...] = (
    FanReading("idrac", "Fan1A", 4800.0, None, "ok", (("lower_critical", 360.0),
                                                     ("lower_non_critical", 600.0))),
    ChassisTemperature("idrac", "Inlet Temp", 24.0, "ok", (("upper_critical", 42.0),)),
    ChassisVoltage("idrac", "12V", 12.1, "warning", (("upper_critical", 13.2),)),
    ChassisCurrent("idrac", "Current 1", 1.4),
    ChassisPowerSensor("idrac", "PS1 Input Power", 235.0),
    PsuReading("idrac", "PS1", present=True, input_watts=235.0, capacity_watts=1100.0),
    FanRedundancy("idrac", "Fan Redundancy", True),
    PsuRedundancy("idrac", "PS Redundancy", False),
    ChassisEnergy("idrac", "system", 910.0, 910.0, 910.0),
)


def names(families: tuple[Family, ...]) -> list[str]:
    return [f.name for f in families]


def test_every_chassis_reading_is_rendered_in_catalogue_order() -> None:
    families = chassis_metrics.render((BMC, *SENSORS))
    assert names(families) == [n for n in chassis_metrics.CATALOGUE if n in names(families)]
    assert set(names(families)) == set(chassis_metrics.CATALOGUE) - {"gpuwatchd_fan_speed_ratio"}
    assert families == chassis_metrics.render((BMC, *SENSORS)), "a pure function"


def test_a_down_bmc_renders_up_0_and_its_counters_only() -> None:
    down = BmcReading("idrac", "redfish", False, error="no answer")
    assert names(chassis_metrics.render((down,))) == [
        "gpuwatchd_bmc_up", "gpuwatchd_bmc_requests_total", "gpuwatchd_bmc_sessions_opened_total"]


def test_sensor_state_is_one_hot_per_sensor_in_reading_order() -> None:
    state = next(f for f in chassis_metrics.render(SENSORS)
                 if f.name == "gpuwatchd_bmc_sensor_state")
    on = [(dict(s.labels)["sensor"], dict(s.labels)["kind"], dict(s.labels)["state"])
          for s in state.samples if s.value == 1.0]
    assert on == [("Fan1A", "fan", "ok"), ("Inlet Temp", "temperature", "ok"),
                  ("12V", "voltage", "warning"), ("Current 1", "current", "ok"),
                  ("PS1 Input Power", "power", "ok")]


def test_every_sensor_type_has_a_kind_label() -> None:
    assert set(chassis_metrics.SENSOR_KINDS) == set(get_args(ChassisSensor))


def test_readings_carry_their_thresholds() -> None:
    fan = SENSORS[0]
    assert isinstance(fan, FanReading) and fan.lower_threshold_rpm == 600.0
    assert FanReading("b", "f", 100.0, thresholds_rpm=(("upper_critical", 9000.0),)
                      ).lower_threshold_rpm is None
    temp = SENSORS[1]
    assert isinstance(temp, ChassisTemperature) and temp.upper_critical_celsius == 42.0
    assert ChassisTemperature("b", "t", 20.0).upper_critical_celsius is None
    assert BMC.power_watts == 455.0 and (BMC.vendor, BMC.firmware) == ("Dell", "2.83")
    assert BmcReading("b", "ipmi", False).vendor == ""
    assert not PsuReading("b", "PS2", present=True, ac_lost=True).up


def test_every_hwmon_reading_is_rendered() -> None:
    readings = (HwmonChip("nct6798", "nct6798", "nct6775.656"),
                HwmonTemperature("nct6798", "SYSTIN", 41.5, 80.0, 100.0),
                HwmonFan("nct6798", "fan1", 1180.0, 300.0), HwmonPwm("nct6798", "pwm2", 0.4, 1))
    assert names(hwmon_metrics.render(readings)) == list(hwmon_metrics.CATALOGUE)


def test_metric_names_are_written_out_in_full_where_defined_and_used() -> None:
    for module in (chassis_metrics, hwmon_metrics):
        source = inspect.getsource(module)
        for name in module.CATALOGUE:
            assert re.fullmatch(r"gpuwatchd_[a-z_]+", name)
            assert source.count(f'"{name}"') >= 2, f"{name}: defined and rendered by full name"
