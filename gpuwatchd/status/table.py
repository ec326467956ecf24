"""The status document as ``gpuwatchctl status`` prints it: a compact table.

``gpuwatchctl``'s side only: the daemon and health lines, then each section of
gpuwatchd.status.registry.SECTIONS present in the document, in the registry's order, by its
module's ``render``.
"""

from __future__ import annotations

from typing import Any

from gpuwatchd.status.registry import SECTIONS
from gpuwatchd.status.sections import daemon, health
from gpuwatchd.status.text import Style

Json = dict[str, Any]


def render(doc: Json, now_wall: float, color: bool = False) -> str:
    """The status document as a compact table (like ``nvidia-smi`` or ``sensors``).

    Unknown sections (from a newer daemon) are left out: ``--json`` shows everything.
    Raises KeyError/TypeError/ValueError on a document that is not schema 1.
    """
    style = Style(color)
    lines = daemon.render(doc["daemon"], style, now_wall) + health.render(doc["health"], style)
    for name, module in SECTIONS.items():
        if doc.get(name) is not None:
            lines += ["", *module.render(doc[name], style)]
    return "\n".join(lines)
