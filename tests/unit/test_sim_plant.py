"""The thermal plant (gpuwatchd.sim.plant) and the load profiles: physics and determinism."""

from __future__ import annotations

import itertools
import math

import pytest

from gpuwatchd.sim import profiles
from gpuwatchd.sim.plant import P40, R730_FAN, ThermalPlant
from gpuwatchd.sim.profiles import Constant, Schedule, Sine, Step


def analytic_celsius(power: float, duty: float, inlet: float = 24.0) -> float:
    """Steady state from the documented constants, independently of the plant's own maths."""
    rpm = 1_600.0 + 16_000.0 * duty
    return inlet + power * (0.05 + 0.08 * (17_600.0 / rpm) ** 0.8)


def settled(power: float, duty: float, seconds: float = 5_000.0) -> ThermalPlant:
    """A plant that starts idle at 80 % duty and then runs ``power`` at ``duty``."""
    plant = ThermalPlant(1, profiles=[Constant(50.0)])
    plant.set_profile(0, Constant(power))
    plant.set_duty(duty)
    plant.advance_to(seconds)
    return plant


@pytest.mark.parametrize(("power", "duty"), [(250.0, 0.8), (50.0, 0.0), (150.0, 0.5),
                                             (250.0, 1.0), (100.0, 0.3)])
def test_steady_state_matches_the_analytic_value(power: float, duty: float) -> None:
    plant = settled(power, duty)
    assert plant.gpu(0).temperature_celsius == pytest.approx(analytic_celsius(power, duty),
                                                             abs=0.05)
    assert plant.steady_state_celsius(power, duty) == pytest.approx(
        analytic_celsius(power, duty), abs=1e-9)


def test_p40_design_targets_make_fan_control_matter() -> None:
    plant = ThermalPlant(1)
    assert 55.0 <= plant.steady_state_celsius(250.0, 0.8) <= 65.0  # the Dell 80 % floor
    assert plant.steady_state_celsius(250.0, 0.0) > P40.slowdown_celsius  # lowest duty: too hot
    assert plant.steady_state_celsius(50.0, 0.0) < 60.0  # idle at the lowest duty is fine


def test_more_airflow_means_a_cooler_gpu() -> None:
    duties = [0.1, 0.3, 0.5, 0.7, 0.9, 1.0]
    simulated = [settled(200.0, duty).gpu(0).temperature_celsius for duty in duties]
    assert simulated == sorted(simulated, reverse=True)
    assert all(a - b > 0.5 for a, b in itertools.pairwise(simulated))


def test_at_the_slowdown_threshold_the_gpu_throttles_and_stays_below_shutdown() -> None:
    plant = ThermalPlant(1, profiles=[Constant(250.0)], duty=0.0)
    peak, throttled_power = 0.0, []
    for t in range(1, 3_601):
        plant.advance_to(float(t))
        g = plant.gpu(0)
        peak = max(peak, g.temperature_celsius)
        if g.hw_slowdown:
            throttled_power.append(g.power_watts)
    g = plant.gpu(0)
    assert peak >= P40.slowdown_celsius
    assert peak < P40.shutdown_celsius
    assert min(throttled_power) == pytest.approx(0.4 * 250.0)  # HW slowdown: 40 % power
    assert sum(throttled_power) / len(throttled_power) < 150.0
    assert g.thermal_seconds > 60.0
    assert not g.halted


def test_no_throttling_at_the_dell_floor() -> None:
    plant = settled(250.0, 0.8)
    g = plant.gpu(0)
    assert not g.hw_slowdown and g.thermal_seconds == 0.0 and g.power_watts == 250.0


def test_past_the_shutdown_threshold_the_gpu_halts_until_reset() -> None:
    plant = ThermalPlant(1, profiles=[Constant(250.0)], duty=0.0, inlet_celsius=60.0)
    plant.advance_to(3_600.0)
    g = plant.gpu(0)
    assert g.halted and g.power_watts == 0.0
    assert g.temperature_celsius < P40.shutdown_celsius  # it cooled down once off
    plant.reset_gpu(0)
    plant.step(1.0)
    assert not plant.gpu(0).halted and plant.gpu(0).power_watts > 0.0


def run_scenario(step_seconds: float, until: float = 900.0) -> tuple[float, float]:
    plant = ThermalPlant(2, profiles=[Step(30.0, 50.0, 250.0), Sine(150.0, 80.0, 300.0)])
    t = 0.0
    while t < until:
        t = min(until, t + step_seconds)
        if t >= 200.0 and plant.duty(0) != 0.3:
            plant.advance_to(200.0)
            plant.set_duty(0.3)
        plant.advance_to(t)
    return plant.gpu(0).temperature_celsius, plant.gpu(1).temperature_celsius


@pytest.mark.parametrize("step_seconds", [0.05, 0.3, 1.0, 7.0, 60.0, 900.0])
def test_any_step_size_is_stable_and_gives_the_same_trajectory(step_seconds: float) -> None:
    reference = run_scenario(0.25)
    result = run_scenario(step_seconds)
    assert all(math.isfinite(value) for value in result)
    assert result == pytest.approx(reference, abs=0.05)


def test_going_back_in_time_is_ignored() -> None:
    plant = ThermalPlant(1, profiles=[Constant(250.0)], duty=0.2)
    plant.advance_to(100.0)
    before = plant.gpu(0)
    plant.advance_to(50.0)
    assert plant.gpu(0) == before


@pytest.mark.parametrize(("power", "setpoint"), [(250.0, 75.0), (250.0, 80.0), (150.0, 60.0),
                                                 (200.0, 70.0)])
