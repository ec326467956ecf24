"""The ``hardware`` section: the server's own verdict, beside the daemon's ``health``.

``health`` says whether gpuwatchd works; ``hardware`` says whether the server does: every
condition of the Snapshot (gpuwatchd.health.conditions, published as ``Snapshot.health``),
each with its source, the verdict ``ok`` or ``faulty``. ``gpuwatchctl status`` exits 1 when
the verdict is ``faulty`` (any condition not listed in the ``health.ignore`` config key);
ignored conditions are listed too, marked so. ``--json`` carries the same list.
"""

from __future__ import annotations

from gpuwatchd.model import HealthCondition, Snapshot
from gpuwatchd.status.sections import Json, Section
from gpuwatchd.status.text import Style

FAULTY, OK = "faulty", "ok"


def build(snapshot: Snapshot, now_mono: float) -> Section:
    """The verdict and every condition; no health reason (the daemon is not at fault)."""
    conditions = [_row(c) for c in snapshot.health]
    status = FAULTY if any(c.counted for c in snapshot.health) else OK
    return Section({"status": status, "conditions": conditions})


def _row(c: HealthCondition) -> Json:
    return {"kind": c.kind, "severity": c.severity, "source": c.source, "message": c.message,
            "bmc": c.bmc or None, "sensor": c.sensor or None, "gpu": c.gpu,
            "uuid": c.uuid or None, "counted": c.counted}


def render(hardware: Json, style: Style) -> list[str]:
    status = hardware["status"]
    lines = [f"hardware  {style.paint(status, 'good' if status == OK else 'bad')}"]
    for c in hardware["conditions"]:
        tone = "bad" if c["severity"] == "critical" else "warn"
        mark = "" if c["counted"] else "  (ignored)"
        lines.append(f"  - {style.paint(c['severity'], tone if c['counted'] else '')}  "
                     f"{c['source']}: {c['message']}  [{c['kind']}]{mark}")
    return lines


def faulty(doc: Json) -> bool:
    """True when a status document's hardware verdict is ``faulty`` (gpuwatchctl's exit 1)."""
    hardware = doc.get("hardware")
    return isinstance(hardware, dict) and hardware.get("status") == FAULTY
