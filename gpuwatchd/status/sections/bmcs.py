"""The ``bmcs`` section of the status document and its table in ``gpuwatchctl status``.

One entry per BMC: reachable or not, vendor/firmware, chassis power, its fans, temperatures
and power supplies (from the chassis collectors' readings in the Snapshot). Health: an
unreachable BMC degrades the node (gpuwatchd then lacks those inputs); a failed PSU, a fan or
temperature past its threshold are shown in red but are the server's faults, not gpuwatchd's:
they are the ``hardware`` section's conditions (gpuwatchd.health.conditions), which make
``gpuwatchctl status`` exit 1 there, not health reasons here.
"""

from __future__ import annotations

from gpuwatchd.model import (
    BmcReading,
    ChassisTemperature,
    CollectorResult,
    FanReading,
    PsuReading,
    Snapshot,
)
from gpuwatchd.status.sections import Json, Section, age
from gpuwatchd.status.text import Style, celsius, table


def build(snapshot: Snapshot, now_mono: float) -> Section:
    """JSON-ready rows and health reasons; rows ``None`` (JSON null) with no BMC configured."""
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
    return Section(rows or None, tuple(reasons))


def _row(bmc: BmcReading, res: CollectorResult, now_mono: float) -> Json:
    readings = res.collected.readings if bmc.up else ()
    return {
        "name": bmc.bmc, "protocol": bmc.protocol, "up": bmc.up, "vendor": bmc.vendor,
        "firmware": bmc.firmware, "power_watts": bmc.power_watts, "error": bmc.error,
        "collector": res.name, "age_seconds": age(res, now_mono),
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


def render(bmcs: list[Json], style: Style) -> list[str]:
    """One block per BMC: its head line, a SENSOR table (fans, temperatures), a PSU table."""
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
        sensors += [[(t["name"], ""), (celsius(t["celsius"])[0], _tone(t["state"])),
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


def _watts(value: float | None) -> str:
    return "-" if value is None else f"{float(value):.0f}W"


def _psu_state(p: Json) -> tuple[str, str]:
    if not p["present"]:
        return "absent", "warn"
    if p["up"]:
        return "ok", "good"
    causes = [c for c, on in (("failed", p["failed"]), ("AC lost", p["ac_lost"])) if on]
    return ", ".join(causes) or "down", "bad"
