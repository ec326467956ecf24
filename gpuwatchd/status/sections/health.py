"""The ``health`` section: the verdict, ``healthy`` or ``degraded``, with every reason.

Made of the reasons the other sections gave (daemon first, then the registry's order), so it
is built last and placed second; ``gpuwatchctl status`` turns the verdict into its exit code.
"""

from __future__ import annotations

from collections.abc import Sequence

from gpuwatchd.status.sections import Json
from gpuwatchd.status.text import Style


def build(reasons: Sequence[str]) -> Json:
    return {"status": "degraded" if reasons else "healthy", "reasons": list(reasons)}


def render(health: Json, style: Style) -> list[str]:
    status = health["status"]
    lines = [f"health  {style.paint(status, 'good' if status == 'healthy' else 'bad')}"]
    lines += [f"  - {reason}" for reason in health["reasons"]]
    return lines
