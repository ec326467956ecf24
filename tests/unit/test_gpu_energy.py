"""Energy per GPU (issue 14): the counter where present, power x time where not (estimated),
today/this month on the local calendar, the cost in ``gpuwatchctl status``, and the metric."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from gpuwatchd.collectors.gpu_energy import EnergyMeter, render
from gpuwatchd.config import loads
from gpuwatchd.model import (
    Collected,
    CollectorResult,
    GpuEnergy,
    GpuFast,
    GpuReading,
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


DAY = 86_400.0
T0 = 1_767_225_600.0 - 3 * 3600  # 2025-12-31 21:00 UTC


def p40(watts: float | None, up: bool = True) -> GpuReading:
    return GpuReading(index=0, uuid="GPU-p40", name="Tesla P40", up=up,
                      fast=GpuFast(power_watts=watts))


def rtx(counter_joules: float, watts: float = 100.0) -> GpuReading:
    return GpuReading(index=1, uuid="GPU-2070", name="GeForce RTX 2070", up=True,
                      fast=GpuFast(power_watts=watts, energy_joules_total=counter_joules))


def test_a_gpu_without_a_counter_is_integrated_from_power_and_marked_estimated() -> None:
    meter = EnergyMeter()
    meter.observe([p40(100.0)], 0.0, T0)
    (e,) = meter.observe([p40(200.0)], 2.0, T0 + 2)
    assert e.estimated and e.joules_total == pytest.approx(300.0)  # trapezoid: 150 W x 2 s
    (e,) = meter.observe([p40(None, up=False)], 4.0, T0 + 4)  # lost: nothing added
    (e,) = meter.observe([p40(200.0)], 6.0, T0 + 6)
    assert e.joules_total == pytest.approx(300.0)  # no guess over the gap


def test_a_gpu_with_a_counter_adds_its_increase_and_survives_a_reset() -> None:
    meter = EnergyMeter()
    meter.observe([rtx(5_000.0)], 0.0, T0)
    (e,) = meter.observe([rtx(5_350.0)], 1.0, T0 + 1)
    assert not e.estimated and e.joules_total == pytest.approx(350.0)
    (e,) = meter.observe([rtx(10.0)], 2.0, T0 + 2)  # the driver reloaded: counter from 0
    (e,) = meter.observe([rtx(110.0)], 3.0, T0 + 3)
    assert e.joules_total == pytest.approx(450.0)


def test_today_and_this_month_start_again_at_local_midnight_and_month_end() -> None:
    meter = EnergyMeter(price_per_kwh=0.30, currency="EUR")
    watts = 3_600_000 / 3600  # 1 kW: 1 kWh per hour
    t, mono = T0, 0.0
    meter.observe([p40(watts)], mono, t)
    for _ in range(5 * 60):  # 5 hours in 60 s steps: across midnight into January
        t, mono = t + 60, mono + 60
        (e,) = meter.observe([p40(watts)], mono, t)
    assert e.joules_total / 3.6e6 == pytest.approx(5.0)
    # since 00:00 on 1 January; a step counts on the day it ends (23:59-00:00: 1 January)
    assert e.today_joules / 3.6e6 == pytest.approx(2.0 + 1 / 60)
    assert e.month_joules / 3.6e6 == pytest.approx(2.0 + 1 / 60)
    section = energy_section.build(_snapshot(e), 0.0)
    (row,) = section.data  # type: ignore[misc]
    assert row["today_kwh"] == pytest.approx(2.0167, abs=1e-4)
    assert row["today_cost"] == pytest.approx(0.605, abs=1e-3)
    text = "\n".join(energy_section.render(section.data, Style(color=False)))  # type: ignore[arg-type]
    assert "~2.017" in text and "0.60 EUR" in text and "estimated" in text


def test_no_price_no_cost_and_the_metric_names_the_method() -> None:
    meter = EnergyMeter()
    meter.observe([p40(100.0), rtx(0.0)], 0.0, T0)
    energies = meter.observe([p40(100.0), rtx(90.0)], 1.0, T0 + 1)
    (family,) = render(energies)
    assert family.name == "gpuwatchd_gpu_energy_accounted_joules_total"
    assert [(dict(s.labels)["method"], s.value) for s in family.samples] == [
        ("power", 100.0), ("counter", 90.0)]
    rows = energy_section.build(_snapshot(*energies), 0.0).data
    assert [r["today_cost"] for r in rows] == [None, None]  # type: ignore[union-attr]
    assert energy_section.build(Snapshot(1, 0.0, 0.0), 0.0).data is None


def test_the_config_takes_a_price_and_a_currency() -> None:
    cfg = loads("energy: {price_per_kwh: 0.31, currency: GBP}\n")
    assert (cfg.energy.price_per_kwh, cfg.energy.currency) == (0.31, "GBP")
    assert loads("").energy.price_per_kwh is None


def _snapshot(*energies: GpuEnergy) -> Snapshot:
    res = CollectorResult("gpu", ok=True, duration_seconds=0.0, updated_wall=0.0,
                          updated_mono=0.0, stale_after_seconds=3.0,
                          collected=Collected(readings=energies))
    return Snapshot(seq=1, taken_wall=0.0, taken_mono=0.0, results=(res,))