def test_oracle_duty_holds_the_setpoint_and_is_the_lowest_that_does(power: float,
                                                                    setpoint: float) -> None:
    plant = ThermalPlant(1)
    duty = plant.oracle_duty(power, setpoint)
    assert 0.0 < duty < 1.0
    assert analytic_celsius(power, duty) == pytest.approx(setpoint, abs=0.01)
    assert settled(power, duty).gpu(0).temperature_celsius == pytest.approx(setpoint, abs=0.1)
    assert settled(power, duty - 0.02).gpu(0).temperature_celsius > setpoint + 0.3


def test_oracle_duty_at_the_ends_of_the_range() -> None:
    plant = ThermalPlant(1)
    assert plant.oracle_duty(50.0, 75.0) == 0.0  # idle is cool enough at the lowest duty
    assert plant.oracle_duty(250.0, 40.0) == 1.0  # out of reach even at full duty
    assert plant.oracle_duty(0.0, 30.0) == 0.0
    assert plant.oracle_duty(250.0, 75.0, inlet_celsius=35.0) > plant.oracle_duty(250.0, 75.0)


def test_fans_follow_their_duty_with_a_first_order_lag() -> None:
    plant = ThermalPlant(1, fan_count=6, duty=0.8)
    assert plant.fan_rpms() == (14_400.0,) * 6  # 80 %, about the R730's 14,800 rpm
    plant.set_duty(0.2)
    plant.set_duty(1.0, fan=5)
    plant.advance_to(R730_FAN.lag_seconds)
    expected = 4_800.0 + (14_400.0 - 4_800.0) * math.exp(-1.0)
    assert plant.fan_rpm(0) == pytest.approx(expected, rel=1e-6)
    plant.advance_to(60.0)
    assert plant.fan_rpm(0) == pytest.approx(4_800.0, abs=1.0)  # 20 % -> 4,800 rpm (R720xd)
    assert plant.fan_rpm(5) == pytest.approx(17_600.0, abs=1.0)
    assert plant.duty(5) == 1.0 and plant.duty(0) == 0.2
    plant.set_duty(7.0)
    assert plant.duty(0) == 1.0  # clamped


def test_a_failed_fan_stops_and_the_gpus_run_warmer() -> None:
    plant = ThermalPlant(1, profiles=[Constant(250.0)], fan_count=8, duty=0.5)
    before = plant.gpu(0).temperature_celsius
    plant.fail_fan(3)
    plant.advance_to(1_000.0)
    assert plant.fan_rpm(3) < 1.0
    assert plant.airflow_rpm() == pytest.approx(R730_FAN.target_rpm(0.5) * 7 / 8, rel=1e-3)
    assert plant.gpu(0).temperature_celsius > before + 1.0


def test_the_power_limit_caps_the_demand() -> None:
    plant = ThermalPlant(1, profiles=[Constant(250.0)])
    plant.set_power_limit(0, 125.0)
    plant.step(1.0)
    g = plant.gpu(0)
    assert g.power_watts == 125.0 and g.demand_watts == 250.0 and g.power_capped
    assert g.power_cap_seconds == pytest.approx(1.0)
    with pytest.raises(ValueError, match="outside"):
        plant.set_power_limit(0, 300.0)


def test_energy_is_the_integral_of_power() -> None:
    plant = ThermalPlant(1, profiles=[Step(10.0, 50.0, 250.0)])
    plant.advance_to(20.0)
    assert plant.gpu(0).energy_joules == pytest.approx(50.0 * 10 + 250.0 * 10, rel=1e-6)


def test_inlet_temperature_shifts_the_steady_state() -> None:
    plant = settled(200.0, 0.5)
    plant.inlet_celsius = 34.0
    plant.advance_to(10_000.0)
    assert plant.gpu(0).temperature_celsius == pytest.approx(
        analytic_celsius(200.0, 0.5, inlet=34.0), abs=0.05)


def test_profiles() -> None:
    assert Step(10.0, 50.0, 250.0)(9.9) == 50.0 and Step(10.0, 50.0, 250.0)(10.0) == 250.0
    assert Sine(150.0, 100.0, 400.0)(100.0) == pytest.approx(250.0)
    schedule = Schedule(((10.0, Constant(1.0)), (5.0, Constant(2.0))), repeat=True)
    assert [schedule(t) for t in (0.0, 9.0, 10.0, 14.0, 15.0, 26.0)] == [1, 1, 2, 2, 1, 2]
    once = Schedule(((10.0, Constant(1.0)), (5.0, Step(2.0, 2.0, 3.0))), repeat=False)
    assert once(11.0) == 2.0 and once(100.0) == 3.0
    demo = profiles.by_name("demo")
    assert demo(0.0) == profiles.IDLE_WATTS and demo(200.0) == profiles.FULL_WATTS
    assert profiles.by_name("demo", 1)(0.0) != demo(0.0)  # the second GPU is out of phase
    assert len(profiles.for_gpus("idle", 3)) == 3
    with pytest.raises(ValueError, match="unknown load profile 'bogus'"):
        profiles.by_name("bogus")
    with pytest.raises(ValueError, match="2 load profiles for 3 GPUs"):
        profiles.for_gpus([Constant(1.0), Constant(2.0)], 3)


def test_the_plant_is_deterministic() -> None:
    def run() -> list[float]:
        plant = ThermalPlant(2, profiles=profiles.for_gpus("demo", 2), duty=0.4)
        out = []
        for t in range(0, 1_500, 10):
            plant.advance_to(float(t))
            out.extend(plant.gpu(i).temperature_celsius for i in range(2))
        return out

    assert run() == run()
