"""Mainboard PWM fans through Linux hwmon sysfs (workstation chassis fans).

A channel is ``<chip>/pwmN`` where ``<chip>`` is the hwmon device's ``name`` (``nct6798``,
``it8688``), its label as the hwmon collector shows it (``nct6798@nct6775.656`` where two chips
share a name) or its directory (``hwmon3``), under ``<sysfs_root>/class/hwmon`` (the root is
injected: tests build a fake tree); chips are found by gpuwatchd.links.hwmon, the one lookup
the collector uses too. Shell equivalent::

    cat /sys/class/hwmon/hwmon3/name                  # nct6798
    echo 1 > /sys/class/hwmon/hwmon3/pwm2_enable      # manual
    echo 102 > /sys/class/hwmon/hwmon3/pwm2           # 40 % of 255
    echo 5 > /sys/class/hwmon/hwmon3/pwm2_enable      # the chip's own mode, as found

``pwmN_enable`` is saved at :meth:`take_control` and written back on release; where it was
already manual (1) or the chip has no ``pwmN_enable``, release writes 255 (full speed: there
is no automatic mode to return to). :meth:`in_control` notices another writer (fan2go's
third-party write check): the mode no longer 1, or a duty that is not ours.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from gpuwatchd.config.fan_drivers import Channel
from gpuwatchd.control.drivers.context import Built, DriverContext
from gpuwatchd.errors import GpuwatchdError, Refused, Transient
from gpuwatchd.links import hwmon as sysfs

log = logging.getLogger(__name__)

MANUAL = "1"
FULL = 255


class HwmonDriver:
    """PWM channels of one or more hwmon chips."""

    name = "hwmon"
    target = "hwmon"

    def __init__(self, channels: tuple[Channel, ...], sysfs_root: str = "/sys") -> None:
        self._channels = channels
        self._base = sysfs.class_dir(sysfs_root)
        self._paths: dict[Channel, str] = {}
        self._saved: dict[Channel, str | None] = {}
        self._written: dict[Channel, int] = {}

    def channels(self) -> tuple[Channel, ...]:
        return self._channels

    def _path(self, channel: Channel) -> str:
        """``<chip directory>/pwmN`` of channel ``<chip>/pwmN``."""
        if channel not in self._paths:
            self._paths[channel] = sysfs.locate(self._base, channel.chip,
                                                f"pwm{channel.index}")
        return self._paths[channel]

    def take_control(self) -> None:
        for channel in self._channels:
            path = self._path(channel)
            if channel not in self._saved:
                self._saved[channel] = _read(path + "_enable")
            if self._saved[channel] is not None:
                _write(path + "_enable", MANUAL)

    def write(self, duties: Mapping[Channel, float]) -> None:
        for channel, duty in sorted(duties.items()):
            value = max(0, min(FULL, round(duty * FULL)))
            _write(self._path(channel), str(value))
            self._written[channel] = value

    def in_control(self) -> bool | None:
        for channel, value in self._written.items():
            path = self._path(channel)
            enable = _read(path + "_enable")
            current = _read(path)
            if enable not in (None, MANUAL):
                return False
            if current is not None and current.isdigit() and abs(int(current) - value) > 2:
                return False
        return True

    def failsafe(self) -> None:
        self.release()

    def release(self) -> None:
        """The saved mode, or full speed where there was no automatic mode."""
        first: GpuwatchdError | None = None
        for channel in self._channels:
            try:
                path = self._path(channel)
                saved = self._saved.get(channel)
                if saved is None or saved == MANUAL:
                    _write(path, str(FULL))
                if saved is not None and saved != MANUAL:
                    _write(path + "_enable", saved)
            except GpuwatchdError as exc:
                first = first or exc
        self._written.clear()
        if first is not None:
            raise first

    def close(self) -> None:
        """Nothing held open."""


def build(ctx: DriverContext) -> Built:
    """The DRIVERS row ``hwmon``: the PWM channels the zones list (``fans: all`` is refused
    at config load), under the injected sysfs root."""
    channels = sorted({ch for z in ctx.config.fan_control.zones for ch in z.channels})
    return Built(HwmonDriver(tuple(channels), ctx.hw.sysfs_root))


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return None


def _write(path: str, value: str) -> None:
    try:
        with open(path, "w", encoding="ascii") as f:
            f.write(value)
    except PermissionError:
        raise Refused(f"hwmon: no permission to write {path} (run as root)") from None
    except OSError as exc:
        raise Transient(f"hwmon: writing {path}: {exc.strerror}") from None
