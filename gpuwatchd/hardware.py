"""The injectable roots and handles every collector and driver is built from.

Nothing here opens hardware: the fields are factories and paths. The daemon builds one
``Hardware`` for the real node (:func:`real`) and the simulator builds one for ``--demo``,
tests and benchmarks (``gpuwatchd.sim.node.SimNode.hardware``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gpuwatchd.clock import Clock, SystemClock


def _real_nvml() -> Any:
    """The nvidia-ml-py module; importing it does not load libnvidia-ml.so.1."""
    import pynvml  # noqa: PLC0415 - imported when first needed, never at gpuwatchd import

    return pynvml


@dataclass(frozen=True)
class Hardware:
    """Factories for the hardware libraries, plus the clock and filesystem roots."""

    clock: Clock = field(default_factory=SystemClock)
    nvml: Callable[[], Any] = _real_nvml  # returns a pynvml-compatible module object
    # The one NVML session every NVML user shares (GPU and licence collectors, NVML fan
    # driver): a gpuwatchd.links.nvml.NvmlSession made from ``nvml`` by links.nvml.shared, or
    # None: each user its own. Typed there: the links sit above this module (links.nvml
    # checks the type).
    nvml_session: object | None = None
    sysfs_root: str = "/sys"
    demo: bool = False
    extras: dict[str, Any] = field(default_factory=dict)  # further handles (BMC peers, ...)


def real() -> Hardware:
    """The real node's hardware."""
    return Hardware()
