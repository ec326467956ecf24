"""Building the fan driver named by the config (or detected from the BMC), with its link.

``driver: auto`` asks the BMC who made it (Get Device ID, ``ipmitool mc info``): Dell (IANA
674) gets the Dell driver, Supermicro (10876) the Supermicro one; anything else is an error
that names the vendor and says to set ``fan_control.driver``. The driver gets its own IPMI
session (not the chassis collector's): a slow SDR walk never delays a fan write, and a write
never waits on the collector's lock. BMCs allow several sessions (iDRAC: 4+).

Nothing here runs at import or at daemon start: the controller calls :func:`make_driver` on
its actuator thread, under a deadline, on its first tick.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gpuwatchd.config import BmcConfig, Config
from gpuwatchd.control.drivers import Driver
from gpuwatchd.errors import ConfigError, Unsupported
from gpuwatchd.hardware import Hardware

log = logging.getLogger(__name__)

IANA_DELL, IANA_SUPERMICRO = 674, 10876


@dataclass
class Built:
    """A driver and what must be closed after it."""

    driver: Driver
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for close in self.closers:
            try:
                close()
            except Exception:  # closing is best effort; the fans were released before
                log.debug("closing a fan-control link failed", exc_info=True)


def bmc_of(config: Config) -> BmcConfig | None:
    """The BMC ``fan_control.bmc`` names."""
    return next((b for b in config.bmcs if b.name == config.fan_control.bmc), None)


def ipmi_link(bmc: BmcConfig, hw: Hardware) -> Any:
    """A new IpmiLink to ``bmc`` (the simulator's BMC in --demo and tests)."""
    from gpuwatchd.links.ipmi import IpmiLink  # noqa: PLC0415 - python-ipmi only when used

    return IpmiLink(bmc, hw.clock, connector=hw.extras.get(f"ipmi:{bmc.name}"))


def detect(link: Any) -> str:
    """``dell`` or ``supermicro`` from the BMC's manufacturer ID (opens the session)."""
    link.open()
    device = link.device
    maker = device.manufacturer_id if device is not None else None
    if maker == IANA_DELL:
        return "dell"
    if maker == IANA_SUPERMICRO:
        return "supermicro"
    vendor = device.vendor if device is not None else "unknown"
    raise Unsupported(f"{link.name}: no fan driver for this BMC (vendor {vendor}); set "
                      "fan_control.driver (dell, supermicro, redfish-dell, nvml, hwmon) or none")


def pcie_marker(config: Config, target: str) -> str | None:
    """The file recording that gpuwatchd disabled a Dell's third-party PCIe response (None
    when the config never disables it); in ``fan_control.state_directory``."""
    fc = config.fan_control
    if fc.dell.third_party_pcie_response != "disable":
        return None
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in target)
    return os.path.join(fc.state_directory, f"dell-pcie-disabled-{safe}")


def make_driver(config: Config, hw: Hardware) -> Built:
    """The configured driver, ready for take_control(); may open a BMC session."""
    fc = config.fan_control
    name: str = fc.driver
    if name == "nvml":
        from gpuwatchd.control.drivers.nvml_fan import NvmlFanDriver  # noqa: PLC0415
        from gpuwatchd.links.nvml import lease  # noqa: PLC0415

        nvml = NvmlFanDriver(lease(hw, config.gpus))
        return Built(nvml, [nvml.close])
    if name == "hwmon":
        from gpuwatchd.control.drivers.hwmon import HwmonDriver  # noqa: PLC0415

        channels = sorted({f for z in fc.zones if z.fans != "all" for f in z.fans})
        return Built(HwmonDriver(tuple(channels), hw.sysfs_root))
    bmc = bmc_of(config)
    if bmc is None:
        raise ConfigError(f"fan_control.driver {name} needs fan_control.bmc")
    if name == "redfish-dell":
        return _redfish_dell(config, bmc, hw)
    link = ipmi_link(bmc, hw)
    try:
        if name == "auto":
            name = detect(link)
            log.info("%s: fan driver %s (detected)", link.name, name)
        return Built(_ipmi_driver(name, config, link, bmc.name), [link.close])
    except BaseException:
        link.close()
        raise


def _ipmi_driver(name: str, config: Config, link: Any, target: str) -> Driver:
    fc = config.fan_control
    if name == "dell":
        from gpuwatchd.control.drivers.dell import DellDriver  # noqa: PLC0415

        return DellDriver(link, fc.dell, target, marker=pcie_marker(config, target))
    from gpuwatchd.control.drivers.supermicro import SupermicroDriver  # noqa: PLC0415

    return SupermicroDriver(link, fc.supermicro, target)


def _redfish_dell(config: Config, bmc: BmcConfig, hw: Hardware) -> Built:
    """The Redfish OEM driver over its own RedfishLink session (with PATCH)."""
    from gpuwatchd.control.drivers.redfish_oem import RedfishDellDriver  # noqa: PLC0415
    from gpuwatchd.links.redfish_write import RedfishWriteLink  # noqa: PLC0415

    link = RedfishWriteLink(bmc, hw.clock, client_factory=hw.extras.get(f"redfish:{bmc.name}"))
    driver = RedfishDellDriver(link, config.fan_control.redfish_dell, bmc.name,
                               hw.clock.monotonic)
    return Built(driver, [link.close])
