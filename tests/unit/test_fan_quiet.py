"""Issue 12: no fan hunting at a steady load, on plants of three speeds with whole-degree
readings (the simulated NVML rounds, as the real one does), on simulated time: the daemon on a
simulated node ticked by hand on a manual clock. Also the estimator and the write hold."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace
from importlib import resources

import pytest

from gpuwatchd.clock import ManualClock
from gpuwatchd.config import ConfigError, loads
from gpuwatchd.control import tuning
from gpuwatchd.control.estimate import LineFit, Lowpass
from gpuwatchd.control.hold import Hold
from gpuwatchd.control.revert import RpmWatch
from gpuwatchd.daemon.cli import _demo_config
from gpuwatchd.daemon.service import Daemon
from gpuwatchd.sim import profiles
from gpuwatchd.sim.node import SimNode
from gpuwatchd.sim.plant import P40, PLANT_VARIANTS, ThermalPlant, scaled

DEMO_YAML = resources.files("gpuwatchd.sim").joinpath("demo.yaml").read_text()
SETPOINT, CEILING = 75.0, 85.0
WARM, RUN = 300.0, 300.0  # 5 minutes at 60 W from the BMC's 80 %, then 5 minutes at 250 W


@dataclass
class Trace:
    times: list[float]
    temps: list[float]  # the hottest die, true (not rounded)
    readings: list[float]  # what the zone saw (whole degrees)
    duties: list[float]  # commanded (fan 0's duty as the BMC got it)
    oracle: float
    tuned: bool = False  # the zone reported tuned gains


def tune(variant: str, state: str) -> None:
    """The step test on the same plant (gpuwatchctl tune's test), stored as the zone's."""
    plant = ThermalPlant(1, 8, gpu_spec=PLANT_VARIANTS[variant], profiles=[lambda t: 250.0],
                         duty=0.8)
    def read() -> float:
        return float(round(plant.gpu(0).temperature_celsius))

    samples = tuning.step_test(plant.set_duty, read, plant.step, duty_from=0.8, duty_to=0.5,
                               setpoint_celsius=SETPOINT, hold_seconds=60.0, run_seconds=1500.0,
                               report=lambda s: None)
    model = tuning.identify(samples, 60.0, 0.8, 0.5)
    tuning.save(state, "gpu", model, tuning.simc(model))


def step_run(variant: str, interval: float = 1.0, tuned: bool = False) -> Trace:
    clock = ManualClock()
    load = profiles.Step(at_seconds=WARM, before_watts=60.0, after_watts=250.0)
    node = SimNode(clock=clock, profile=[load, load], gpu_spec=PLANT_VARIANTS[variant])
    with node.synced() as plant:
        plant.settle()
    config = _demo_config()
    with tempfile.TemporaryDirectory(prefix="gpuwatchd-state-") as state:
        if tuned:
            tune(variant, state)
        config = replace(config, interval_seconds=interval, fan_control=replace(
            config.fan_control, state_directory=state))
        daemon = Daemon(config, node.hardware())
        daemon._build(config)
        trace = Trace([], [], [], [], max(0.15, node.oracle_duty(250.0, SETPOINT)))
        t = 0.0
        try:
            while t < WARM + RUN:
                snap = daemon.tick()
                clock.advance(interval)
                t += interval
                assert snap.control is not None
                zone = snap.control.zones[0]
                trace.tuned = zone.tuned
                trace.times.append(t)
                trace.temps.append(max(node.gpu_view(i).temperature_celsius for i in range(2)))
                trace.readings.append(zone.input_celsius or 0.0)
                trace.duties.append(node.duty(0))
        finally:
            daemon._close_hardware()
    return trace


def reversals(duties: list[float]) -> int:
    count, sign, prev = 0, 0, duties[0]
    for d in duties[1:]:
        if abs(d - prev) > 1e-9:
            s = 1 if d > prev else -1
            count += 1 if sign and s != sign else 0
            sign = s
        prev = d
    return count


@pytest.mark.parametrize("variant", ["slow", "default", "fast"])
@pytest.mark.parametrize(("interval", "tuned"), [(1.0, False), (2.0, False), (1.0, True)])
def test_a_load_step_settles_without_hunting(variant: str, interval: float,
                                             tuned: bool) -> None:
    tr = step_run(variant, interval, tuned)
    assert tr.tuned is tuned  # the daemon runs the stored model's gains when there is one
    assert all(r == int(r) for r in tr.readings)  # whole degrees, as NVML reports
    after = [T for t, T in zip(tr.times, tr.temps, strict=True) if t > WARM]
    assert max(after) <= SETPOINT + 3.0
    assert max(tr.temps) < CEILING  # never at the ceiling
    last = [d for t, d in zip(tr.times, tr.duties, strict=True) if t > WARM + RUN - 60.0]
    assert max(last) - min(last) <= 0.05  # within 5 % peak to peak over the last minute
    assert reversals(last) <= 2  # at most 2 changes of direction in that minute
    assert sum(last) / len(last) <= 1.15 * tr.oracle


def test_the_idle_duty_stays_at_the_floor() -> None:
    tr = step_run("default")
    idle = [d for t, d in zip(tr.times, tr.duties, strict=True) if 200.0 < t <= WARM]
    assert max(idle) == pytest.approx(0.15)  # min duty: >= 15 dB under the BMC's 80 %


def test_plant_variants_scale_the_time_constants_only() -> None:
    fast, slow = PLANT_VARIANTS["fast"], PLANT_VARIANTS["slow"]
    assert fast.sink_joules_per_kelvin == 400.0 and slow.sink_joules_per_kelvin == 2400.0
    plant = ThermalPlant(1, 1, gpu_spec=P40)
    r = plant.conv_resistance(plant.fan_spec.target_rpm(0.4))
    assert r * P40.sink_joules_per_kelvin == pytest.approx(120.0, rel=0.01)  # tau at 40 %
    assert ThermalPlant(1, 1, gpu_spec=slow).oracle_duty(250.0, 75.0) == pytest.approx(
        plant.oracle_duty(250.0, 75.0))
    with pytest.raises(ValueError, match="positive"):
        scaled(P40, 0.0)


def test_line_fit_spreads_a_whole_degree_step() -> None:
    fit = LineFit(30.0)
    fit.reset(0.0, 75.0)
    for t in range(1, 30):
        f = fit.add(float(t), 75.0)
    assert f.slope == pytest.approx(0.0)
    f = fit.add(30.0, 76.0)  # one reading ticks up
    assert 0.0 < f.slope < 0.1  # not 1 C/s
    assert f.mean == pytest.approx(75.0 + 1 / 31)
    ramp = LineFit(20.0)
    ramp.reset(0.0, 50.0)
    for t in range(1, 60):
        g = ramp.add(float(t), 50.0 + 0.1 * t)
    assert g.slope == pytest.approx(0.1) and g.value == pytest.approx(55.9)
    two = LineFit(0.0)
    two.reset(0.0, 70.0)
    assert two.add(1.0, 71.0).slope == pytest.approx(1.0)
    lp = Lowpass(10.0)
    assert lp.add(100.0, 1.0) == 100.0 and lp.add(200.0, 10.0) == pytest.approx(150.0)


def test_hold_keeps_small_changes_until_the_dwell_and_follows_big_ones() -> None:
    hold = Hold()
    hold.reset(0.40, 0.0)
    assert hold.moved(hold.step(0.41, 1.0, 0.02, 20.0)) == 0.40  # small: held
    assert hold.moved(hold.step(0.41, 21.0, 0.02, 20.0)) == 0.41  # dwelt: a whole percent
    assert hold.moved(hold.step(0.415, 22.0, 0.02, 20.0)) == 0.41  # below a percent: held
    assert hold.moved(hold.step(0.45, 23.0, 0.02, 20.0)) == 0.45  # big: at once
    assert hold.step(0.30, 24.0, 0.02, 20.0) == 0.30  # big: followed...
    hold.moved(0.44)  # ...within the down-slew limit: not caught up
    assert hold.tracking and hold.step(0.30, 25.0, 0.02, 20.0) == 0.30  # keeps following


def test_a_revert_at_a_steady_duty_is_found_though_the_fans_slow_gradually() -> None:
    """The fans spin down over a few ticks after the BMC takes over; each tick's speed is
    within the band of the last, so a learned point that followed them would never strike."""
    watch = RpmWatch()
    t = 0.0
    for _ in range(20):  # steady at 38 %: 7,560 rpm learned
        t += 2.0
        assert not watch.observe(t, 0.38, 7560.0)
    found = False
    for rpm in (5820.0, 4860.0, 4440.0, 4200.0, 4080.0):  # the BMC's 15 %, with the fan lag
        t += 2.0
        found = found or watch.observe(t, 0.38, rpm)
    assert found
    assert watch.expected_rpm(0.38) == pytest.approx(7560.0)


QUIET_KEYS = {"derivative_window_seconds": (30.0, "601"), "error_deadband_celsius": (0.5, "11"),
              "feedforward_duty_per_watt": (0.0025, "2"),
              "feedforward_filter_seconds": (10.0, "-1"), "write_deadband_ratio": (0.02, "0.6"),
              "min_dwell_seconds": (20.0, "4000")}


@pytest.mark.parametrize("key", sorted(QUIET_KEYS))
def test_the_quiet_keys_have_defaults_and_are_range_checked(key: str) -> None:
    default, bad = QUIET_KEYS[key]
    zone = _demo_config().fan_control.zones[0]
    assert getattr(zone, key) == default
    text = DEMO_YAML.replace("      max_duty: 1.0\n", f"      max_duty: 1.0\n      {key}: 0\n")
    assert getattr(loads(text, "q.yaml").fan_control.zones[0], key) == 0.0
    for value in (bad, ".nan", ".inf"):
        with pytest.raises(ConfigError, match=key):
            loads(text.replace(f"{key}: 0\n", f"{key}: {value}\n"), "q.yaml")


def test_hold_stops_following_within_a_whole_percent() -> None:
    hold = Hold()
    hold.reset(0.40, 0.0)
    assert hold.moved(hold.step(0.30, 1.0, 0.02, 20.0) + 0.09) == pytest.approx(0.39)
    assert hold.tracking  # 9 % behind
    hold.moved(hold.step(0.30, 2.0, 0.02, 20.0) + 0.004)  # the slew limit: 0.304
    assert hold.step(0.30, 3.0, 0.02, 20.0) == pytest.approx(0.304)  # within 1 %: holds
    assert not hold.tracking
