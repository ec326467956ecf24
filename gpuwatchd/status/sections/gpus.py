"""The ``gpus`` section: one entry per GPU, with the age of the collect that produced it.

Health: a GPU that is down. The table colours a GPU's temperature by its margin to the
slowdown temperature (red at or past it, yellow within :data:`WARN_MARGIN_CELSIUS`).
"""

from __future__ import annotations

from typing import TypeVar

from gpuwatchd.model import GpuReading, MigInstance, Snapshot
from gpuwatchd.status.sections import Json, Section, age
from gpuwatchd.status.text import Cell, Style, age_text, celsius, table

WARN_MARGIN_CELSIUS = 5.0  # a GPU this close to its slowdown temperature is shown in yellow
T = TypeVar("T")


def build(snapshot: Snapshot, now_mono: float) -> Section:
    """The GPU rows; null (not printed) without a GPU collector (``gpus.enabled: false``, the
    licence-only profile beside dcgm-exporter), so "none found" means the collector found none."""
    if not any(res.name == "gpu" for res in snapshot.results):
        return Section(None)
    rows, reasons = [], []
    for source, last, stale, gpu in _located(snapshot, GpuReading, now_mono):
        rows.append({
            "index": gpu.index, "uuid": gpu.uuid, "name": gpu.name, "up": gpu.up,
            "temperature_celsius": gpu.temperature_celsius,
            "margin_celsius": gpu.margin_celsius,
            "slowdown_celsius": gpu.slowdown_celsius,
            "shutdown_celsius": gpu.shutdown_celsius,
            "power_watts": gpu.power_watts,
            "power_limit_watts": gpu.power_limit_watts,
            "fan_ratios": gpu.fan_ratios,
            "mig": [_mig(m) for m in gpu.mig_instances],
            "error": gpu.error,
            "collector": source, "age_seconds": last, "stale": stale,
        })
        if not gpu.up:
            reasons.append(f"GPU {gpu.index} ({gpu.uuid}) down: {gpu.error or 'unknown error'}")
    return Section(rows, tuple(reasons))


def _mig(m: MigInstance) -> Json:
    return {"gpu_instance": m.gpu_instance, "compute_instance": m.compute_instance,
            "uuid": m.uuid, "profile": m.profile, "multiprocessors": m.multiprocessors,
            "memory_used_bytes": m.memory_used_bytes, "memory_total_bytes": m.memory_total_bytes,
            "placement_start": m.placement_start, "placement_size": m.placement_size}


def _located(snapshot: Snapshot, kind: type[T],
             now_mono: float) -> list[tuple[str, float | None, bool, T]]:
    """Readings of ``kind`` with (collector name, data age, stale)."""
    out: list[tuple[str, float | None, bool, T]] = []
    for res in snapshot.results:
        last, stale = age(res, now_mono), res.is_stale(now_mono)
        out.extend((res.name, last, stale, r) for r in res.collected.readings
                   if isinstance(r, kind))
    return out


def render(gpus: list[Json], style: Style) -> list[str]:
    if not gpus:
        return ["GPUs    none found"]
    rows = [[(str(g["index"]), ""), (g["name"], ""), _temp_cell(g),
             celsius(g["margin_celsius"]), celsius(g["slowdown_celsius"]), (_power(g), ""),
             (_fans(g["fan_ratios"]), ""),
             (age_text(g["age_seconds"]), "warn" if g["stale"] else ""), _gpu_note(g)]
            for g in gpus]
    head = ["GPU", "NAME", "TEMP", "MARGIN", "SLOWDOWN", "POWER/LIMIT", "FAN", "AGE", "NOTE"]
    return table(head, rows, "rlrrrrrrl", style) + _render_mig(gpus, style)


def _render_mig(gpus: list[Json], style: Style) -> list[str]:
    """One line per MIG device, under the GPU table (power and temperature are the parent's,
    in the table above: not repeated per instance)."""
    rows = [[(f"{g['index']}", ""), (str(m["gpu_instance"]), ""),
             (str(m["compute_instance"]), ""), (m["profile"] or "-", ""),
             (_placement(m), ""), (_gib(m), ""), (m["uuid"], "")]
            for g in gpus for m in g.get("mig") or []]
    if not rows:
        return []
    head = ["MIG GPU", "GI", "CI", "PROFILE", "PLACEMENT", "MEMORY USED/TOTAL", "UUID"]
    return ["", *table(head, rows, "rrrllrl", style)]


def _placement(m: Json) -> str:
    start, size = m["placement_start"], m["placement_size"]
    return "-" if start is None or size is None else f"{start}:{size}"


def _gib(m: Json) -> str:
    used, total = m["memory_used_bytes"], m["memory_total_bytes"]
    if used is None or total is None:
        return "-"
    return f"{float(used) / 2**30:.1f} / {float(total) / 2**30:.1f} GiB"


def _temp_cell(gpu: Json) -> Cell:
    temp, margin, slowdown = (gpu["temperature_celsius"], gpu["margin_celsius"],
                              gpu["slowdown_celsius"])
    if margin is None and temp is not None and slowdown is not None:
        margin = float(slowdown) - float(temp)
    tone = ""
    if margin is not None:
        tone = "bad" if margin <= 0 else "warn" if margin < WARN_MARGIN_CELSIUS else ""
    return celsius(temp)[0], tone


def _gpu_note(gpu: Json) -> Cell:
    if not gpu["up"]:
        return f"down: {gpu['error']}".rstrip(": "), "bad"
    if gpu["stale"]:
        return "stale data", "warn"
    return gpu["error"], ""


def _power(gpu: Json) -> str:
    power, limit = gpu["power_watts"], gpu["power_limit_watts"]
    if power is None:
        return "-" if limit is None else f"- / {float(limit):.0f}W"
    return f"{float(power):.0f}W" + ("" if limit is None else f" / {float(limit):.0f}W")


def _fans(ratios: list[float]) -> str:
    return "/".join(f"{float(r) * 100:.0f}%" for r in ratios) or "-"
