"""Zone inputs, the safety state machine, and properties of the zone logic (no I/O)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpuwatchd.config import ZoneConfig
from gpuwatchd.config.selectors import ALL_GPUS, GpuSelector, SelectorError, parse_selector
from gpuwatchd.control.plan import plan_zones
from gpuwatchd.control.selectors import resolve
from gpuwatchd.control.state import FailsafeReason, ZoneMode
from gpuwatchd.control.zones import Fault, ZoneController
from gpuwatchd.model import (
    ChassisTemperature,
    Collected,
    CollectorResult,
    GpuFast,
    GpuReading,
    GpuStatic,
    Snapshot,
)

ZONE = ZoneConfig(name="gpu", inputs=(ALL_GPUS,), setpoint_celsius=75, ceiling_celsius=85,
                  min_duty=0.15, max_duty=1.0, failsafe_hold_seconds=10)
INTERVAL = 1.0


def gpu(index: int, temp: float | None, *, up: bool = True, margin: float | None = None,
        slowdown: float | None = 92.0) -> GpuReading:
    return GpuReading(index=index, uuid=f"GPU-{index}", name="Tesla P40", up=up,
                      fast=GpuFast(temperature_celsius=temp, margin_celsius=margin) if up else None,
                      static=GpuStatic(slowdown_celsius=slowdown),
                      error="" if up else "GPU is lost")


T0 = 1000.0  # monotonic times in these tests are T0 + seconds (0.0 means "never collected")


def snap(now: float, *readings: object, updated: float | None = None,
         name: str = "gpu") -> Snapshot:
    """A Snapshot at T0 + ``now`` whose data was read at T0 + ``updated`` (default: now)."""
    res = CollectorResult(name, ok=True, duration_seconds=0.0, updated_wall=1.0,
                          updated_mono=T0 + (now if updated is None else updated),
                          stale_after_seconds=3.0, collected=Collected(readings=readings))
    return Snapshot(seq=1, taken_wall=1.0, taken_mono=T0 + now, results=(res,))


# ---- selectors -----------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["gpu:*", "gpu:0", "gpu-margin:*", "gpu-margin:3",
                                  "bmc:idrac:Exhaust Temp"])
def test_selectors_parse(text: str) -> None:
    assert parse_selector(text).text == text


@pytest.mark.parametrize(("text", "message"), [
    ("gpu", "not a selector"), ("gpu:x", "give \\* or a GPU index"),
    ("bmc:idrac", "bmc:<bmc name>:<sensor name>"), ("cpu:0", "unknown input kind 'cpu'")])
def test_bad_selectors_say_what_is_expected(text: str, message: str) -> None:
    with pytest.raises(SelectorError, match=message):
        parse_selector(text)


def test_resolve_gpu_margin_and_bmc_inputs() -> None:
    s = snap(10.0, gpu(0, 60.0, margin=30.0), gpu(1, 70.0, margin=22.0, slowdown=90.0),
             ChassisTemperature("idrac", "Exhaust Temp", 41.0))
    sels = tuple(parse_selector(t) for t in ("gpu-margin:*", "bmc:idrac:Exhaust Temp",
                                             "gpu:1", "gpu:7"))
    values = {v.id: v for v in resolve(sels, s, T0 + 10.0)}
    assert values["gpu-margin:0"].celsius == 62.0  # 92 (its slowdown) - 30
    assert values["gpu-margin:1"].celsius == 68.0  # 90 - 22
    assert values["bmc:idrac:Exhaust Temp"].celsius == 41.0
    assert values["gpu:1"].celsius == 70.0
    assert values["gpu:7"].celsius is None and math.isinf(values["gpu:7"].age_seconds)
    with_ref = {v.id: v for v in resolve(sels[:1], s, T0 + 10.0,
                                         margin_reference_celsius=100.0)}
    assert with_ref["gpu-margin:0"].celsius == 70.0


# ---- the state machine ---------------------------------------------------------------------

def run(zone: ZoneController, now: float, *readings: object, updated: float | None = None,
        **kw: object) -> str:
    a = zone.observe(snap(now, *readings, updated=updated), T0 + now)
    return zone.step(a, T0 + now, **kw).mode  # type: ignore[arg-type]


def started(cfg: ZoneConfig = ZONE) -> ZoneController:
    zone = ZoneController(cfg, INTERVAL)
    assert run(zone, 0.0, gpu(0, 70.0), gpu(1, 60.0)) == "control"
    return zone


def test_starts_in_monitor_until_inputs_are_good() -> None:
    zone = ZoneController(ZONE, INTERVAL)
    assert run(zone, 0.0) == "monitor"  # no GPU reported yet
    assert "no input" in zone.reason
    assert run(zone, 1.0, gpu(0, 60.0)) == "control"


def test_entry_duty_guess_is_low_when_cold_and_full_at_the_setpoint() -> None:
    zone = ZoneController(ZONE, INTERVAL)
    assert zone.guess_duty(40.0) == 0.15
    assert zone.guess_duty(75.0) == 1.0
    assert 0.15 < zone.guess_duty(65.0) < 1.0


def test_stale_input_goes_to_failsafe_within_two_intervals() -> None:
    zone = started()
    # the GPU collector stops succeeding after t=0: its data keeps the t=0 stamp
    both = (gpu(0, 70.0), gpu(1, 60.0))
    assert run(zone, 1.0, *both, updated=0.0) == "control"  # 1 interval old: fine
    assert run(zone, 2.0, *both, updated=0.0) == "failsafe"  # 2 intervals: failsafe
    assert zone.last_fault is not None and zone.last_fault.reason == "stale_input"


def test_lost_gpu_and_vanished_gpu_are_failsafe_at_once() -> None:
    zone = started()
    assert run(zone, 1.0, gpu(0, 70.0), gpu(1, None, up=False)) == "failsafe"
    assert zone.last_fault is not None and zone.last_fault.reason == "gpu_lost"
    zone = started()
    assert run(zone, 1.0, gpu(0, 70.0)) == "failsafe"  # GPU 1 no longer reported
    assert "gpu:1" in zone.reason and "no longer reported" in zone.reason


def test_ceiling_is_failsafe_at_once_and_comes_first() -> None:
    zone = started()
    assert run(zone, 1.0, gpu(0, 85.0), gpu(1, None, up=False)) == "failsafe"
    assert zone.last_fault is not None and zone.last_fault.reason == "ceiling"


def test_driver_fault_is_failsafe() -> None:
    zone = started()
    a = zone.observe(snap(1.0, gpu(0, 70.0), gpu(1, 60.0)), T0 + 1.0)
    st_ = zone.step(a, T0 + 1.0, driver_fault=Fault(FailsafeReason.WRITES_FAILING, "0xcc"))
    assert st_.fault is not None
    assert (st_.mode, st_.entered, st_.fault.reason) == (
        ZoneMode.FAILSAFE, ZoneMode.FAILSAFE, FailsafeReason.WRITES_FAILING)
    assert zone.entries == {FailsafeReason.WRITES_FAILING: 1}


def test_failsafe_is_left_only_after_the_hold_and_at_max_duty() -> None:
    zone = started()
    assert run(zone, 1.0, gpu(0, 86.0), gpu(1, 60.0)) == "failsafe"
    for t in range(2, 12):  # good data from t=2: hold 10 s
        assert run(zone, float(t), gpu(0, 70.0), gpu(1, 60.0)) == "failsafe"
    assert run(zone, 4.5, gpu(0, 70.0), gpu(1, 60.0)) == "failsafe"  # not yet 10 s
    assert run(zone, 12.0, gpu(0, 70.0), gpu(1, 60.0)) == "control"
    assert zone.duty == 1.0


def test_a_fault_during_the_hold_restarts_it() -> None:
    zone = started()
    run(zone, 1.0, gpu(0, 86.0), gpu(1, 60.0))
    run(zone, 2.0, gpu(0, 70.0), gpu(1, 60.0))
    run(zone, 8.0, gpu(0, 70.0), gpu(1, 60.0), updated=0.0)  # stale again
    assert run(zone, 12.0, gpu(0, 70.0), gpu(1, 60.0)) == "failsafe"
    assert run(zone, 22.0, gpu(0, 70.0), gpu(1, 60.0)) == "control"


def test_blocked_is_monitor() -> None:
    zone = started()
    assert run(zone, 1.0, gpu(0, 70.0), blocked="0xd4") == "monitor"
    assert zone.reason == "0xd4" and zone.duty is None


def test_zones_sharing_a_bmc_enter_and_leave_failsafe_together() -> None:
    a = ZoneController(replace(ZONE, name="a", inputs=(GpuSelector(index=0),)), INTERVAL)
    b = ZoneController(replace(ZONE, name="b", inputs=(GpuSelector(index=1),),
                               failsafe_hold_seconds=20),
                       INTERVAL)
    zones = [a, b]

    def tick(now: float, t0: float, t1: float | None) -> list[str]:
        readings = [gpu(0, t0)] + ([gpu(1, t1)] if t1 is not None else [gpu(1, None, up=False)])
        steps = plan_zones(zones, snap(now, *readings), T0 + now, blocked="", fault=None,
                           entry=None)
        return [s.mode for s in steps]

    assert tick(0.0, 60.0, 60.0) == ["control", "control"]
    assert tick(1.0, 60.0, None) == ["failsafe", "failsafe"]  # b lost its GPU; a follows
    assert a.last_fault is not None and a.last_fault.reason == "gpu_lost"
    modes = [tick(float(t), 60.0, 60.0) for t in range(2, 40)]
    first_control = next(i for i, m in enumerate(modes) if "control" in m)
    assert modes[first_control] == ["control", "control"]  # together, after b's longer hold
    assert first_control + 2 >= 22


# ---- properties ------------------------------------------------------------------------

temps = st.floats(min_value=20.0, max_value=84.0, allow_nan=False)


@settings(max_examples=150, deadline=None)
@given(start=temps, seq=st.lists(st.tuples(temps, st.sampled_from([0.5, 1.0, 2.0])),
                                 min_size=1, max_size=80),
       lo=st.floats(min_value=0.0, max_value=0.5), hi=st.floats(min_value=0.5, max_value=1.0),
       up=st.floats(min_value=0.01, max_value=0.5), down=st.floats(min_value=0.005,
                                                                    max_value=0.2))
def test_zone_duty_within_limits_slew_limited_and_never_retreating_on_a_rise(
        *, start: float, seq: list[tuple[float, float]], lo: float, hi: float, up: float,
        down: float) -> None:
    cfg = replace(ZONE, min_duty=lo, max_duty=hi, slew_up_per_second=up,
                  slew_down_per_second=down, stale_after_seconds=10.0)
    zone = ZoneController(cfg, INTERVAL)
    now = 0.0
    assert run(zone, now, gpu(0, start)) == "control"
    prev_duty, prev_temp = zone.duty, start
    for temp, dt in seq:
        now += dt
        assert run(zone, now, gpu(0, temp)) == "control"
        duty = zone.duty
        assert duty is not None and prev_duty is not None
        assert lo - 1e-12 <= duty <= hi + 1e-12
        assert duty - prev_duty <= up * dt + 1e-9
        assert prev_duty - duty <= down * dt + 1e-9
        if temp > cfg.setpoint_celsius and temp > prev_temp:
            assert duty >= prev_duty - 1e-12, "a rising input above the setpoint lowered it"
        prev_duty, prev_temp = duty, temp
