"""Self-tuning (issue 12): a step test on simulated plants of three speeds, with whole-degree
readings, recovers the heatsink's time constant within 25 %; SIMC gains; the model file."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from gpuwatchd.control import tuning
from gpuwatchd.control.tuning import PlantModel, TunedGains, TuningAborted
from gpuwatchd.sim.plant import PLANT_VARIANTS, ThermalPlant

DUTY_FROM, DUTY_TO = 0.8, 0.5


def plant_test(variant: str, watts: float = 250.0, setpoint: float = 75.0
               ) -> tuple[ThermalPlant, list[tuple[float, float]], float]:
    plant = ThermalPlant(1, 8, gpu_spec=PLANT_VARIANTS[variant], profiles=[lambda t: watts],
                         duty=DUTY_FROM)
    truth = plant.conv_resistance(plant.fan_spec.target_rpm(DUTY_TO)) * \
        PLANT_VARIANTS[variant].sink_joules_per_kelvin

    def read() -> float:
        return float(round(plant.gpu(0).temperature_celsius))  # whole degrees, as NVML

    samples = tuning.step_test(plant.set_duty, read, plant.step, duty_from=DUTY_FROM,
                               duty_to=DUTY_TO, setpoint_celsius=setpoint, hold_seconds=60.0,
                               run_seconds=max(600.0, 4 * truth), report=lambda s: None)
    return plant, samples, truth


@pytest.mark.parametrize("variant", ["fast", "default", "slow"])
def test_a_step_test_recovers_the_time_constant_within_25_percent(variant: str) -> None:
    plant, samples, truth = plant_test(variant)
    assert all(y == int(y) for _, y in samples)
    model = tuning.identify(samples, 60.0, DUTY_FROM, DUTY_TO)
    assert model.time_constant_seconds == pytest.approx(truth, rel=0.25)
    rise = plant.steady_state_celsius(250.0, DUTY_TO) - plant.steady_state_celsius(250.0,
                                                                                    DUTY_FROM)
    assert model.gain_celsius_per_duty == pytest.approx(rise / (DUTY_TO - DUTY_FROM), rel=0.1)
    assert 0.0 <= model.dead_time_seconds <= 30.0
    gains = tuning.simc(model)
    assert 0.0 < gains.kp < 1.0 and 0.0 < gains.ki < gains.kp and gains.kd == 0.0


def test_the_step_test_aborts_above_the_setpoint() -> None:
    with pytest.raises(TuningAborted, match="passed the setpoint 65 C"):
        plant_test("fast", setpoint=65.0)


def test_simc_follows_the_rule() -> None:
    model = PlantModel(-60.0, 5.0, 120.0, 0.8, 0.5)
    gains = tuning.simc(model)
    assert gains.kp == pytest.approx(120.0 / (60.0 * (60.0 + 5.0)))
    assert gains.ki == pytest.approx(gains.kp / 120.0)  # Ti = min(tau, 4 (tc + theta))
    with pytest.raises(ValueError, match="no gains"):
        tuning.simc(PlantModel(0.0, 5.0, 120.0, 0.8, 0.5))


def test_the_model_file_round_trips_and_bad_ones_are_ignored(tmp_path: Path) -> None:
    model, gains = PlantModel(-60.0, 4.0, 118.0, 0.8, 0.5), TunedGains(0.04, 0.0003)
    path = tuning.save(str(tmp_path), "gpu", model, gains)
    assert path.endswith("tuning-gpu.json")
    assert tuning.load(str(tmp_path), "gpu") == (model, gains)
    assert tuning.load(str(tmp_path), "other") is None
    Path(path).write_text(Path(path).read_text().replace('"kp": 0.04', '"kp": 1e999'))
    assert tuning.load(str(tmp_path), "gpu") is None  # not finite
    Path(path).write_text("{not json")
    assert tuning.load(str(tmp_path), "gpu") is None
    assert math.isfinite(gains.kp)
