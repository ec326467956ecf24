"""Energy per chassis, accounted over time from the BMC's power reading (issue 14).

A BMC has no energy counter gpuwatchd can read on every board, so the whole-chassis power
draw (ChassisPower: DCMI Get Power Reading, ``ipmitool dcmi power reading``; Redfish
``PowerControl[].PowerConsumedWatts`` or ``EnvironmentMetrics.PowerWatts``) is integrated
over the sample interval, the mean of the step's two samples (trapezoid), as
gpuwatchd.collectors.gpu_energy does for a GPU without a counter (both through
gpuwatchd.collectors.energy_tally): always an estimate. A BMC
that did not answer, a chassis missing from a reading, or a step longer than
:data:`gpuwatchd.collectors.energy_tally.MAX_STEP_SECONDS` adds nothing rather than a guess.

Pure bookkeeping over an injected clock: each chassis collector feeds it its BmcReading per
tick; the day and month are the host's local calendar; a step counts on the day it ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gpuwatchd.clock import Clock
from gpuwatchd.collectors.energy_tally import Tally, trapezoid, usable_step
from gpuwatchd.model import BmcReading, ChassisEnergy


@dataclass
class _Account:
    tally: Tally = field(default_factory=Tally)
    watts: float | None = None
    at_mono: float | None = None


class ChassisEnergyMeter:
    """Per chassis of one BMC the energy since start, today and this month."""

    def __init__(self, clock: Clock, price_per_kwh: float | None = None,
                 currency: str = "") -> None:
        self._clock = clock
        self._accounts: dict[str, _Account] = {}
        self._price, self._currency = price_per_kwh, currency

    def observe(self, bmc: BmcReading) -> tuple[ChassisEnergy, ...]:
        """The energy of every chassis seen so far, after this tick's reading."""
        now_mono, now_wall = self._clock.monotonic(), self._clock.time()
        powers = {p.chassis: p.watts for p in bmc.power} if bmc.up else {}
        for chassis in powers:
            self._accounts.setdefault(chassis, _Account())
        out = []
        for chassis, acct in self._accounts.items():
            watts = powers.get(chassis)
            acct.tally.add(trapezoid(acct.watts, watts, usable_step(acct.at_mono, now_mono)),
                           now_wall)
            acct.watts, acct.at_mono = watts, now_mono if watts is not None else None
            t = acct.tally
            out.append(ChassisEnergy(bmc.bmc, chassis, t.total, t.today, t.month,
                                     self._price, self._currency))
        return tuple(out)
