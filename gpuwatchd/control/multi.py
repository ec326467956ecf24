"""Several fan drivers in one daemon (``fan_control.drivers``): one FanController each.

The workstation drives its GPU's own fans (``nvml``) and its case fans (``hwmon``) at once;
one box drives the BMCs of several hosts. Each driver keeps its own controller (connection,
actuator thread, ownership, call health, failsafe): a driver that fails, or a zone of it that
goes failsafe, hands back only that driver's fans, and the others regulate on. Zones sharing a
driver still move together (gpuwatchd.control.plan). A reload is taken in place only when every
driver takes it; else the whole fan control is rebuilt.

The single-driver form (``fan_control.driver``) is one FanController, as before.
"""

from __future__ import annotations

import logging

from gpuwatchd.config import Config
from gpuwatchd.config.load import per_driver
from gpuwatchd.control import loop
from gpuwatchd.control.loop import FanController
from gpuwatchd.control.state import ControlReading
from gpuwatchd.hardware import Hardware
from gpuwatchd.model import Snapshot

log = logging.getLogger(__name__)


class FanControllers:
    """Implements the daemon's ControlLoop protocol over one FanController per driver."""

    def __init__(self, controllers: list[FanController]) -> None:
        if not controllers:
            raise ValueError("FanControllers needs at least one controller")
        self.controllers = controllers

    def step(self, snapshot: Snapshot) -> ControlReading:
        readings = [c.step(snapshot) for c in self.controllers]
        zones = tuple(z for r in readings for z in r.zones)
        return ControlReading(zones, readings[0].driver,
                              tuple(r.driver for r in readings[1:]))

    def release(self) -> None:
        """Every driver hands its fans back, even when one of them raises."""
        error: BaseException | None = None
        for controller in self.controllers:
            try:
                controller.release()
            except BaseException as exc:  # the others must still hand back; re-raised below
                log.exception("fan driver %s: release failed", controller.target)
                error = error or exc
        if error is not None:
            raise error

    def regulating(self) -> bool:
        return all(c.regulating() for c in self.controllers)

    def reconfigure(self, config: Config) -> bool:
        configs = _with_zones(config)
        if len(configs) != len(self.controllers):
            return False
        targets = [c.fan_control.bmc or c.fan_control.driver for c in configs]
        if targets != [c.target for c in self.controllers]:
            return False
        return all(c.reconfigure(cfg) for c, cfg in zip(self.controllers, configs,
                                                        strict=True))


def build(config: Config, hw: Hardware) -> FanController | FanControllers | None:
    """The fan control the config asks for: None (off), one FanController (one driver), or
    FanControllers (fan_control.drivers, one controller per driver that has zones)."""
    if not config.fan_control.drivers:
        return loop.build(config, hw)
    controllers = [c for c in (loop.build(one, hw) for one in _with_zones(config))
                   if c is not None]
    if not controllers:
        return None
    return FanControllers(controllers)


def _with_zones(config: Config) -> list[Config]:
    """The per-driver configs of the drivers that have zones (the others drive nothing)."""
    return [one for one in per_driver(config) if one.fan_control.zones]
