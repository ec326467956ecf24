"""The ``collectors`` section: every collector's last outcome, age and duration.

Health: a failing or stale collector makes the node degraded.
"""

from __future__ import annotations

from gpuwatchd.model import Snapshot
from gpuwatchd.status.sections import Json, Section, age, seconds
from gpuwatchd.status.text import Style, age_text, table


def build(snapshot: Snapshot, now_mono: float) -> Section:
    rows, reasons = [], []
    for res in snapshot.results:
        last = age(res, now_mono)
        stale = res.is_stale(now_mono)
        rows.append({"name": res.name, "ok": res.ok, "error": res.error, "age_seconds": last,
                     "duration_seconds": seconds(res.duration_seconds), "stale": stale,
                     "stale_after_seconds": res.stale_after_seconds})
        if not res.ok:
            reasons.append(f"collector {res.name} failing: {res.error or 'unknown error'}")
        elif stale:
            old = "never collected" if last is None else f"{last:.0f} s"
            reasons.append(f"collector {res.name} stale: last data {old} old")
    return Section(rows, tuple(reasons))


def render(collectors: list[Json], style: Style) -> list[str]:
    rows = []
    for c in collectors:
        state = ("ok", "good") if c["ok"] else ("FAILED", "bad")
        if c["ok"] and c["stale"]:
            state = ("stale", "warn")
        rows.append([(c["name"], ""), state, (age_text(c["age_seconds"]), ""),
                     (f"{float(c['duration_seconds']):.3f}s", ""), (c["error"], "")])
    return table(["COLLECTOR", "STATE", "AGE", "DURATION", "ERROR"], rows, "llrrl", style)
