"""Fan drivers: the write side of fan control, one module per way of setting a fan's duty.

A driver turns duties (ratios 0-1 per *channel*) into commands and hands the fans back to the
BMC (or the chip's automatic mode) on release. Channels are what a zone's ``fans`` names:

==============  ====================================  =======================================
driver          channels                              ``fans: all`` means
==============  ====================================  =======================================
dell            fan1 ... fanN (N = dell.fan_count)     every fan (selector 0xff)
supermicro      zone0 ... zone15, cpu (0), peripheral  ``supermicro.zones`` (default 0 and 1)
                (1)
redfish-dell    all                                   the iDRAC's minimum fan speed / offset
nvml            gpu0, gpu1, ... (GPUs with fans)       every GPU fan
hwmon           <chip or hwmonN>/pwmN                 (must be listed)
==============  ====================================  =======================================

Errors follow gpuwatchd.errors: Unsupported (command absent, ``0xc1``/``0xd5``) and
Refused(code) (``0xd4`` not allowed, ``0xcc`` bad argument) are facts; Transient is a missing
reply, retried by the controller.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Protocol

_CHANNEL_FORMS = {
    "dell": (re.compile(r"fan([1-9]|1[0-6])"), "fan1 ... fan16"),
    "supermicro": (re.compile(r"zone([0-9]|1[0-5])|cpu|peripheral"),
                   "zone0 ... zone15, cpu or peripheral"),
    "nvml": (re.compile(r"gpu[0-9]+"), "gpu0, gpu1, ..."),
    "redfish-dell": (re.compile(r"all"), "all (the iDRAC sets one floor for every fan)"),
}


class RawIpmi(Protocol):
    """What IPMI drivers need of a link (gpuwatchd.links.ipmi.IpmiLink, or a fake)."""

    def raw(self, netfn: int, cmd: int, data: bytes = b"", lun: int = 0) -> bytes:
        """Response data after a zero completion code; raises Unsupported/Refused/Transient."""


class Driver(Protocol):
    """The write side of one fan controller (Dell, Supermicro, Redfish OEM, NVML, hwmon)."""

    name: str  # the driver's config name
    target: str  # the BMC's name, or "nvml"/"hwmon"

    def channels(self) -> tuple[str, ...]:
        """Every channel this driver can set (what ``fans: all`` expands to)."""

    def take_control(self) -> None:
        """Enter manual mode (raises Refused/Unsupported when the BMC says no)."""

    def write(self, duties: Mapping[str, float]) -> None:
        """Set each channel's duty (ratio 0-1)."""

    def in_control(self) -> bool | None:
        """Whether manual mode still holds (False: reverted); None when it cannot tell."""

    def failsafe(self) -> None:
        """Hand the fans to the BMC's automatic control for a fault (or full duty)."""

    def release(self) -> None:
        """Hand the fans back for good (exit): automatic control, exit settings applied."""

    def close(self) -> None:
        """Close links and sessions (after release)."""


def channel_error(driver: str, channel: str) -> str:
    """'' if ``channel`` is a valid channel name for ``driver``, else what is expected."""
    form = _CHANNEL_FORMS.get(driver)
    if form is None or form[0].fullmatch(channel):
        return ""
    return f"{channel!r} is not a {driver} fan channel: expected {form[1]}"


def canonical_channel(driver: str, channel: str) -> str:
    """One name per channel (Supermicro: cpu -> zone0, peripheral -> zone1)."""
    if driver == "supermicro":
        return {"cpu": "zone0", "peripheral": "zone1"}.get(channel, channel)
    return channel


def percent(duty: float) -> int:
    """A duty ratio as the whole percent BMCs take (0-100): 0.6 -> 60, never the hex 0x60."""
    return max(0, min(100, round(duty * 100)))
