"""The status document: what ``gpuwatchctl status`` shows, built by the daemon from its Snapshot.

The document (``"schema": 1``) is built from the published Snapshot by :func:`build_status`: a
``daemon`` section, a ``health`` verdict with its reasons, then one section per row of
gpuwatchd.status.registry.SECTIONS, in that order. New keys may be added under schema 1;
renaming or removing one bumps it. The daemon's side only: gpuwatchd.status.server serves it.
"""

from __future__ import annotations

import math
from typing import Any

from gpuwatchd.model import Snapshot
from gpuwatchd.status.registry import SECTIONS
from gpuwatchd.status.sections import daemon, health
from gpuwatchd.status.sections.daemon import DaemonInfo, DaemonState

__all__ = ["SCHEMA", "DaemonInfo", "DaemonState", "build_status"]

SCHEMA = 1
Json = dict[str, Any]


def build_status(snapshot: Snapshot, info: DaemonInfo, now_mono: float) -> Json:
    """The versioned status document for ``snapshot`` as seen at ``now_mono``.

    Pure: reads no clock and no hardware, so the same inputs give the same document.
    """
    head = daemon.build(snapshot, info, now_mono)
    reasons = list(head.reasons)
    sections: Json = {}
    for name, module in SECTIONS.items():
        section = module.build(snapshot, now_mono)
        sections[name] = section.data
        reasons.extend(section.reasons)
    doc = {"schema": SCHEMA, "daemon": head.data, "health": health.build(reasons), **sections}
    return {key: _json_ready(value) for key, value in doc.items()}


def _json_ready(value: object) -> object:
    """Tuples -> lists, NaN/infinity -> None: one odd reading must not break the document."""
    if isinstance(value, dict):
        return {key: _json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
