"""Building the fan driver named by the config (or detected from the BMC), with its link.

The driver's row in gpuwatchd.config.fan_drivers.DRIVERS says what it needs; its factory
(gpuwatchd.control.drivers.registry.FACTORIES) builds it from a DriverContext whose links
are opened here. ``driver: auto`` asks the BMC who made it (Get Device ID, ``ipmitool mc
info``) and takes the row whose vendor id (IANA enterprise number: Dell 674, Supermicro 10876)
matches; anything else is an error that names the vendor and says to set
``fan_control.driver``.

Nothing here runs at import or at daemon start: the controller calls :func:`make_driver` on
its actuator thread, under a deadline, on its first tick.
"""

from __future__ import annotations

import logging

from gpuwatchd.config import BmcConfig, Config
from gpuwatchd.config import fan_drivers as specs
from gpuwatchd.control.drivers.context import Built, DriverContext, bmc_of
from gpuwatchd.control.drivers.registry import FACTORIES
from gpuwatchd.errors import ConfigError, Unsupported
from gpuwatchd.hardware import Hardware
from gpuwatchd.links.ipmi import IpmiLink
from gpuwatchd.links.redfish_write import RedfishWriteLink

__all__ = ["Built", "bmc_of", "detect", "ipmi_link", "make_driver"]

log = logging.getLogger(__name__)


def ipmi_link(bmc: BmcConfig, hw: Hardware) -> IpmiLink:
    """A new IpmiLink to ``bmc`` (the simulator's BMC in --demo and tests); python-ipmi is
    loaded on its first use only (gpuwatchd.links.ipmi_pyipmi)."""
    return IpmiLink(bmc, hw.clock, connector=hw.ipmi_connector(bmc.name))


def _redfish_link(bmc: BmcConfig, hw: Hardware) -> RedfishWriteLink:
    return RedfishWriteLink(bmc, hw.clock, client_factory=hw.redfish_client_factory(bmc.name))


def detect(link: IpmiLink) -> specs.DriverSpec:
    """The driver for the BMC's manufacturer ID (opens the session)."""
    link.open()
    device = link.device
    spec = specs.for_vendor(device.manufacturer_id if device is not None else None)
    if spec is not None:
        return spec
    vendor = device.vendor if device is not None else "unknown"
    raise Unsupported(f"{link.name}: no fan driver for this BMC (vendor {vendor}); set "
                      f"fan_control.driver ({', '.join(specs.DRIVERS)}) or none")


def make_driver(config: Config, hw: Hardware, recovering: bool = False) -> Built:
    """The configured driver, ready for take_control(); may open a BMC session.
    ``recovering``: for gpuwatchctl failsafe (gpuwatchd.control.drivers.context)."""
    name = config.fan_control.driver
    if name == specs.NONE:
        raise ConfigError("fan_control.driver is none: there is no fan driver to build")
    if name != specs.AUTO:
        return _build(specs.spec_for(name), config, hw, recovering=recovering)
    bmc = bmc_of(config)
    if bmc is None:
        raise ConfigError(f"fan_control.driver {name} needs fan_control.bmc")
    link = ipmi_link(bmc, hw)
    try:
        spec = detect(link)
        log.info("%s: fan driver %s (detected)", link.name, spec.name)
        return _build(spec, config, hw, link, recovering)
    except BaseException:
        link.close()
        raise


def _build(spec: specs.DriverSpec, config: Config, hw: Hardware,
           link: IpmiLink | None = None, recovering: bool = False) -> Built:
    ctx = DriverContext(spec, config, hw, lambda bmc: ipmi_link(bmc, hw),
                        lambda bmc: _redfish_link(bmc, hw), link, recovering)
    return FACTORIES[spec.name](ctx)
