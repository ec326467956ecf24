"""Status sections: one module per section of the document, each with both halves.

A section module exposes ``build(snapshot, now_mono) -> Section`` (the daemon's side: JSON-ready
data and health reasons from the published Snapshot; pure, no clock, no hardware) and
``render(data, style) -> list[str]`` (``gpuwatchctl``'s side: that data, as it came back over
the socket, as table lines). The order and the names are gpuwatchd.status.registry's.
``daemon`` and ``health`` head the document and are not registry rows: ``daemon`` also needs
the daemon's own facts, ``health`` is made of every other section's reasons.

This package's ``__init__`` holds only what every section shares (no section import), so a
section module may import it without a cycle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from gpuwatchd.model import CollectorResult

Json = dict[str, Any]


@dataclass(frozen=True)
class Section:
    """One section of the document: JSON-ready data, plus health reasons (empty = fine)."""

    data: object
    reasons: tuple[str, ...] = ()


def seconds(value: float) -> float:
    """A duration rounded to the millisecond (JSON has no infinity; callers map it to null)."""
    return round(max(0.0, value), 3)


def age(res: CollectorResult, now_mono: float) -> float | None:
    """Seconds since the collector's last success; ``None`` (JSON null) if it never had one."""
    value = res.age_seconds(now_mono)
    return None if math.isinf(value) else seconds(value)
