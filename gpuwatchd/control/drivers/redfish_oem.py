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
- ``attribute: offset``: ``ThermalSettings.1.FanSpeedOffset``, which only adds speed. Its steps
  are the ones the iDRAC's attribute registry lists for it (``/redfish/v1/Registries/
  ManagerAttributeRegistry`` -> ``Location[].Uri`` -> ``RegistryEntries.Attributes[]``), in
  that order; what each adds is the R730 table (+23/+48/+71/+100 %) for the names it knows,
  else spread evenly. Without a registry: the R730 steps.

Each PATCH creates an iDRAC job, so a write happens only when the value changes: at once when
it rises, at most every ``min_write_interval_seconds`` when it falls; ``write`` says whether it
sent one and what the iDRAC holds (gpuwatchd.control.drivers.Written), so
``gpuwatchd_fan_control_writes_total`` counts PATCHes and the channel duty is the value held.
On release the values found at start are written back, except a ``MinimumFanSpeed`` outside
the published limits (NOTE(iDRAC9 4.40, R740xd): 255 = "not set", refused when written back):
then ``MFSMinimumLimit``, the floor that leaves the iDRAC's own loop in charge.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from gpuwatchd.config import RedfishDellConfig
from gpuwatchd.config.fan_drivers import Channel, ChannelKind
from gpuwatchd.control.drivers import Written, percent
from gpuwatchd.control.drivers.context import Built, DriverContext
from gpuwatchd.errors import GpuwatchdError, Unsupported

log = logging.getLogger(__name__)

PATHS = ("/redfish/v1/Managers/iDRAC.Embedded.1/Oem/Dell/DellAttributes/System.Embedded.1",
         "/redfish/v1/Managers/System.Embedded.1/Attributes")
