"""The ``energy`` section: kWh per GPU today, this month and since start, with the cost.

From the GPU collector's GpuEnergy readings (gpuwatchd.collectors.gpu_energy): the GPU's energy
counter where it has one, else its power draw integrated over the sample interval (marked
``estimated``, shown with a ``~``). The cost is kWh times ``energy.price_per_kwh`` in
``energy.currency`` (no cost without a price). ``null`` without GPUs. No health reasons:
energy is a figure, not a fault.
"""

from __future__ import annotations

from gpuwatchd.model import GpuEnergy, Snapshot
from gpuwatchd.status.sections import Json, Section
from gpuwatchd.status.text import Style, table

JOULES_PER_KWH = 3.6e6


def _cost(kwh: float, price: float | None) -> float | None:
    return None if price is None else round(kwh * price, 4)


def build(snapshot: Snapshot, now_mono: float) -> Section:
    rows: list[Json] = []
    for e in snapshot.readings(GpuEnergy):
        today, month = e.today_joules / JOULES_PER_KWH, e.month_joules / JOULES_PER_KWH
        rows.append({"gpu": e.index, "uuid": e.uuid, "estimated": e.estimated,
                     "today_kwh": round(today, 6), "month_kwh": round(month, 6),
                     "total_kwh": round(e.joules_total / JOULES_PER_KWH, 6),
                     "today_cost": _cost(today, e.price_per_kwh),
                     "month_cost": _cost(month, e.price_per_kwh),
                     "price_per_kwh": e.price_per_kwh, "currency": e.currency})
    return Section(rows or None)


def render(rows: list[Json], style: Style) -> list[str]:
    """Per GPU: kWh today and this month (``~``: integrated from power) and their cost."""
    def money(value: object, currency: str) -> str:
        return "-" if value is None else f"{float(str(value)):.2f} {currency}"

    cells = []
    for r in rows:
        mark = "~" if r["estimated"] else ""
        cells.append([(f"gpu{r['gpu']}", ""), (f"{mark}{float(r['today_kwh']):.3f}", ""),
                      (f"{mark}{float(r['month_kwh']):.3f}", ""),
                      (money(r["today_cost"], r["currency"]), ""),
                      (money(r["month_cost"], r["currency"]), ""),
                      ("power x time (estimated)" if r["estimated"] else "energy counter",
                       "warn" if r["estimated"] else "")])
    head = ["ENERGY", "TODAY kWh", "MONTH kWh", "TODAY", "MONTH", "FROM"]
    return table(head, cells, "lrrrrl", style)
