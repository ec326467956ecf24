"""The ``fan_control`` section: the fan controller's zones and its driver (issue 4).

Per zone: mode, the controlling input vs its setpoint and ceiling, the duty and its limits;
then the driver's line (target, manual or the BMC's automatic control, writes, errors,
reverts). ``null`` when fan control is off. Health: a zone in failsafe; else the driver's
message when it does not regulate; else a zone only monitoring (e.g. no GPU to read: the fans
stay with the BMC).
"""

from __future__ import annotations

from gpuwatchd.model import FanControlReading, Snapshot
from gpuwatchd.status.sections import Json, Section
from gpuwatchd.status.text import Style, celsius, table

_MODE_TONES = {"control": "good", "monitor": "warn", "failsafe": "bad"}


def build(snapshot: Snapshot, now_mono: float) -> Section:
    if snapshot.control is None:
        return Section(None)
    ctl, zones = snapshot.control.driver, snapshot.control.zones
    reasons = [f"fan zone {z.zone} in failsafe: {z.reason}" for z in zones
               if z.mode == "failsafe"]
    messages = [d for d in snapshot.control.drivers if d.message]
    if messages and not reasons:
        several = len(snapshot.control.drivers) > 1
        reasons = [f"fan control not regulating: {d.message}" if not several else
                   f"fan driver {d.driver} on {d.target} not regulating: {d.message}"
                   for d in messages]
    elif not reasons:  # e.g. no GPU to read: the fans stay with the BMC
        reasons = [f"fan zone {z.zone} only monitoring: {z.reason}" for z in zones
                   if z.mode == "monitor" and z.reason != "starting"]
    data = {
        **_driver(ctl),
        "drivers": [_driver(d) for d in snapshot.control.drivers],
        "zones": [{"zone": z.zone, "mode": z.mode, "reason": z.reason, "input": z.input_id,
                   "input_celsius": z.input_celsius, "setpoint_celsius": z.setpoint_celsius,
                   "ceiling_celsius": z.ceiling_celsius, "duty": z.duty,
                   "min_duty": z.min_duty, "max_duty": z.max_duty,
                   "failsafe_entries": dict(z.failsafe_entries)} for z in zones],
    }
    return Section(data, tuple(reasons))


def _driver(ctl: FanControlReading) -> dict[str, object]:
    return {"driver": ctl.driver, "target": ctl.target, "manual": ctl.manual,
            "message": ctl.message, "writes": ctl.writes, "reverts": ctl.reverts,
            "write_errors": dict(ctl.write_errors), "channels": dict(ctl.channels)}


def render(fc: Json, style: Style) -> list[str]:
    """Per zone: mode, controlling input vs setpoint, duty; then the driver's line."""
    rows = []
    for z in fc["zones"]:
        duty = z["duty"]
        rows.append([(z["zone"], ""), (z["mode"], _MODE_TONES.get(z["mode"], "")),
                     (z["input"] or "-", ""), celsius(z["input_celsius"]),
                     celsius(z["setpoint_celsius"]), celsius(z["ceiling_celsius"]),
                     ("-" if duty is None else f"{float(duty) * 100:.0f}%", ""),
                     (f"{float(z['min_duty']) * 100:.0f}-{float(z['max_duty']) * 100:.0f}%", ""),
                     (z["reason"], "warn" if z["reason"] else "")])
    head = ["FAN ZONE", "MODE", "INPUT", "TEMP", "SETPOINT", "CEILING", "DUTY", "LIMITS",
            "NOTE"]
    lines = table(head, rows, "lllrrrrrl", style)
    for d in fc.get("drivers") or [fc]:  # a document from before several drivers: the one
        state = "manual" if d["manual"] else "BMC automatic"
        errors = sum(int(v) for v in d["write_errors"].values())
        lines.append(f"fan driver {d['driver']} on {d['target']}: {state}, {d['writes']} "
                     f"writes, {errors} errors, {d['reverts']} reverts")
        if d["message"]:
            lines.append(f"  {style.paint(d['message'], 'warn')}")
    return lines
