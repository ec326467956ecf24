"""Energy per chassis, accounted over time from the BMC's power reading (issue 14).

A BMC has no energy counter gpuwatchd can read on every board, so the whole-chassis power
draw (ChassisPower: DCMI Get Power Reading, ``ipmitool dcmi power reading``; Redfish
``PowerControl[].PowerConsumedWatts`` or ``EnvironmentMetrics.PowerWatts``) is integrated
over the sample interval, the mean of the step's two samples (trapezoid), as
gpuwatchd.collectors.gpu_energy does for a GPU without a counter: always an estimate. A BMC
that did not answer, a chassis missing from a reading, or a step longer than
:data:`gpuwatchd.collectors.gpu_energy.MAX_STEP_SECONDS` adds nothing rather than a guess.

Pure bookkeeping over an injected clock: each chassis collector feeds it its BmcReading per
tick; the day and month are the host's local calendar; a step counts on the day it ends.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from gpuwatchd.clock import Clock
from gpuwatchd.collectors.gpu_energy import MAX_STEP_SECONDS
from gpuwatchd.model import BmcReading, ChassisEnergy


@dataclass
class _Account:
    total: float = 0.0
    today: float = 0.0
    month: float = 0.0
    day_key: str = ""
    month_key: str = ""
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
        now_mono, local = self._clock.monotonic(), time.localtime(self._clock.time())
        day, month = time.strftime("%Y-%m-%d", local), time.strftime("%Y-%m", local)
        powers = {p.chassis: p.watts for p in bmc.power} if bmc.up else {}
        for chassis in powers:
            self._accounts.setdefault(chassis, _Account())
        out = []
        for chassis, acct in self._accounts.items():
            if acct.day_key != day:
                acct.today, acct.day_key = 0.0, day
            if acct.month_key != month:
                acct.month, acct.month_key = 0.0, month
            added = _step(acct, powers.get(chassis), now_mono)
            acct.total += added
            acct.today += added
            acct.month += added
            out.append(ChassisEnergy(bmc.bmc, chassis, acct.total, acct.today, acct.month,
                                     self._price, self._currency))
        return tuple(out)


def _step(acct: _Account, watts: float | None, now_mono: float) -> float:
    dt = None if acct.at_mono is None else now_mono - acct.at_mono
    added = 0.0
    if (watts is not None and acct.watts is not None and dt is not None
            and 0.0 < dt <= MAX_STEP_SECONDS):
        added = (watts + acct.watts) / 2 * dt
    acct.watts = watts
    acct.at_mono = now_mono if watts is not None else None
    return added
