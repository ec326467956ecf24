"""Chassis energy (issue 14): the BMC's chassis power integrated over the sample interval
(always an estimate), today/this month on the local calendar, the metric and the status
rows beside the GPUs'."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from gpuwatchd.clock import ManualClock
from gpuwatchd.collectors import chassis_metrics
from gpuwatchd.collectors.chassis_energy import ChassisEnergyMeter
from gpuwatchd.model import (
    BmcReading,
    ChassisEnergy,
    ChassisPower,
    Collected,
    CollectorResult,
    GpuEnergy,
    Snapshot,
)
from gpuwatchd.status.sections import energy as energy_section
from gpuwatchd.status.text import Style


@pytest.fixture(autouse=True)
def utc() -> Iterator[None]:
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


T0 = 1_767_225_600.0 - 3 * 3600  # 2025-12-31 21:00 UTC


def bmc(*watts: float, up: bool = True) -> BmcReading:
    return BmcReading("idrac", "ipmi", up, power=tuple(
        ChassisPower(f"chassis{i}" if i else "system", w) for i, w in enumerate(watts)))


def test_chassis_power_is_integrated_per_chassis_and_across_midnight() -> None:
    clock = ManualClock(start_wall=T0, start_mono=0.0)
    meter = ChassisEnergyMeter(clock, 0.30, "EUR")
    meter.observe(bmc(1000.0))  # the first sample adds nothing
    for _ in range(5 * 60):  # 5 hours of 1 kW in 60 s steps, into January
        clock.advance(60)
        (e,) = meter.observe(bmc(1000.0))
    assert (e.bmc, e.chassis) == ("idrac", "system")
    assert e.joules_total / 3.6e6 == pytest.approx(5.0)
    assert e.today_joules / 3.6e6 == pytest.approx(2.0 + 1 / 60)
    assert e.month_joules / 3.6e6 == pytest.approx(2.0 + 1 / 60)
    assert (e.price_per_kwh, e.currency) == (0.30, "EUR")


def test_trapezoid_and_no_guess_over_a_bmc_outage_or_a_long_gap() -> None:
    clock = ManualClock(start_wall=T0, start_mono=0.0)
    meter = ChassisEnergyMeter(clock)
    meter.observe(bmc(500.0))
    clock.advance(2)
    (e,) = meter.observe(bmc(700.0))
    assert e.joules_total == pytest.approx(1200.0)  # (500 + 700) / 2 x 2 s
    clock.advance(2)
    (e,) = meter.observe(bmc(up=False))  # BMC silent: nothing added, the chassis still shown
    clock.advance(2)
    (e,) = meter.observe(bmc(700.0))  # first sample after the outage: nothing yet
    assert e.joules_total == pytest.approx(1200.0)
    clock.advance(120)  # longer than MAX_STEP_SECONDS: a gap, not a guess
    (e,) = meter.observe(bmc(700.0))
    assert e.joules_total == pytest.approx(1200.0)
    clock.advance(1)
    (e,) = meter.observe(bmc(700.0))
    assert e.joules_total == pytest.approx(1900.0)


def test_the_metric_and_the_status_rows_beside_the_gpus() -> None:
    clock = ManualClock(start_wall=T0, start_mono=0.0)
    meter = ChassisEnergyMeter(clock, 0.5, "EUR")
    meter.observe(bmc(1800.0))
    clock.advance(60)
    (chassis,) = meter.observe(bmc(1800.0))  # 108 kJ = 0.03 kWh
    families = chassis_metrics.render((bmc(1800.0), chassis))
    (family,) = [f for f in families
                 if f.name == "gpuwatchd_chassis_energy_accounted_joules_total"]
    assert family.kind == "counter"
    assert [(dict(s.labels), s.value) for s in family.samples] == [
        ({"bmc": "idrac", "chassis": "system"}, pytest.approx(108_000.0))]
    gpu = GpuEnergy(0, "GPU-0", 36_000.0, 36_000.0, 36_000.0, False, 0.5, "EUR")
    rows = energy_section.build(_snapshot(gpu, chassis), 0.0).data
    assert rows is not None and [r.get("gpu", r.get("chassis")) for r in rows] == [0, "system"]
    assert rows[1]["estimated"] and rows[1]["today_kwh"] == pytest.approx(0.03)
    assert rows[1]["today_cost"] == pytest.approx(0.015)
    text = "\n".join(energy_section.render(rows, Style(color=False)))
    assert "idrac system" in text and "~0.030" in text and "BMC power x time" in text
    assert "gpu0" in text and "energy counter" in text


def _snapshot(*readings: GpuEnergy | ChassisEnergy) -> Snapshot:
    res = CollectorResult("gpu", ok=True, duration_seconds=0.0, updated_wall=0.0,
                          updated_mono=0.0, stale_after_seconds=3.0,
                          collected=Collected(readings=readings))
    return Snapshot(seq=1, taken_wall=0.0, taken_mono=0.0, results=(res,))
