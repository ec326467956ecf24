"""Collectors: read-only, one module each, registered by name in
:data:`gpuwatchd.collectors.registry.REGISTRY`.

A collector turns one link's readings into a :class:`gpuwatchd.model.Collected`. The daemon
runs each one through a :class:`gpuwatchd.collectors.runner.CollectorRunner`, which times it,
enforces its deadline, catches its errors and reports ``gpuwatchd_collector_success`` and
``gpuwatchd_collector_duration_seconds``: a failing collector never fails the rest.

This package module holds only what every collector module imports (:class:`Collector`,
:class:`Scheduled`); the registry, which imports every collector module, is a module of its
own, so no collector module imports a module that imports it back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

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


# A registry factory: the collectors the config asks for, built from the injected hardware.
Factory = Callable[[Config, Hardware], Sequence[Scheduled]]
