"""GPU fans through NVML, for cards that have their own fans (workstation and consumer GPUs).

Every call goes through gpuwatchd.links.nvml.NvmlLink (its own lease on the shared NVML
session, whose GPU enumeration it reuses; releasing it leaves the collectors' leases intact):

- ``nvmlDeviceGetNumFans`` at :meth:`take_control`; a GPU with none (a passive Tesla) has no
  channel;
- ``nvmlDeviceSetFanSpeed_v2(handle, fan, percent)`` per fan
  (``nvidia-settings -a GPUTargetFanSpeed=NN`` on a desktop), which needs root;
- back to the driver's own curve: ``nvmlDeviceSetDefaultFanSpeed_v2(handle, fan)``;
- read back: ``nvmlDeviceGetTargetFanSpeed(handle, fan)``: a target other than ours means
  someone else (nvidia-settings, another daemon) wrote it.

NO_PERMISSION (not root) is a Refused: the controller stays in monitor mode and says so.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from gpuwatchd.config.fan_drivers import Channel, ChannelKind
from gpuwatchd.control.drivers import percent
from gpuwatchd.control.drivers.context import Built, DriverContext
from gpuwatchd.errors import GpuwatchdError, Unsupported
from gpuwatchd.links.nvml import NvmlLink, lease

log = logging.getLogger(__name__)


class NvmlFanDriver:
    """Fan duty for every GPU with fans."""

    name = "nvml"
    target = "nvml"

    def __init__(self, link: NvmlLink) -> None:
        self._link = link
        self._fans: dict[Channel, tuple[Any, int]] = {}  # channel -> (handle, fan count)
        self._written: dict[Channel, int] = {}

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
                fans[Channel(ChannelKind.GPU, index=index)] = (handle, count)
        self._fans = fans
        log.info("NVML fan control: %s", ", ".join(
            f"{ch} ({n} fan{'s' if n > 1 else ''})" for ch, (_, n) in fans.items()) or
            "no GPU with fans")

    def channels(self) -> tuple[Channel, ...]:
        if not self._fans:
            self._discover()
        return tuple(self._fans)

    def take_control(self) -> None:
        """Discover the GPUs with fans (setting a speed is what takes control)."""
        self._discover()

    def write(self, duties: Mapping[Channel, float]) -> None:
        for channel, duty in sorted(duties.items()):
            handle, count = self._fans[channel]
            pct = percent(duty)
            for fan in range(count):
                self._link.call("nvmlDeviceSetFanSpeed_v2", handle, fan, pct)
            self._written[channel] = pct

    def in_control(self) -> bool | None:
        try:
            for channel, pct in self._written.items():
                handle, count = self._fans[channel]
                for fan in range(count):
                    target = int(self._link.call("nvmlDeviceGetTargetFanSpeed", handle, fan))
                    if abs(target - pct) > 1:
                        return False
        except Unsupported:
            return None
        return True

    def failsafe(self) -> None:
        self.release()

    def release(self) -> None:
        """Every fan back to the driver's automatic curve."""
        if not self._fans:
            self._discover()  # a fresh process (gpuwatchctl failsafe)
        first: GpuwatchdError | None = None
        for handle, count in self._fans.values():
            for fan in range(count):
                try:
                    self._link.call("nvmlDeviceSetDefaultFanSpeed_v2", handle, fan)
                except GpuwatchdError as exc:
                    first = first or exc
        self._written.clear()
        if first is not None:
            raise first

    def close(self) -> None:
        self._link.shutdown()


def build(ctx: DriverContext) -> Built:
    """The DRIVERS row ``nvml``: every GPU with fans, over its own NVML handle."""
    nvml = NvmlFanDriver(lease(ctx.hw, ctx.config.gpus))
    return Built(nvml, [nvml.close])
