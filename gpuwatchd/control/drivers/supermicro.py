"""Supermicro X9 and X10-X13 (H10-H13): fan mode Full, then a duty per fan zone.

Commands (reference/fan-control.md (b); smfc):

- get / set the fan mode: ``ipmitool raw 0x30 0x45 0x00`` / ``ipmitool raw 0x30 0x45 0x01 M``
  with M = 0 Standard, 1 Full, 2 Optimal, 3 PUE, 4 HeavyIO. Zone duties hold only in Full;
- X10-X13: zone duty ``ipmitool raw 0x30 0x70 0x66 0x01 <zone> <0x00-0x64>`` (percent);
- X9: ``ipmitool raw 0x30 0x91 0x5a 0x03 <0x10 + zone> <0x00-0xff>`` (a 0-255 scale). An X9
  answers the X10 command with ``0xcc`` (dalkain/unRAID-SuperMicro-IPMI-Auto-Fan-Control#2),
  so ``generation: auto`` tries X10 first and falls back to X9 on that code.

Zone 0 is the CPU zone (FAN1...), zone 1 the peripheral zone (FANA...). The BMC flips the mode
back on its own (smfc#99: to Full after 20-40 minutes): :meth:`in_control` reads it back and
the controller re-asserts. A fan below its lower threshold makes the BMC run its zone at
100 %; ``gpuwatchctl calibrate`` finds the floor that avoids that.

Failsafe sets mode Full, i.e. every fan at 100 %: a Supermicro BMC's automatic modes follow
CPU and board sensors and cannot see a GPU. On exit the mode found at start is restored (or
``supermicro.release_mode``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from gpuwatchd.config import SupermicroConfig
from gpuwatchd.config.fan_drivers import Channel, ChannelKind
from gpuwatchd.control.drivers import RawIpmi, percent
from gpuwatchd.control.drivers.context import Built, DriverContext
from gpuwatchd.errors import Refused

log = logging.getLogger(__name__)

NETFN_OEM = 0x30
MODES = {"standard": 0, "full": 1, "optimal": 2, "pue": 3, "heavyio": 4}
FULL = MODES["full"]
CC_BAD_ARGUMENT = 0xcc


class SupermicroDriver:
    """Zone duties on one Supermicro BMC."""

    name = "supermicro"

    def __init__(self, ipmi: RawIpmi, cfg: SupermicroConfig, target: str) -> None:
        self._ipmi = ipmi
        self._cfg = cfg
        self.target = target
        self.generation = cfg.generation if cfg.generation != "auto" else ""
        self.previous_mode: int | None = None

    def channels(self) -> tuple[Channel, ...]:
        return tuple(Channel(ChannelKind.ZONE, index=z) for z in self._cfg.zones)

    def mode(self) -> int:
        """``ipmitool raw 0x30 0x45 0x00``: the current fan mode."""
        data = self._ipmi.raw(NETFN_OEM, 0x45, b"\x00")
        if not data:
            raise Refused(f"{self.target}: empty answer to Get Fan Mode")
        return data[0]

    def set_mode(self, mode: int) -> None:
        """``ipmitool raw 0x30 0x45 0x01 M``."""
        self._ipmi.raw(NETFN_OEM, 0x45, bytes([0x01, mode]))

    def take_control(self) -> None:
        current = self.mode()
        if self.previous_mode is None:
            self.previous_mode = current
        if current != FULL:
            self.set_mode(FULL)

    def write(self, duties: Mapping[Channel, float]) -> None:
        """Zone N is channel zoneN (``cpu`` is zone 0, ``peripheral`` zone 1, from the
        config)."""
        for channel, duty in sorted(duties.items()):
            self._write_zone(channel.index, duty)

    def _write_zone(self, zone: int, duty: float) -> None:
        if self.generation in ("", "x10"):
            try:
                self._ipmi.raw(NETFN_OEM, 0x70, bytes([0x66, 0x01, zone, percent(duty)]))
                self.generation = "x10"
                return
            except Refused as exc:
                if self.generation == "x10" or exc.code != CC_BAD_ARGUMENT:
                    raise
                log.info("%s: the X10 zone command was refused (0xcc): using the X9 command",
                         self.target)
                self.generation = "x9"
        level = max(0, min(255, round(duty * 255)))
        self._ipmi.raw(NETFN_OEM, 0x91, bytes([0x5a, 0x03, 0x10 + zone, level]))

    def in_control(self) -> bool | None:
        return self.mode() == FULL

    def failsafe(self) -> None:
        """Mode Full: every fan at 100 % (the BMC cannot see the GPUs)."""
        self.set_mode(FULL)

    def release(self) -> None:
        """The mode found at start (or ``release_mode``)."""
        name = self._cfg.release_mode
        mode = self.previous_mode if name == "previous" else MODES[name]
        self.set_mode(FULL if mode is None else mode)

    def close(self) -> None:
        """The link belongs to the controller, which closes it."""


def build(ctx: DriverContext) -> Built:
    """The DRIVERS row ``supermicro``: a SupermicroDriver on its own IPMI session."""
    target = ctx.bmc().name
    link = ctx.ipmi()
    return Built(SupermicroDriver(link, ctx.config.fan_control.supermicro, target),
                 [link.close])
