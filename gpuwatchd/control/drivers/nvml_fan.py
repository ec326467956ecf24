"""GPU fans through NVML, for cards that have their own fans (workstation and consumer GPUs).

Every call goes through gpuwatchd.links.nvml.NvmlLink (its own lease on the shared NVML
session, whose GPU enumeration it reuses; releasing it leaves the collectors' leases intact):

- ``nvmlDeviceGetNumFans`` at :meth:`take_control`; a GPU with none (a passive Tesla) has no
  channel, and with no GPU that has fans the driver refuses control (Unsupported): the zones
  monitor, with the reason, and the line is logged once;
- ``nvmlDeviceGetMinMaxFanSpeed(handle)``: the range the card accepts (an RTX 2070: 30-100 %,
  ``nvidia-settings -q GPUTargetFanSpeed`` shows the same range); every duty is clamped into
  it, so a duty below the card's minimum is written as the minimum, never a failed write;
- ``nvmlDeviceSetFanSpeed_v2(handle, fan, percent)`` per fan
  (``nvidia-settings -a GPUTargetFanSpeed=NN`` on a desktop), which needs root;
- back to the driver's own curve, idle fan-stop included, on release and failsafe:
  ``nvmlDeviceSetDefaultFanSpeed_v2(handle, fan)`` (``nvidia-settings -a
  GPUFanControlState=0``);
- read back: ``nvmlDeviceGetTargetFanSpeed(handle, fan)``: a target other than ours means
  someone else (nvidia-settings, another daemon) wrote it;
- the card's own curve while it is cool (``fan_control.nvml.card_curve_below_celsius``): on
  each write, ``nvmlDeviceGetTemperature(handle, NVML_TEMPERATURE_GPU)`` (``nvidia-smi
  --query-gpu=temperature.gpu``, one call per GPU); below the setting, with the zone asking
  for no more than the card's minimum, the fans go back to the card
  (``nvmlDeviceSetDefaultFanSpeed_v2``, which keeps its idle fan-stop) instead of a duty;
  they are written again from 2 C above the setting (no flapping in between) or as soon as
  the zone asks for more than the minimum.

NO_PERMISSION (not root) is a Refused: the controller stays in monitor mode and says so.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gpuwatchd.config.fan_drivers import Channel, ChannelKind, NvmlConfig
from gpuwatchd.control.drivers import percent
from gpuwatchd.control.drivers.context import Built, DriverContext
from gpuwatchd.errors import GpuwatchdError, Unsupported
from gpuwatchd.links.nvml import NvmlLink, lease

log = logging.getLogger(__name__)

NVML_TEMPERATURE_GPU = 0  # pynvml's constant: the die sensor
CARD_CURVE_HYSTERESIS_CELSIUS = 2.0


@dataclass(frozen=True)
class _Fans:
    """One GPU's fans: its handle, how many, and the speeds (percent) the card accepts."""

    handle: Any = field(compare=False)
    count: int
    min_percent: int = 0
    max_percent: int = 100


