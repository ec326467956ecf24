"""Collectors: read-only, one module each, registered here by name.

A collector turns one link's readings into a :class:`gpuwatchd.model.Collected`. The daemon
runs each one through a :class:`gpuwatchd.collectors.runner.CollectorRunner`, which times it,
enforces its deadline, catches its errors and reports ``gpuwatchd_collector_success`` and
``gpuwatchd_collector_duration_seconds``: a failing collector never fails the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from gpuwatchd.config import Config
    from gpuwatchd.hardware import Hardware
    from gpuwatchd.model import Collected


class Collector(Protocol):
    """What the runner needs of a collector."""

    name: str

    def collect(self) -> Collected:
        """Read the hardware once; raise a GpuwatchdError subclass on failure."""

    def close(self) -> None:
        """Release handles and stop helper threads; called once at shutdown or reload."""


@dataclass(frozen=True)
class Scheduled:
    """A collector with its cadence and deadline (seconds)."""

    collector: Collector
    interval_seconds: float
    deadline_seconds: float


Factory = Callable[["Config", "Hardware"], Sequence[Scheduled]]


def _gpu(config: Config, hw: Hardware) -> Sequence[Scheduled]:
    from gpuwatchd.collectors import gpu  # noqa: PLC0415

    return gpu.build(config, hw)


def _chassis_ipmi(config: Config, hw: Hardware) -> Sequence[Scheduled]:
    from gpuwatchd.collectors import chassis_ipmi  # noqa: PLC0415

    return chassis_ipmi.build(config, hw)


def _chassis_redfish(config: Config, hw: Hardware) -> Sequence[Scheduled]:
    from gpuwatchd.collectors import chassis_redfish  # noqa: PLC0415

    return chassis_redfish.build(config, hw)


def _licence(config: Config, hw: Hardware) -> Sequence[Scheduled]:
    from gpuwatchd.collectors import licence  # noqa: PLC0415

    return licence.build(config, hw)


def _hwmon(config: Config, hw: Hardware) -> Sequence[Scheduled]:
    from gpuwatchd.collectors import hwmon  # noqa: PLC0415

    return hwmon.build(config, hw)


REGISTRY: dict[str, Factory] = {
    "gpu": _gpu,
    "chassis_ipmi": _chassis_ipmi,  # one per bmcs[] entry with protocol: ipmi
    "chassis_redfish": _chassis_redfish,  # one per bmcs[] entry with protocol: redfish
    "licence": _licence,
    "hwmon": _hwmon,  # mainboard fans/temperatures (hwmon.enabled; auto: if a chip exists)
}


def build_all(config: Config, hw: Hardware) -> list[Scheduled]:
    """Instantiate every registered collector the config enables, in registry order."""
    out: list[Scheduled] = []
    for factory in REGISTRY.values():
        out.extend(factory(config, hw))
    return out
