"""The ``bmcs`` section of the status document and its table in ``gpuwatchctl status``.

One entry per BMC: reachable or not, vendor/firmware, chassis power, its fans, temperatures
and power supplies (from the chassis collectors' readings in the Snapshot). Health: an
unreachable BMC degrades the node (gpuwatchd then lacks those inputs); a failed PSU, a fan or
temperature past its threshold are shown in red but are the server's faults, not gpuwatchd's,
and are alerted on from the metrics (``gpuwatchd_psu_up == 0``), so they do not make
``gpuwatchctl status`` exit 1.
"""

from __future__ import annotations

from typing import Any

from gpuwatchd.model import (
    BmcReading,
    ChassisTemperature,
    CollectorResult,
    FanReading,
    PsuReading,
    Snapshot,
)

Json = dict[str, Any]


def section(snapshot: Snapshot, now_mono: float) -> tuple[list[Json] | None, tuple[str, ...]]:
    """(JSON-ready rows, health reasons); rows ``None`` (JSON null) with no BMC configured."""
    rows: list[Json] = []
    reasons: list[str] = []
    for res in snapshot.results:
        readings = res.collected.readings
        for bmc in (r for r in readings if isinstance(r, BmcReading)):
            rows.append(_row(bmc, res, now_mono))
            if not bmc.up:
                reasons.append(f"BMC {bmc.bmc} down: {bmc.error or 'no answer'}")
            elif res.is_stale(now_mono):
                reasons.append(f"BMC {bmc.bmc}: data stale")
    return rows or None, tuple(reasons)


def _row(bmc: BmcReading, res: CollectorResult, now_mono: float) -> Json:
    readings = res.collected.readings if bmc.up else ()
    age = res.age_seconds(now_mono)
    return {
        "name": bmc.bmc, "protocol": bmc.protocol, "up": bmc.up, "vendor": bmc.vendor,
        "firmware": bmc.firmware, "power_watts": bmc.power_watts, "error": bmc.error,
        "collector": res.name, "age_seconds": None if age == float("inf") else round(age, 3),
        "stale": res.is_stale(now_mono),
        "fans": [{"name": f.name, "rpm": f.rpm, "ratio": f.ratio, "state": f.state}
                 for f in readings if isinstance(f, FanReading)],
        "temperatures": [{"name": t.name, "celsius": t.celsius, "state": t.state,
                          "upper_critical_celsius": t.upper_critical_celsius,
                          "input": t.input_id}
                         for t in readings if isinstance(t, ChassisTemperature)],
        "psus": [{"name": p.name, "present": p.present, "up": p.up, "failed": p.failed,
                  "ac_lost": p.ac_lost, "input_watts": p.input_watts,
                  "output_watts": p.output_watts, "capacity_watts": p.capacity_watts}
                 for p in readings if isinstance(p, PsuReading)],
    }


def render(bmcs: list[Json], style: Any, table: Any) -> list[str]:
    """The table lines; ``style``/``table`` are gpuwatchd.status_view's Style and _table."""
    lines: list[str] = []
    for b in bmcs:
        head = f"BMC {b['name']}  {b['protocol']}"
        if not b["up"]:
            lines += [f"{head}  {style.paint('down', 'bad')}  {b['error']}".rstrip(), ""]
            continue
        power = f"  {float(b['power_watts']):.0f}W" if b["power_watts"] is not None else ""
        lines.append(f"{head}  {style.paint('up', 'good')}  {b['vendor']} {b['firmware']}"
                     f"{power}")
        sensors = [[(f["name"], ""), (_rpm(f), _tone(f["state"])), (f["state"], _tone(f["state"]))]
                   for f in b["fans"]]
        sensors += [[(t["name"], ""), (_celsius(t["celsius"]), _tone(t["state"])),
                     (t["state"], _tone(t["state"]))] for t in b["temperatures"]]
        if sensors:
            lines += table(["SENSOR", "READING", "STATE"], sensors, "lrl", style)
        psus = [[(p["name"], ""), _psu_state(p), (_watts(p["input_watts"]), ""),
                 (_watts(p["capacity_watts"]), "")] for p in b["psus"]]
        if psus:
            lines += table(["PSU", "STATE", "INPUT", "CAPACITY"], psus, "llrr", style)
        lines.append("")
    return lines[:-1] if lines and lines[-1] == "" else lines


def _tone(state: str) -> str:
    return {"ok": "", "warning": "warn", "critical": "bad", "no_reading": "warn"}.get(state, "")


def _rpm(fan: Json) -> str:
    if fan["rpm"] is not None:
        return f"{float(fan['rpm']):.0f} rpm"
    return f"{float(fan['ratio']) * 100:.0f}%" if fan["ratio"] is not None else "-"


def _celsius(value: float | None) -> str:
    return "-" if value is None else f"{float(value):.0f}C"


def _watts(value: float | None) -> str:
    return "-" if value is None else f"{float(value):.0f}W"


def _psu_state(p: Json) -> tuple[str, str]:
    if not p["present"]:
        return "absent", "warn"
    if p["up"]:
        return "ok", "good"
    causes = [c for c, on in (("failed", p["failed"]), ("AC lost", p["ac_lost"])) if on]
    return ", ".join(causes) or "down", "bad"
