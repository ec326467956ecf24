"""The NVML calls a consumer card with its own fans answers and a Tesla P40 does not.

The workstation demo (``gpuwatchd --demo workstation``): one RTX 2070-like card whose two
fans are the plant's fans (gpuwatchd.sim.plant.RTX2070_FAN), and an energy counter:

- ``nvmlDeviceGetNumFans`` 2; ``nvmlDeviceGetMinMaxFanSpeed`` 30-100 % (an RTX 2070: below 30 %
  the driver answers INVALID_ARGUMENT, as this one does);
- ``nvmlDeviceSetFanSpeed_v2(h, fan, pct)`` takes the fan from the card's own curve;
  ``nvmlDeviceSetDefaultFanSpeed_v2(h, fan)`` gives it back; ``nvmlDeviceGetTargetFanSpeed``,
  ``nvmlDeviceGetFanSpeed_v2`` (percent);
- the card's own curve (:func:`default_curve_duty`): fans stopped below 50 C (idle fan-stop),
  30 % at 50 C rising to 100 % at 83 C;
- ``nvmlDeviceGetTotalEnergyConsumption``: millijoules since the node started, integrated from
  the simulated board power.

Registered as SimNvml.extra_calls (``f(index, *args)``) by gpuwatchd.sim.node.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol

import pynvml

from gpuwatchd.sim.plant import GpuView

FAN_COUNT = 2
MIN_PERCENT, MAX_PERCENT = 30, 100
FAN_STOP_BELOW_CELSIUS, FULL_AT_CELSIUS = 50.0, 83.0


class ConsumerNode(Protocol):
    """What the calls need of gpuwatchd.sim.node.SimNode."""

    def gpu_view(self, index: int) -> GpuView:
        """GPU ``index`` now."""

    def set_duty(self, duty: float, fan: int | None = None) -> None:
        """One fan's duty (the card's fans are the plant's)."""

    def duty(self, fan: int) -> float:
        """One fan's duty now."""

    def sim_seconds(self) -> float:
        """Simulated seconds since the node was made."""


def default_curve_duty(celsius: float) -> float:
    """The card's own fan curve: stopped below 50 C, then 30 % rising to 100 % at 83 C."""
    if celsius < FAN_STOP_BELOW_CELSIUS:
        return 0.0
    span = (celsius - FAN_STOP_BELOW_CELSIUS) / (FULL_AT_CELSIUS - FAN_STOP_BELOW_CELSIUS)
    return min(1.0, MIN_PERCENT / 100 + (1 - MIN_PERCENT / 100) * span)


class ConsumerCard:
    """The fans' owner (the card's curve, or a set speed) and the energy counter."""

    def __init__(self, node: ConsumerNode) -> None:
        self._node = node
        self._lock = threading.Lock()
        self.manual: dict[int, int] = {}  # fan -> percent set; absent: the card's curve
        self._energy_mj = 0.0
        self._energy_at = 0.0

    def follow_curve(self, view: GpuView) -> float | None:
        """The duty the card's own curve gives now, where any fan follows it."""
        with self._lock:
            auto = len(self.manual) < FAN_COUNT
        return default_curve_duty(view.temperature_celsius) if auto else None

    def auto_fans(self) -> list[int]:
        with self._lock:
            return [f for f in range(FAN_COUNT) if f not in self.manual]

    def _fan(self, fan: int) -> int:
        if not 0 <= fan < FAN_COUNT:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return fan

    def set_speed(self, index: int, fan: int, percent: int) -> None:
        if not MIN_PERCENT <= percent <= MAX_PERCENT:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        with self._lock:
            self.manual[self._fan(fan)] = percent
        self._node.set_duty(percent / 100, fan)

    def set_default(self, index: int, fan: int) -> None:
        with self._lock:
            self.manual.pop(self._fan(fan), None)

    def target(self, index: int, fan: int) -> int:
        with self._lock:
            set_pct = self.manual.get(self._fan(fan))
        return set_pct if set_pct is not None else round(self._node.duty(fan) * 100)

    def speed(self, index: int, fan: int) -> int:
        return round(self._node.duty(self._fan(fan)) * 100)

    def energy(self, index: int) -> int:
        view, now = self._node.gpu_view(index), self._node.sim_seconds()
        with self._lock:
            self._energy_mj += view.power_watts * max(0.0, now - self._energy_at) * 1000.0
            self._energy_at = now
            return int(self._energy_mj)

    def calls(self) -> dict[str, Callable[..., Any]]:
        return {
            "nvmlDeviceGetNumFans": lambda index: FAN_COUNT,
            "nvmlDeviceGetMinMaxFanSpeed": lambda index: [MIN_PERCENT, MAX_PERCENT],
            "nvmlDeviceSetFanSpeed_v2": self.set_speed,
            "nvmlDeviceSetDefaultFanSpeed_v2": self.set_default,
            "nvmlDeviceGetTargetFanSpeed": self.target,
            "nvmlDeviceGetFanSpeed_v2": self.speed,
            "nvmlDeviceGetTotalEnergyConsumption": self.energy,
        }
