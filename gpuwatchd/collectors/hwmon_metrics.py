"""The hwmon metric catalogue, rendered from the hwmon readings (pure functions, no I/O).

The hwmon collector (gpuwatchd.collectors.hwmon) makes its readings once (gpuwatchd.model:
HwmonChip, HwmonTemperature, HwmonFan, HwmonPwm); :func:`render` turns them into families.
Command-line equivalent: ``curl -s localhost:10045/metrics | grep ^gpuwatchd_hwmon_``.
"""

from __future__ import annotations

from collections.abc import Iterable

from gpuwatchd.model import (
    Family,
    FamilyBuilder,
    HwmonChip,
    HwmonFan,
    HwmonPwm,
    HwmonTemperature,
    Kind,
)

CATALOGUE: dict[str, tuple[Kind, str]] = {
    "gpuwatchd_hwmon_chip_info": ("gauge", "An hwmon chip: its name, device and kind (gpu or "
                                           "other); always 1."),
    "gpuwatchd_hwmon_fan_speed_rpm": ("gauge", "Fan tachometer reading (fanN_input) in "
                                               "revolutions per minute."),
    "gpuwatchd_hwmon_fan_min_rpm": ("gauge", "The chip's low-speed alarm limit of a fan "
                                             "(fanN_min)."),
    "gpuwatchd_hwmon_temperature_celsius": ("gauge", "Temperature sensor reading "
                                                     "(tempN_input)."),
    "gpuwatchd_hwmon_temperature_threshold_celsius": ("gauge", "A temperature limit of the "
                                                               "chip (tempN_max, tempN_crit)."),
    "gpuwatchd_hwmon_pwm_ratio": ("gauge", "PWM output duty (pwmN / 255)."),
    "gpuwatchd_hwmon_pwm_mode": ("gauge", "pwmN_enable: 0 full speed, 1 manual, 2 and above "
                                          "the chip's automatic modes."),
    "gpuwatchd_hwmon_read_errors_total": ("counter", "hwmon files of the chip that failed to "
                                                     "read (EIO, ENXIO, ENODATA, EINVAL, "
                                                     "garbage) since start."),
}


def render(readings: Iterable[object]) -> tuple[Family, ...]:
    """The families of the hwmon readings, in the readings' order within each family."""
    b = FamilyBuilder(CATALOGUE)
    for r in readings:
        if isinstance(r, HwmonChip):
            b.add("gpuwatchd_hwmon_chip_info", 1, chip=r.chip, name=r.name, device=r.device,
                  kind=r.kind)
            b.add("gpuwatchd_hwmon_read_errors_total", r.read_errors, chip=r.chip)
        elif isinstance(r, HwmonTemperature):
            b.add("gpuwatchd_hwmon_temperature_celsius", r.celsius, chip=r.chip, sensor=r.name)
            for threshold, value in (("max", r.max_celsius), ("crit", r.crit_celsius)):
                b.add("gpuwatchd_hwmon_temperature_threshold_celsius", value, chip=r.chip,
                      sensor=r.name, threshold=threshold)
        elif isinstance(r, HwmonFan):
            b.add("gpuwatchd_hwmon_fan_speed_rpm", r.rpm, chip=r.chip, fan=r.name)
            b.add("gpuwatchd_hwmon_fan_min_rpm", r.min_rpm, chip=r.chip, fan=r.name)
        elif isinstance(r, HwmonPwm):
            b.add("gpuwatchd_hwmon_pwm_ratio", r.ratio, chip=r.chip, pwm=r.name)
            b.add("gpuwatchd_hwmon_pwm_mode", r.mode, chip=r.chip, pwm=r.name)
    return b.build()
