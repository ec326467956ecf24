"""The factory column of the DRIVERS table: how each driver of gpuwatchd.config.fan_drivers is
built. One row per driver, keyed by its name; tests/unit/test_fan_registry.py checks that
every spec has exactly one factory and every factory a spec."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from gpuwatchd.config.fan_drivers import DELL, HWMON, NVML, REDFISH_DELL, SUPERMICRO
from gpuwatchd.control.drivers import dell, hwmon, nvml_fan, redfish_oem, supermicro
from gpuwatchd.control.drivers.context import Built, DriverContext

Factory = Callable[[DriverContext], Built]

FACTORIES: Mapping[str, Factory] = {
    DELL.name: dell.build,
    SUPERMICRO.name: supermicro.build,
    REDFISH_DELL.name: redfish_oem.build,
    NVML.name: nvml_fan.build,
    HWMON.name: hwmon.build,
}
