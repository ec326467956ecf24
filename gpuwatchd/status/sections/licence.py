"""The ``licence`` section of the status document and its lines in ``gpuwatchctl status``.

One line per GPU whose licence is held by this OS: product, state, expiry in absolute (UTC,
zero-padded: nvidia-smi's own "2025-6-18 16:49:0 GMT" is hard to read) and relative time,
gridd's state and the token summary, e.g.::

    GPU 0  Tesla P40 [vgpu]  LICENSED  "NVIDIA RTX Virtual Workstation"
        expires 2025-06-18 16:49 UTC (in 23h41m) · gridd active · 1 token (0744)

followed by the reason when the state is not ok, node problems, and on a host one line per
vGPU instance. The section is null (and not printed) on a node without licensing.
"""

from __future__ import annotations

import time

from gpuwatchd.clock import span
from gpuwatchd.model import (
    GpuReading,
    LicenceNodeReading,
    LicenceReading,
    Snapshot,
    VgpuInstanceLicenceReading,
)
from gpuwatchd.status.sections import Json, Section
from gpuwatchd.status.text import Style

TONES = {"ok": "good", "warning": "warn", "critical": "bad"}


def build(snapshot: Snapshot, now_mono: float) -> Section:
    """The JSON-ready section and its health reasons (warning and critical states)."""
    gpus = snapshot.readings(LicenceReading)
    instances = snapshot.readings(VgpuInstanceLicenceReading)
    nodes = [n for n in snapshot.readings(LicenceNodeReading) if n.applicable]
    if not gpus and not instances and not nodes:
        return Section(None)
    now_wall = snapshot.taken_wall + (now_mono - snapshot.taken_mono)
    names = {g.uuid: g.name for g in snapshot.readings(GpuReading)}
    node = nodes[0] if nodes else None
    reasons = [f"GPU {g.index} licence {g.state}: {g.reason}".rstrip(": ")
               for g in gpus if g.severity != "ok"]
    if node is not None and node.severity != "ok":
        reasons += [f"licence: {message}" for message in node.messages]
    data = {
        "gpus": [_gpu(g, names.get(g.uuid, ""), now_wall) for g in gpus],
        "node": None if node is None else _node(node),
        "instances": [_instance(i, now_wall) for i in instances],
    }
    return Section(data, tuple(reasons))


def _gpu(g: LicenceReading, name: str, now_wall: float) -> Json:
    expiry, since = g.expiry_timestamp_seconds, g.unlicensed_since_timestamp_seconds
    return {"index": g.index, "uuid": g.uuid, "name": name, "mode": g.mode, "state": g.state,
            "severity": g.severity, "product": g.product, "feature": g.feature,
            "expiry_status": g.expiry_status, "expiry_timestamp_seconds": expiry,
            "expires_in_seconds": None if expiry is None else round(expiry - now_wall, 3),
            "unlicensed_since_timestamp_seconds": since,
            "unlicensed_seconds": None if since is None else round(now_wall - since, 3),
            "reason": g.reason}


def _node(n: LicenceNodeReading) -> Json:
    return {"gridd_state": n.gridd_state, "token_summary": n.token_summary,
            "problems": list(n.problems), "severity": n.severity, "messages": list(n.messages),
            "time_synchronized": n.time_synchronized, "last_event": n.last_event,
            "remediation_enabled": n.remediation_enabled,
            "remediation_restarts": n.remediation_restarts}


def _instance(i: VgpuInstanceLicenceReading, now_wall: float) -> Json:
    expiry = i.expiry_timestamp_seconds
    return {"gpu_index": i.gpu_index, "gpu_uuid": i.gpu_uuid, "vgpu_uuid": i.vgpu_uuid,
            "vm_id": i.vm_id, "vgpu_type": i.vgpu_type, "state": i.state,
            "expiry_timestamp_seconds": expiry,
            "expires_in_seconds": None if expiry is None else round(expiry - now_wall, 3)}


def render(data: Json, style: Style) -> list[str]:
    """The section as text lines (see the module docstring)."""
    node = data.get("node") or {}
    tail = []
    if node:
        tail = [f"gridd {node['gridd_state']}", node["token_summary"] or "no token"]
    lines = [style.paint("LICENCE", "bold")]
    for g in data["gpus"]:
        lines += _gpu_lines(g, tail, style)
    if node:
        lines += [f"    {style.paint('!', TONES.get(node['severity'], ''))} {message}"
                  for message in node["messages"]]
        if node["remediation_enabled"]:
            lines.append(f"    remediation on: {node['remediation_restarts']} gridd "
                         "restart(s) by gpuwatchd")
    for i in data["instances"]:
        expires = _expiry_text(i["expiry_timestamp_seconds"], i["expires_in_seconds"])
        lines.append(f"  vGPU {i['vgpu_uuid']} on GPU {i['gpu_index']} (VM {i['vm_id']}, "
                     f"{i['vgpu_type']})  {i['state'].upper()}{'  ' + expires if expires else ''}")
    return lines


def _gpu_lines(g: Json, tail: list[str], style: Style) -> list[str]:
    head = f"GPU {g['index']}  {g['name'] or g['uuid']} [{g['mode'] or '?'}]"
    state = style.paint(g["state"].upper(), TONES.get(g["severity"], ""))
    product = f'"{g["product"]}"' if g["product"] else ""
    when = _expiry_text(g["expiry_timestamp_seconds"], g["expires_in_seconds"])
    if g["unlicensed_since_timestamp_seconds"] is not None:
        when = (f"unlicensed since {_gmt(g['unlicensed_since_timestamp_seconds'])} "
                f"({span(g['unlicensed_seconds'])} ago)")
    elif not when and g["expiry_status"]:
        when = {"permanent": "permanent licence", "not_applicable": "no expiry (N/A)",
                "not_available": "no expiry reported",
                "invalid": "expiry unreadable (ERR!)"}.get(g["expiry_status"], "")
    first = "  ".join(part for part in ("  " + head, state, product) if part)
    second = " · ".join(part for part in (when, *tail) if part)
    lines = [first, f"      {second}"] if second else [first]
    if g["severity"] != "ok" and g["reason"]:
        lines.append(f"      {style.paint(g['reason'], TONES.get(g['severity'], ''))}")
    return lines


def _expiry_text(expiry: float | None, left: float | None) -> str:
    if expiry is None or left is None:
        return ""
    relative = f"in {span(left)}" if left >= 0 else f"{span(-left)} ago"
    verb = "expires" if left >= 0 else "expired"
    return f"{verb} {_gmt(expiry)} ({relative})"


def _gmt(wall: float) -> str:
    """UTC, zero-padded: ``2025-06-18 16:49 UTC`` (issue 16: not ``2025-6-18 16:49 GMT``)."""
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(wall))