class NvmlFanDriver:
    """Fan duty for every GPU with fans."""

    name = "nvml"
    target = "nvml"

    def __init__(self, link: NvmlLink, settings: NvmlConfig | None = None) -> None:
        self._link = link
        self._card_curve_below = (settings or NvmlConfig()).card_curve_below_celsius
        self._fans: dict[Channel, _Fans] = {}
        self._discovered = False
        self._written: dict[Channel, int] = {}
        self._card_curve: set[Channel] = set()  # handed back to the card while it is cool

    def _discover(self) -> None:
        if not self._link.initialized:
            self._link.init()
        fans = {}
        for device in self._link.devices():
            if device.failure is not None:
                raise device.failure
            index, handle = device.index, device.handle
            try:
                count = int(self._link.call("nvmlDeviceGetNumFans", handle))
            except Unsupported:
                count = 0
            if count > 0:
                fans[Channel(ChannelKind.GPU, index=index)] = _Fans(
                    handle, count, *self._range(handle))
        if not self._discovered or fans != self._fans:  # once, and on a change
            log.info("NVML fan control: %s", ", ".join(
                f"{ch} ({f.count} fan{'s' if f.count > 1 else ''}, {f.min_percent}-"
                f"{f.max_percent} %)" for ch, f in fans.items()) or "no GPU with fans")
        self._fans, self._discovered = fans, True

    def _range(self, handle: Any) -> tuple[int, int]:
        """The fan speeds the card accepts, in percent (0-100 where it does not say)."""
        try:
            low, high = self._link.call("nvmlDeviceGetMinMaxFanSpeed", handle)
        except Unsupported:
            return 0, 100
        low, high = max(0, min(100, int(low))), max(0, min(100, int(high)))
        return (low, high) if low <= high else (0, 100)

    def channels(self) -> tuple[Channel, ...]:
        if not self._discovered:
            self._discover()
        return tuple(self._fans)

    def take_control(self) -> None:
        """Discover the GPUs with fans (setting a speed is what takes control); none:
        Unsupported, so the zones monitor and say why."""
        self._discover()
        if not self._fans:
            raise Unsupported("no GPU with fans of its own (passive cards are cooled by the "
                              "chassis fans: use the BMC's or hwmon's driver)")

    def write(self, duties: Mapping[Channel, float]) -> None:
        for channel, duty in sorted(duties.items()):
            fans = self._fans[channel]
            pct = min(fans.max_percent, max(fans.min_percent, percent(duty)))
            if self._to_card_curve(channel, fans, pct):
                continue
            for fan in range(fans.count):
                self._link.call("nvmlDeviceSetFanSpeed_v2", fans.handle, fan, pct)
            self._written[channel] = pct

    def card_curve(self) -> frozenset[Channel]:
        """The channels now on the card's own curve (cool, at the card's minimum)."""
        return frozenset(self._card_curve)

    def _to_card_curve(self, channel: Channel, fans: _Fans, pct: int) -> bool:
        """Whether ``channel`` stays on (or goes back to) the card's own curve this write."""
        below = self._card_curve_below
        if below is None or pct > fans.min_percent:
            self._card_curve.discard(channel)
            return False
        try:
            celsius = float(self._link.call("nvmlDeviceGetTemperature", fans.handle,
                                            NVML_TEMPERATURE_GPU))
        except GpuwatchdError:  # no temperature: the duty is written, as without the setting
            self._card_curve.discard(channel)
            return False
        if channel in self._card_curve:
            if celsius < below + CARD_CURVE_HYSTERESIS_CELSIUS:
                return True
            self._card_curve.discard(channel)
            return False
        if celsius >= below:
            return False
        for fan in range(fans.count):
            self._link.call("nvmlDeviceSetDefaultFanSpeed_v2", fans.handle, fan)
        self._card_curve.add(channel)
        self._written.pop(channel, None)
        return True

    def in_control(self) -> bool | None:
        try:
            for channel, pct in self._written.items():
                fans = self._fans[channel]
                for fan in range(fans.count):
                    target = int(self._link.call("nvmlDeviceGetTargetFanSpeed", fans.handle,
                                                 fan))
                    if abs(target - pct) > 1:
                        return False
        except Unsupported:
            return None
        return True

    def failsafe(self) -> None:
        self.release()

    def release(self) -> None:
        """Every fan back to the driver's automatic curve."""
        if not self._discovered:
            self._discover()  # a fresh process (gpuwatchctl failsafe)
        first: GpuwatchdError | None = None
        for fans in self._fans.values():
            for fan in range(fans.count):
                try:
                    self._link.call("nvmlDeviceSetDefaultFanSpeed_v2", fans.handle, fan)
                except GpuwatchdError as exc:
                    first = first or exc
        self._written.clear()
        self._card_curve.clear()
        if first is not None:
            raise first

    def close(self) -> None:
        self._link.shutdown()


def build(ctx: DriverContext) -> Built:
    """The DRIVERS row ``nvml``: every GPU with fans, over its own NVML handle."""
    nvml = NvmlFanDriver(lease(ctx.hw, ctx.config.gpus), ctx.config.fan_control.nvml)
    return Built(nvml, [nvml.close])
