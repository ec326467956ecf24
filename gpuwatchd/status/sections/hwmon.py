"""The ``hwmon`` section of the status document and its table in ``gpuwatchctl status``.

One entry per hwmon chip (gpuwatchd.collectors.hwmon): its name, device, kind, read errors,
and its fans, temperatures and PWM outputs, like ``sensors``. ``null`` when the hwmon
collector is not running (``hwmon.enabled: false``, or ``auto`` on a node without chips).
Health: a failing or stale hwmon collector already degrades the node through the
``collectors`` section; a temperature past its limit or a fan below its minimum is shown in
colour but is the machine's fault, alerted on from the metrics, so it adds no reason here.
"""

from __future__ import annotations

from gpuwatchd.model import HwmonChip, HwmonFan, HwmonPwm, HwmonTemperature, Snapshot
from gpuwatchd.status.sections import Json, Section, age
from gpuwatchd.status.text import Style, table

COLLECTOR = "hwmon"
_MODES = {0: "full speed", 1: "manual"}


def build(snapshot: Snapshot, now_mono: float) -> Section:
    """JSON-ready rows, no health reasons; rows ``None`` (JSON null) without the collector."""
    res = snapshot.result(COLLECTOR)
    if res is None:
        return Section(None)
    common = {"collector": res.name, "age_seconds": age(res, now_mono),
              "stale": res.is_stale(now_mono)}
    rows: dict[str, Json] = {}
    for r in res.collected.readings:
        if isinstance(r, HwmonChip):
            rows[r.chip] = {"chip": r.chip, "name": r.name, "device": r.device, "kind": r.kind,
                            "read_errors": r.read_errors, "fans": [], "temperatures": [],
                            "pwms": [], **common}
        elif isinstance(r, HwmonFan) and r.chip in rows:
            rows[r.chip]["fans"].append({"name": r.name, "rpm": r.rpm, "min_rpm": r.min_rpm})
        elif isinstance(r, HwmonTemperature) and r.chip in rows:
            rows[r.chip]["temperatures"].append({
                "name": r.name, "celsius": r.celsius, "max_celsius": r.max_celsius,
                "crit_celsius": r.crit_celsius})
        elif isinstance(r, HwmonPwm) and r.chip in rows:
            rows[r.chip]["pwms"].append({"name": r.name, "ratio": r.ratio, "mode": r.mode})
    return Section(list(rows.values()))


def render(chips: list[Json], style: Style) -> list[str]:
    """One block per chip: its head line and a SENSOR table (fans, temperatures, PWMs)."""
    if not chips:
        return ["hwmon   no chips read yet"]
    lines: list[str] = []
    for c in chips:
        head = f"hwmon {c['chip']}" + (f"  ({c['device']})" if c["device"] else "")
        if c["kind"] == "gpu":
            head += "  GPU"
        if c["read_errors"]:
            head += "  " + style.paint(f"{c['read_errors']} read errors", "warn")
        if c["stale"]:
            head += "  " + style.paint("stale", "warn")
        lines.append(head)
        rows = [[(f["name"], ""), _rpm(f), (_limit_rpm(f["min_rpm"]), "")] for f in c["fans"]]
        rows += [[(t["name"], ""), _temp(t), (_limits(t), "")] for t in c["temperatures"]]
        rows += [[(p["name"], ""), _duty(p["ratio"]), (_mode(p["mode"]), "")] for p in c["pwms"]]
        if rows:
            lines += table(["SENSOR", "READING", "LIMIT/MODE"], rows, "lrl", style)
        lines.append("")
    return lines[:-1]


def _rpm(fan: Json) -> tuple[str, str]:
    rpm, low = fan["rpm"], fan["min_rpm"]
    if rpm is None:
        return "-", "warn"
    return f"{float(rpm):.0f} rpm", "warn" if low and float(rpm) < float(low) else ""


def _limit_rpm(low: float | None) -> str:
    return f"min {float(low):.0f} rpm" if low else ""


def _temp(t: Json) -> tuple[str, str]:
    celsius = t["celsius"]
    if celsius is None:
        return "-", "warn"
    value = float(celsius)
    tone = ""
    if t["crit_celsius"] is not None and value >= float(t["crit_celsius"]):
        tone = "bad"
    elif t["max_celsius"] is not None and value >= float(t["max_celsius"]):
        tone = "warn"
    return f"{value:.1f}C", tone


def _limits(t: Json) -> str:
    parts = [f"{key} {float(t[key + '_celsius']):.0f}C" for key in ("max", "crit")
             if t[key + "_celsius"] is not None]
    return "  ".join(parts)


def _duty(ratio: float | None) -> tuple[str, str]:
    return ("-", "warn") if ratio is None else (f"{float(ratio) * 100:.0f}%", "")


def _mode(mode: int | None) -> str:
    if mode is None:
        return ""
    return _MODES.get(int(mode), f"automatic ({int(mode)})")
