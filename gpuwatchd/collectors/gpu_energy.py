"""Energy per GPU, accounted over time: kWh today, this month and since start (issue 14).

Where the GPU has an energy counter (``nvmlDeviceGetTotalEnergyConsumption``, millijoules
since the driver loaded; NVML only, nvidia-smi does not print it) each tick adds the
counter's increase; a counter that went back (driver reloaded) or missed a tick adds nothing
for that step. Where it has none (a Tesla P40), the power draw (``power.draw``) is integrated
over the sample interval, the mean of the step's two samples (trapezoid), and the energy is
marked ``estimated``. A step longer than
:data:`gpuwatchd.collectors.energy_tally.MAX_STEP_SECONDS` (a gap: the GPU lost, the daemon
suspended) adds nothing rather than a guess.

Pure bookkeeping: the GPU collector feeds it each tick's readings and the wall time; the day
and month are the host's local calendar (a price per kWh is billed by local day); a step
counts on the day it ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from gpuwatchd.collectors.energy_tally import Tally, trapezoid, usable_step
from gpuwatchd.model import Family, FamilyBuilder, GpuEnergy, GpuReading, Kind


@dataclass
class _Account:
    tally: Tally = field(default_factory=Tally)
    counter_joules: float | None = None
    power_watts: float | None = None
    at_mono: float | None = None
    estimated: bool = False


class EnergyMeter:
    """Per GPU (by UUID) the energy since start, today and this month."""

    def __init__(self, price_per_kwh: float | None = None, currency: str = "") -> None:
        self._accounts: dict[str, _Account] = {}
        self._price, self._currency = price_per_kwh, currency

    def observe(self, gpus: Sequence[GpuReading], now_mono: float,
                now_wall: float) -> tuple[GpuEnergy, ...]:
        out = []
        for gpu in gpus:
            acct = self._accounts.setdefault(gpu.uuid, _Account())
            acct.tally.add(self._step(acct, gpu, now_mono), now_wall)
            t = acct.tally
            out.append(GpuEnergy(gpu.index, gpu.uuid, t.total, t.today, t.month,
                                 acct.estimated, self._price, self._currency))
        return tuple(out)

    @staticmethod
    def _step(acct: _Account, gpu: GpuReading, now_mono: float) -> float:
        fast = gpu.fast if gpu.up else None
        counter = fast.energy_joules_total if fast is not None else None
        power = fast.power_watts if fast is not None else None
        dt = usable_step(acct.at_mono, now_mono)
        added = 0.0
        if counter is not None:
            acct.estimated = False
            if dt is not None and acct.counter_joules is not None \
                    and counter >= acct.counter_joules:
                added = counter - acct.counter_joules
        elif power is not None:
            acct.estimated = True
            added = trapezoid(acct.power_watts, power, dt)
        acct.counter_joules, acct.power_watts = counter, power
        acct.at_mono = now_mono if fast is not None else None
        return added


CATALOGUE: dict[str, tuple[Kind, str]] = {
    "gpuwatchd_gpu_energy_accounted_joules_total": (
        "counter", "Energy gpuwatchd accounted since it started: the GPU's energy counter "
                   "(method=counter), or its power draw integrated over the sample interval "
                   "(method=power, an estimate)."),
}


def render(energies: Sequence[GpuEnergy]) -> tuple[Family, ...]:
    """The accounted energy per GPU, ``method`` counter or power (an estimate)."""
    b = FamilyBuilder(CATALOGUE)
    for e in energies:
        b.add("gpuwatchd_gpu_energy_accounted_joules_total", e.joules_total, gpu=e.index,
              uuid=e.uuid, method="power" if e.estimated else "counter")
    return b.build()
