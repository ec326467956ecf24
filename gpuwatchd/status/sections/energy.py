"""The ``energy`` section: kWh per GPU and per chassis today, this month and since start, with
the cost.

From the GPU collector's GpuEnergy readings (gpuwatchd.collectors.gpu_energy): the GPU's energy
counter where it has one, else its power draw integrated over the sample interval (marked
``estimated``, shown with a ``~``). From the chassis collectors' ChassisEnergy readings
(gpuwatchd.collectors.chassis_energy): the BMC's chassis power (DCMI / Redfish) integrated
the same way, so always ``estimated``; a chassis row has ``bmc`` and ``chassis`` where a GPU
row has ``gpu`` and ``uuid``. The cost is kWh times ``energy.price_per_kwh`` in
``energy.currency`` (no cost without a price). ``null`` without either. No health reasons:
energy is a figure, not a fault.
"""

from __future__ import annotations

from gpuwatchd.collectors.energy_tally import JOULES_PER_KWH
from gpuwatchd.model import ChassisEnergy, GpuEnergy, Snapshot
from gpuwatchd.status.sections import Json, Section
from gpuwatchd.status.text import Style, table


def _cost(kwh: float, price: float | None) -> float | None:
    return None if price is None else round(kwh * price, 4)


def _figures(total: float, today_joules: float, month_joules: float, price: float | None,
             currency: str) -> Json:
    today, month = today_joules / JOULES_PER_KWH, month_joules / JOULES_PER_KWH
    return {"today_kwh": round(today, 6), "month_kwh": round(month, 6),
            "total_kwh": round(total / JOULES_PER_KWH, 6),
            "today_cost": _cost(today, price), "month_cost": _cost(month, price),
            "price_per_kwh": price, "currency": currency}


def build(snapshot: Snapshot, now_mono: float) -> Section:
    rows: list[Json] = []
    for e in snapshot.readings(GpuEnergy):
        rows.append({"gpu": e.index, "uuid": e.uuid, "estimated": e.estimated,
                     **_figures(e.joules_total, e.today_joules, e.month_joules,
                                e.price_per_kwh, e.currency)})
    for c in snapshot.readings(ChassisEnergy):
        rows.append({"bmc": c.bmc, "chassis": c.chassis, "estimated": True,
                     **_figures(c.joules_total, c.today_joules, c.month_joules,
                                c.price_per_kwh, c.currency)})
    return Section(rows or None)


def render(rows: list[Json], style: Style) -> list[str]:
    """Per GPU and chassis: kWh today and this month (``~``: integrated from power) and
    their cost."""
    def money(value: object, currency: str) -> str:
        return "-" if value is None else f"{float(str(value)):.2f} {currency}"

    cells = []
    for r in rows:
        mark = "~" if r["estimated"] else ""
        name = f"gpu{r['gpu']}" if "gpu" in r else f"{r['bmc']} {r['chassis']}"
        source = ("energy counter" if not r["estimated"] else
                  "power x time (estimated)" if "gpu" in r else "BMC power x time (estimated)")
        cells.append([(name, ""), (f"{mark}{float(r['today_kwh']):.3f}", ""),
                      (f"{mark}{float(r['month_kwh']):.3f}", ""),
                      (money(r["today_cost"], r["currency"]), ""),
                      (money(r["month_cost"], r["currency"]), ""),
                      (source, "warn" if r["estimated"] else "")])
    head = ["ENERGY", "TODAY kWh", "MONTH kWh", "TODAY", "MONTH", "FROM"]
    return table(head, cells, "lrrrrl", style)
