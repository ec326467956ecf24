"""What the fan controller publishes with each Snapshot (``Snapshot.control``): plain data.

The records themselves live in gpuwatchd.model (the Snapshot that carries them sits in the
base layer); they are named here for the control package's modules.
"""

from __future__ import annotations

from gpuwatchd.model import (
    ControlReading,
    FailsafeReason,
    FanControlReading,
    Ownership,
    ZoneMode,
    ZoneReading,
)

__all__ = ["ControlReading", "FailsafeReason", "FanControlReading", "Ownership", "ZoneMode",
           "ZoneReading"]
