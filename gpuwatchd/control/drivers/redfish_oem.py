"""Dell iDRAC9/10 over Redfish OEM attributes: a coarse floor where raw control is gone.

On iDRAC9 from 3.34.34.34 the raw manual mode answers ``0xd4``; what is left is the iDRAC's
own thermal attributes (reference/fan-control.md (c)), PATCHed as
``{"Attributes": {...}}``::

    R=/redfish/v1/Managers/iDRAC.Embedded.1/Oem/Dell/DellAttributes/System.Embedded.1
    curl -k -u root:... -X PATCH -H 'Content-Type: application/json' \\
      -d '{"Attributes": {"ThermalSettings.1.MinimumFanSpeed": 40}}' https://IDRAC$R

(iDRAC9 5.x and iDRAC10; older firmware: ``/redfish/v1/Managers/System.Embedded.1/Attributes``).

- ``attribute: minimum_fan_speed``: the zone's duty becomes the iDRAC's floor
  (``ThermalSettings.1.MinimumFanSpeed``), clamped to ``MFSMinimumLimit``-``MFSMaximumLimit``
  (a P40 in an R7425 collapsed that range to 100-100): the iDRAC's own loop still runs above.
- ``attribute: offset``: ``ThermalSettings.1.FanSpeedOffset`` Off/Low/Medium/High/Max, which only
  adds speed (R730 table: +23/+48/+71/+100 %).

Each PATCH creates an iDRAC job, so a write happens only when the value changes: at once when
it rises, at most every ``min_write_interval_seconds`` when it falls. On release the values
found at start are written back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from gpuwatchd.config import RedfishDellConfig
from gpuwatchd.config.fan_drivers import Channel, ChannelKind
from gpuwatchd.control.drivers import percent
from gpuwatchd.control.drivers.context import Built, DriverContext
from gpuwatchd.errors import Unsupported

log = logging.getLogger(__name__)

PATHS = ("/redfish/v1/Managers/iDRAC.Embedded.1/Oem/Dell/DellAttributes/System.Embedded.1",
         "/redfish/v1/Managers/System.Embedded.1/Attributes")
MFS = "ThermalSettings.1.MinimumFanSpeed"
MFS_MIN, MFS_MAX = "ThermalSettings.1.MFSMinimumLimit", "ThermalSettings.1.MFSMaximumLimit"
OFFSET = "ThermalSettings.1.FanSpeedOffset"
ALL = Channel(ChannelKind.ALL)  # the one channel: the iDRAC applies it to every fan
# FanSpeedOffset steps and the duty each adds on an R730 (iDRAC8 thermal table).
OFFSETS = (("Off", 0.0), ("Low", 0.23), ("Medium", 0.48), ("High", 0.71), ("Max", 1.0))


class RedfishAttributes(Protocol):
    """What this driver needs of a Redfish link (GET and PATCH of one resource)."""

    def get(self, path: str) -> dict[str, Any]:
        """The JSON body of ``path``; raises Unsupported on 404."""

    def patch(self, path: str, body: dict[str, Any]) -> None:
        """PATCH ``body`` to ``path``; raises Refused on 4xx."""


class RedfishDellDriver:
    """The iDRAC's minimum fan speed or fan offset as a coarse, slow actuator."""

    name = "redfish-dell"

    def __init__(self, link: RedfishAttributes, cfg: RedfishDellConfig, target: str,
                 monotonic: Callable[[], float]) -> None:
        self._link = link
        self._cfg = cfg
        self.target = target
        self._monotonic = monotonic
        self._path = ""
        self._found: dict[str, Any] = {}
        self._limits = (0, 100)
        self._last: Any = None
        self._last_write = float("-inf")

    def channels(self) -> tuple[Channel, ...]:
        return (ALL,)

    def take_control(self) -> None:
        """Find the attribute resource and remember the values to restore."""
        if self._path:
            return
        for path in PATHS:
            try:
                attrs = self._link.get(path).get("Attributes", {})
            except Unsupported:
                continue
            key = MFS if self._cfg.attribute == "minimum_fan_speed" else OFFSET
            if key not in attrs:
                continue
            self._path = path
            self._found = {key: attrs[key]}
            self._limits = (int(attrs.get(MFS_MIN, 0)), int(attrs.get(MFS_MAX, 100)))
            log.info("%s: Redfish %s found (%s = %s)", self.target, path, key, attrs[key])
            return
        raise Unsupported(f"{self.target}: no Dell thermal attributes over Redfish (tried "
                          f"{', '.join(PATHS)})")

    def value_for(self, duty: float) -> Any:
        """The attribute value for ``duty``: a clamped percent, or the smallest offset step
        that reaches it."""
        if self._cfg.attribute == "minimum_fan_speed":
            low, high = self._limits
            return max(low, min(high, percent(duty)))
        return next((name for name, added in OFFSETS if added >= duty), "Max")

    def write(self, duties: Mapping[Channel, float]) -> None:
        value = self.value_for(max(duties.values(), default=0.0))
        now = self._monotonic()
        if value == self._last:
            return
        rising = self._last is None or self._rank(value) > self._rank(self._last)
        if not rising and now - self._last_write < self._cfg.min_write_interval_seconds:
            return  # lower only every min_write_interval_seconds; raise at once
        key = next(iter(self._found))
        self._link.patch(self._path, {"Attributes": {key: value}})
        self._last, self._last_write = value, now

    @staticmethod
    def _rank(value: Any) -> int:
        names = [name for name, _ in OFFSETS]
        return names.index(value) if value in names else int(value)

    def in_control(self) -> bool | None:
        return None

    def failsafe(self) -> None:
        self.release()

    def release(self) -> None:
        """The values found at start."""
        if self._path and self._found:
            self._link.patch(self._path, {"Attributes": dict(self._found)})
            self._last, self._last_write = None, float("-inf")

    def close(self) -> None:
        """The link belongs to the controller."""


def build(ctx: DriverContext) -> Built:
    """The DRIVERS row ``redfish-dell``: the Redfish OEM driver over its own RedfishLink
    session (with PATCH)."""
    link = ctx.redfish()
    driver = RedfishDellDriver(link, ctx.config.fan_control.redfish_dell, ctx.bmc().name,
                               ctx.hw.clock.monotonic)
    return Built(driver, [link.close])
