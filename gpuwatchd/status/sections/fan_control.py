"""The ``fan_control`` section: the fan controller's zones and its driver (issue 4).

Per zone: mode, the controlling input vs its setpoint and ceiling, the duty and its limits;
then the driver's line (target, manual or the BMC's automatic control, writes, errors,
reverts). ``null`` when fan control is off. Health: a zone in failsafe; else the driver's
message when it does not regulate; else a zone only monitoring (e.g. no GPU to read: the fans
stay with the BMC).
"""

from __future__ import annotations

from gpuwatchd.model import Snapshot
from gpuwatchd.status.sections import Json, Section
from gpuwatchd.status.text import Style, celsius, table

_MODE_TONES = {"control": "good", "monitor": "warn", "failsafe": "bad"}


def build(snapshot: Snapshot, now_mono: float) -> Section:
    if snapshot.control is None:
        return Section(None)
    ctl, zones = snapshot.control.driver, snapshot.control.zones
    reasons = [f"fan zone {z.zone} in failsafe: {z.reason}" for z in zones
               if z.mode == "failsafe"]
    if ctl.message and not reasons:
        reasons.append(f"fan control not regulating: {ctl.message}")
    elif not reasons:  # e.g. no GPU to read: the fans stay with the BMC
        reasons = [f"fan zone {z.zone} only monitoring: {z.reason}" for z in zones
                   if z.mode == "monitor" and z.reason != "starting"]
    data = {
        "driver": ctl.driver, "target": ctl.target, "manual": ctl.manual,
        "message": ctl.message, "writes": ctl.writes, "reverts": ctl.reverts,
        "write_errors": dict(ctl.write_errors), "channels": dict(ctl.channels),
        "zones": [{"zone": z.zone, "mode": z.mode, "reason": z.reason, "input": z.input_id,
                   "input_celsius": z.input_celsius, "setpoint_celsius": z.setpoint_celsius,
                   "ceiling_celsius": z.ceiling_celsius, "duty": z.duty,
                   "min_duty": z.min_duty, "max_duty": z.max_duty,
                   "failsafe_entries": dict(z.failsafe_entries)} for z in zones],
    }
    return Section(data, tuple(reasons))


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
    state = "manual" if fc["manual"] else "BMC automatic"
    errors = sum(int(v) for v in fc["write_errors"].values())
    line = (f"fan driver {fc['driver']} on {fc['target']}: {state}, {fc['writes']} writes, "
            f"{errors} errors, {fc['reverts']} reverts")
    lines.append(line)
    if fc["message"]:
        lines.append(f"  {style.paint(fc['message'], 'warn')}")
    return lines
