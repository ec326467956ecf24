"""The one table of status sections: the document's keys after ``daemon`` and ``health``, in
order, each with the module that builds it (daemon side) and renders it (``gpuwatchctl``).

gpuwatchd.status.document walks it to build the document and gpuwatchd.status.table walks it
to print the table, so the two sides cannot disagree on a name or an order. To add a section
(see docs/ARCHITECTURE.md, "Adding a status section"): write gpuwatchd/status/sections/<key>.py
with ``build`` and ``render``, add its row here, and test it.
"""

from __future__ import annotations

from typing import Any, Protocol

from gpuwatchd.model import Snapshot
from gpuwatchd.status.sections import (
    Section,
    bmcs,
    collectors,
    energy,
    fan_control,
    gpus,
    hardware,
    hwmon,
    licence,
    nvml,
)
from gpuwatchd.status.text import Style


class SectionModule(Protocol):
    """What a section module exposes (a module satisfies this Protocol by its functions)."""

    def build(self, snapshot: Snapshot, now_mono: float) -> Section:
        """The section's JSON-ready data (``None``: not on this node) and health reasons."""

    def render(self, data: Any, style: Style) -> list[str]:
        """The section's table lines, from its (non-null) data as decoded from JSON."""


# The document key is the module's name; order is print order.
SECTIONS: dict[str, SectionModule] = {
    "hardware": hardware,  # the server's verdict beside the daemon's (issue 13)
    "nvml": nvml,
    "gpus": gpus,
    "energy": energy,  # kWh per GPU today/this month and the cost (issue 14)
    "bmcs": bmcs,
    "hwmon": hwmon,
    "licence": licence,
    "collectors": collectors,
    "fan_control": fan_control,  # fan zones: mode, input vs setpoint, duty (issue 4)
}