MFS = "ThermalSettings.1.MinimumFanSpeed"
MFS_MIN, MFS_MAX = "ThermalSettings.1.MFSMinimumLimit", "ThermalSettings.1.MFSMaximumLimit"
OFFSET = "ThermalSettings.1.FanSpeedOffset"
ALL = Channel(ChannelKind.ALL)  # the one channel: the iDRAC applies it to every fan
# FanSpeedOffset steps and the duty each adds on an R730 (iDRAC8 thermal table): the default,
# and what a step of these names adds where the registry lists other steps too
OFFSETS = (("Off", 0.0), ("Low", 0.23), ("Medium", 0.48), ("High", 0.71), ("Max", 1.0))
REGISTRIES = "/redfish/v1/Registries"
DEFAULT_REGISTRY = "ManagerAttributeRegistry"


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
        self._steps: tuple[tuple[str, float], ...] = OFFSETS
        self._last: Any = None
        self._last_write = float("-inf")

    def channels(self) -> tuple[Channel, ...]:
        return (ALL,)

    def take_control(self) -> None:
        """Find the attribute resource, its limits and steps, and the values to restore."""
        if self._path:
            return
        for path in PATHS:
            try:
                doc = self._link.get(path)
            except Unsupported:
                continue
            attrs = doc.get("Attributes", {})
            key = MFS if self._cfg.attribute == "minimum_fan_speed" else OFFSET
            if key not in attrs:
                continue
            self._path = path
            self._found = {key: attrs[key]}
            entries = self._registry(str(doc.get("AttributeRegistry") or DEFAULT_REGISTRY))
            bounds = entries.get(MFS, {})
            self._limits = (int(attrs.get(MFS_MIN, bounds.get("LowerBound", 0))),
                            int(attrs.get(MFS_MAX, bounds.get("UpperBound", 100))))
            self._steps = offset_steps(entries.get(OFFSET, {})) or OFFSETS
            log.info("%s: Redfish %s found (%s = %s)", self.target, path, key, attrs[key])
            return
        raise Unsupported(f"{self.target}: no Dell thermal attributes over Redfish (tried "
                          f"{', '.join(PATHS)})")

    def _registry(self, name: str) -> dict[str, dict[str, Any]]:
        """The attribute registry's entries by name (``curl .../Registries/
        ManagerAttributeRegistry``, then its ``Location[].Uri``); {} where it cannot be read."""
        try:
            index = self._link.get(f"{REGISTRIES}/{name.split('.v', maxsplit=1)[0]}")
            uris = [loc["Uri"] for loc in index.get("Location", []) if isinstance(loc, dict)
                    and isinstance(loc.get("Uri"), str)]
            registry = self._link.get(uris[0]) if uris else index
        except GpuwatchdError as exc:
            log.info("%s: no attribute registry (%s): the R730 offset steps", self.target, exc)
            return {}
        attributes = (registry.get("RegistryEntries") or {}).get("Attributes") or []
        return {str(a["AttributeName"]): a for a in attributes
                if isinstance(a, dict) and "AttributeName" in a}

    def value_for(self, duty: float) -> Any:
        """The attribute value for ``duty``: a clamped percent, or the smallest offset step
        that reaches it."""
        if self._cfg.attribute == "minimum_fan_speed":
            low, high = self._limits
            return max(low, min(high, percent(duty)))
        return next((name for name, added in self._steps if added >= duty), self._steps[-1][0])

    def duty_of(self, value: Any) -> float:
        """The duty the iDRAC holds for an attribute value (the floor, or what a step adds)."""
        if self._cfg.attribute == "minimum_fan_speed":
            return int(value) / 100
        return dict(self._steps).get(value, 0.0)

    def write(self, duties: Mapping[Channel, float]) -> Written:
        value = self.value_for(max(duties.values(), default=0.0))
        now = self._monotonic()
        rising = self._last is None or self._rank(value) > self._rank(self._last)
        if value == self._last or (
                not rising and now - self._last_write < self._cfg.min_write_interval_seconds):
            return self._held(sent=False)  # lower only every min_write_interval; raise at once
        key = next(iter(self._found))
        self._link.patch(self._path, {"Attributes": {key: value}})
        self._last, self._last_write = value, now
        return self._held(sent=True)

    def _held(self, sent: bool) -> Written:
        held = {ALL: self.duty_of(self._last)} if self._last is not None else {}
        return Written(held, sent)

    def _rank(self, value: Any) -> int:
        names = [name for name, _ in self._steps]
        return names.index(value) if value in names else int(value)

    def in_control(self) -> bool | None:
        return None

    def failsafe(self) -> None:
        self.release()

    def release(self) -> None:
        """The values found at start (a MinimumFanSpeed outside the limits: the lower one)."""
        if self._path and self._found:
            restore = dict(self._found)
            low, high = self._limits
            if MFS in restore and not low <= _int(restore[MFS], low - 1) <= high:
                log.info("%s: %s was %s at start, outside %d-%d: writing %d", self.target, MFS,
                         restore[MFS], low, high, low)
                restore[MFS] = low
            self._link.patch(self._path, {"Attributes": restore})
            self._last, self._last_write = None, float("-inf")

    def close(self) -> None:
        """The link belongs to the controller."""


def offset_steps(entry: Mapping[str, Any]) -> tuple[tuple[str, float], ...]:
    """FanSpeedOffset's steps from its registry entry (``Value[].ValueName`` in order) with
    what each adds: the R730 table for known names, else spread evenly; () if none listed."""
    names = [str(v["ValueName"]) for v in entry.get("Value") or []
             if isinstance(v, dict) and "ValueName" in v]
    known = dict(OFFSETS)
    spread = max(1, len(names) - 1)
    return tuple((n, known.get(n, i / spread)) for i, n in enumerate(names))


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def build(ctx: DriverContext) -> Built:
    """The DRIVERS row ``redfish-dell``: the Redfish OEM driver over its own RedfishLink
    session (with PATCH)."""
    link = ctx.redfish()
    driver = RedfishDellDriver(link, ctx.config.fan_control.redfish_dell, ctx.bmc().name,
                               ctx.hw.clock.monotonic)
    return Built(driver, [link.close])
