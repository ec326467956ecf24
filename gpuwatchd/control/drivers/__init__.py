"""Fan drivers: the write side of fan control, one module per way of setting a fan's duty.

A driver turns duties (ratios 0-1 per *channel*) into commands and hands the fans back to the
BMC (or the chip's automatic mode) on release. Channels are typed
(gpuwatchd.config.fan_drivers.Channel), parsed once from a zone's ``fans`` at config load;
the table of the drivers, their channel grammars and what ``fans: all`` means is
gpuwatchd.config.fan_drivers.DRIVERS, and the code that builds each one is
gpuwatchd.control.drivers.registry.FACTORIES (docs/fan-control.md: "Adding a fan driver").

Errors follow gpuwatchd.errors: Unsupported (command absent, ``0xc1``/``0xd5``) and
Refused(code) (``0xd4`` not allowed, ``0xcc`` bad argument) are facts; Transient is a missing
reply, retried by the controller.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from gpuwatchd.config.fan_drivers import Channel


class RawIpmi(Protocol):
    """What IPMI drivers need of a link (gpuwatchd.links.ipmi.IpmiLink, or a fake)."""

    def raw(self, netfn: int, cmd: int, data: bytes = b"", lun: int = 0) -> bytes:
        """Response data after a zero completion code; raises Unsupported/Refused/Transient."""


@dataclass(frozen=True)
class Written:
    """What a ``write`` did when it was not simply "sent as asked" (what ``None`` means): the
    duty each channel holds now as the device got it (a clamped floor, an offset step), and
    whether a command went out this time (False: unchanged, or held back by a rate limit).
    The controller counts only writes sent and shows only duties written."""

    duties: Mapping[Channel, float] = field(default_factory=dict)
    sent: bool = True


class Driver(Protocol):
    """The write side of one fan controller (Dell, Supermicro, Redfish OEM, NVML, hwmon)."""

    name: str  # the driver's config name
    target: str  # the BMC's name, or "nvml"/"hwmon"

    def channels(self) -> tuple[Channel, ...]:
        """Every channel this driver can set (what ``fans: all`` expands to)."""

    def take_control(self) -> None:
        """Enter manual mode (raises Refused/Unsupported when the BMC says no)."""

    def write(self, duties: Mapping[Channel, float]) -> Written | None:
        """Set each channel's duty (ratio 0-1); None: sent as asked."""

    def in_control(self) -> bool | None:
        """Whether manual mode still holds (False: reverted); None when it cannot tell."""

    def failsafe(self) -> None:
        """Hand the fans to the BMC's automatic control for a fault (or full duty)."""

    def release(self) -> None:
        """Hand the fans back for good (exit): automatic control, exit settings applied."""

    def close(self) -> None:
        """Close links and sessions (after release)."""


def percent(duty: float) -> int:
    """A duty ratio as the whole percent BMCs take (0-100): 0.6 -> 60, never the hex 0x60."""
    return max(0, min(100, round(duty * 100)))
