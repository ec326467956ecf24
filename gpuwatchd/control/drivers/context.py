"""What a driver's factory gets (:class:`DriverContext`) and gives (:class:`Built`).

Each driver module has one ``build(ctx) -> Built`` (its row in
gpuwatchd.control.drivers.registry.FACTORIES). The context carries the config, the injected
hardware roots and the fan-control BMC, and opens the links a driver needs: each driver gets
its own session (not the chassis collector's), so a slow SDR walk never delays a fan write and
a write never waits on the collector's lock. BMCs allow several sessions (iDRAC: 4+).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from gpuwatchd.config import BmcConfig, Config
from gpuwatchd.config.fan_drivers import DriverSpec
from gpuwatchd.control.drivers import Driver
from gpuwatchd.errors import ConfigError
from gpuwatchd.hardware import Hardware
from gpuwatchd.links.ipmi import IpmiLink
from gpuwatchd.links.redfish_write import RedfishWriteLink

log = logging.getLogger(__name__)


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


@dataclass
class DriverContext:
    """Everything a driver factory may use. The links are opened by gpuwatchd.control.factory
    (``connect_ipmi``, ``connect_redfish``); ``link`` is the IPMI session driver: auto opened
    to ask the BMC who made it (handed on rather than opened twice)."""

    spec: DriverSpec
    config: Config
    hw: Hardware
    connect_ipmi: Callable[[BmcConfig], IpmiLink]
    connect_redfish: Callable[[BmcConfig], RedfishWriteLink]
    link: IpmiLink | None = None
    # gpuwatchctl failsafe (a fresh process after a crash), not the daemon: undo what the
    # daemon may have changed even where its own record of it is gone.
    recovering: bool = False

    def bmc(self) -> BmcConfig:
        """The fan-control BMC (the config check makes sure a BMC driver has one)."""
        bmc = bmc_of(self.config)
        if bmc is None:
            raise ConfigError(f"fan_control.driver {self.spec.name} needs fan_control.bmc")
        return bmc

    def ipmi(self) -> IpmiLink:
        """The IPMI session to the fan-control BMC (the caller closes it: Built.closers)."""
        return self.link if self.link is not None else self.connect_ipmi(self.bmc())

    def redfish(self) -> RedfishWriteLink:
        """A Redfish session (with PATCH) to the fan-control BMC (the caller closes it)."""
        return self.connect_redfish(self.bmc())
