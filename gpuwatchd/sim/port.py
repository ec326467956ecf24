"""What the simulated BMCs and the simulated licence see of a node: :class:`NodePort`.

:class:`gpuwatchd.sim.node.SimNode` composes the plant, the simulated NVML, the BMCs
(gpuwatchd.sim.bmc, gpuwatchd.sim.bmc_oem) and the licence side (gpuwatchd.sim.licence);
those parts take the node through this protocol, so they import nothing from
``gpuwatchd.sim.node`` and the node imports them at the top (no import cycle).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol

from gpuwatchd.clock import Clock
from gpuwatchd.sim.nvml import SimNvml
from gpuwatchd.sim.plant import ThermalPlant


class NodePort(Protocol):
    """The node's side used by the simulated BMCs and licence (SimNode implements it)."""

    @property
    def clock(self) -> Clock:
        """The node's clock."""

    @property
    def speed(self) -> float:
        """Simulated seconds per clock second."""

    @property
    def nvml(self) -> SimNvml:
        """The simulated NVML (bus ids and UUIDs for the licence side)."""

    @property
    def fan_count(self) -> int:
        """Fans in the chassis."""

    def sim_seconds(self) -> float:
        """Simulated seconds since the node was made."""

    def synced(self) -> AbstractContextManager[ThermalPlant]:
        """The plant, advanced to now and locked for the ``with`` block."""

    def set_duty(self, duty: float, fan: int | None = None) -> None:
        """Fan duty 0..1 for one fan, or every fan with ``fan=None``."""
