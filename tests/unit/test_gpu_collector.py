"""The real GPU collector (gpuwatchd.collectors.gpu) over the simulated NVML and a ManualClock."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from gpuwatchd import config
from gpuwatchd.clock import ManualClock
from gpuwatchd.collectors import Scheduled
from gpuwatchd.collectors import gpu as gpu_collector
from gpuwatchd.collectors.gpu import GpuCollector
from gpuwatchd.collectors.runner import CollectorRunner
from gpuwatchd.config import GpuConfig
from gpuwatchd.links.nvml import NvmlSession
from gpuwatchd.model import Collected, GpuReading, NvmlReading
from gpuwatchd.sim.node import DEMO_CONFIG, SimNode
from gpuwatchd.sim.profiles import Constant

Make = Callable[..., GpuCollector]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def node(clock: ManualClock) -> Iterator[SimNode]:
    node = SimNode(clock=clock, profile=[Constant(50.0), Constant(250.0)])
    yield node
    node.nvml.unhang()


@pytest.fixture
def make(node: SimNode, clock: ManualClock) -> Iterator[Make]:
    made: list[GpuCollector] = []

    def factory(**overrides: Any) -> GpuCollector:
        cfg = GpuConfig(**{"enabled": True, "xid_events": False, **overrides})
        made.append(GpuCollector(NvmlSession(node.nvml).lease(), clock, cfg))
        return made[-1]

    yield factory
    for collector in made:
        collector.close()


def value(collected: Collected, name: str, **labels: str | int) -> float | None:
    """The value of the one sample of ``name`` whose labels include ``labels``, or None."""
    want = {key: str(val) for key, val in labels.items()}
    found = [sample.value for family in collected.families if family.name == name
             for sample in family.samples if want.items() <= dict(sample.labels).items()]
    assert len(found) <= 1, f"{name}{labels} matches {len(found)} samples"
    return found[0] if found else None


def names(collected: Collected) -> set[str]:
    return {family.name for family in collected.families}


def tick(collector: GpuCollector, clock: ManualClock, seconds: float = 1.0) -> Collected:
    clock.advance(seconds)
    return collector.collect()


def test_both_gpus_report_their_plant_temperatures(make: Make, node: SimNode) -> None:
    col = make().collect()
    for index in (0, 1):
        expected = round(node.gpu_view(index).temperature_celsius)
        assert value(col, "gpuwatchd_gpu_temperature_celsius", gpu=index, sensor="gpu") == expected
        assert value(col, "gpuwatchd_gpu_up", gpu=index) == 1
    assert value(col, "gpuwatchd_gpu_power_watts", gpu=1) == 250.0
    assert value(col, "gpuwatchd_gpu_temperature_margin_celsius", gpu=1) == 92 - round(
        node.gpu_view(1).temperature_celsius)
    assert value(col, "gpuwatchd_nvml_up") == 1
    readings = [r for r in col.readings if isinstance(r, GpuReading)]
    assert [(r.index, r.name, r.slowdown_celsius) for r in readings] == [
        (0, "Tesla P40", 92), (1, "Tesla P40", 92)]
    assert readings[0].uuid == node.nvml.uuid(0)


def test_p40_fan_energy_and_memory_temperature_are_absent_not_zero(make: Make) -> None:
    col = make().collect()
    assert "gpuwatchd_gpu_fan_speed_ratio" not in names(col)
    assert "gpuwatchd_gpu_energy_joules_total" not in names(col)
    assert "gpuwatchd_gpu_remapped_rows" not in names(col)
    assert value(col, "gpuwatchd_gpu_temperature_celsius", gpu=0, sensor="memory") is None
    assert value(col, "gpuwatchd_gpu_temperature_celsius", gpu=0, sensor="gpu") is not None
    gpu_readings = [r for r in col.readings if isinstance(r, GpuReading)]
    assert all(r.fan_ratios == () for r in gpu_readings)


def test_a_lost_gpu_goes_down_alone_and_comes_back_after_reinit(make: Make, node: SimNode,
                                                                clock: ManualClock) -> None:
    collector = make()
    collector.collect()
    node.nvml.lose_gpu(1)
    col = tick(collector, clock)
    assert value(col, "gpuwatchd_gpu_up", gpu=1) == 0
    assert value(col, "gpuwatchd_gpu_temperature_celsius", gpu=1, sensor="gpu") is None
    assert value(col, "gpuwatchd_gpu_up", gpu=0) == 1
    assert value(col, "gpuwatchd_gpus", state="lost") == 1
    inits = []
    for second in range(2, 22):  # still lost: re-inits back off 1, 2, 4, 8 s
        before = node.nvml.calls()["nvmlInit"]
        col = tick(collector, clock)
        if node.nvml.calls()["nvmlInit"] > before:
            inits.append(second)
        assert value(col, "gpuwatchd_gpu_temperature_celsius", gpu=0, sensor="gpu") is not None
        assert value(col, "gpuwatchd_gpu_up", gpu=1) == 0
    assert inits == [2, 4, 8, 16]
    node.nvml.restore_gpu(1)
    for _ in range(17):  # the next re-init is due 16 s after the last one
        col = tick(collector, clock)
        if value(col, "gpuwatchd_gpu_up", gpu=1) == 1:
            break
    assert value(col, "gpuwatchd_gpu_up", gpu=1) == 1
    assert value(col, "gpuwatchd_gpus", state="lost") == 0
    assert value(col, "gpuwatchd_gpu_temperature_celsius", gpu=1, sensor="gpu") is not None


def test_driver_unloaded_means_nvml_down_and_backed_off_reinit(make: Make, node: SimNode,
                                                               clock: ManualClock) -> None:
    collector = make(reinit_max_backoff_seconds=8.0)
    collector.collect()
    node.nvml.unload_driver()
    downs, inits = [], []
    for second in range(1, 31):
        before = node.nvml.calls()["nvmlInit"]
        col = tick(collector, clock)
        downs.append(value(col, "gpuwatchd_nvml_up"))
        if node.nvml.calls()["nvmlInit"] > before:
            inits.append(second)
        assert value(col, "gpuwatchd_gpu_up", gpu=0) == 0
    assert downs[1:] == [0] * 29  # down from the second tick after the unload on
    gaps = [b - a for a, b in itertools.pairwise(inits)]
    assert gaps[:3] == [2, 4, 8] and set(gaps[3:]) <= {8}  # exponential, capped at 8 s
    nvml_reading = next(r for r in col.readings if isinstance(r, NvmlReading))
    assert not nvml_reading.up and "driver_not_loaded" in nvml_reading.error
    node.nvml.load_driver()
    for _ in range(9):
        col = tick(collector, clock)
        if value(col, "gpuwatchd_nvml_up") == 1:
            break
    assert value(col, "gpuwatchd_nvml_up") == 1
    assert value(col, "gpuwatchd_gpu_up", gpu=0) == value(col, "gpuwatchd_gpu_up", gpu=1) == 1


def test_an_implausible_temperature_is_rejected_held_then_absent(make: Make, node: SimNode,
                                                                 clock: ManualClock) -> None:
    collector = make()
    good = value(collector.collect(), "gpuwatchd_gpu_temperature_celsius", gpu=0, sensor="gpu")
    node.nvml.override_temperature(0, 82505)  # seen by dcgm-exporter#312
    for strike in (1, 2, 3):
        col = tick(collector, clock)
        assert value(col, "gpuwatchd_gpu_temperature_celsius", gpu=0, sensor="gpu") == good
        assert value(col, "gpuwatchd_gpu_implausible_readings_total", gpu=0) == strike
    col = tick(collector, clock)
    assert value(col, "gpuwatchd_gpu_temperature_celsius", gpu=0, sensor="gpu") is None
    assert value(col, "gpuwatchd_gpu_implausible_readings_total", gpu=0) == 4
    assert value(col, "gpuwatchd_gpu_implausible_readings_total", gpu=1) == 0
    node.nvml.override_temperature(0, None)
    col = tick(collector, clock)
    assert value(col, "gpuwatchd_gpu_temperature_celsius", gpu=0, sensor="gpu") == good
    assert value(col, "gpuwatchd_gpu_implausible_readings_total", gpu=0) == 4


def test_a_held_temperature_carries_the_age_of_its_reading(make: Make, node: SimNode,
                                                           clock: ManualClock) -> None:
    from gpuwatchd.model import GpuReading

    def gpu0(col: Collected) -> GpuReading:
        return next(r for r in col.readings if isinstance(r, GpuReading) and r.index == 0)

    collector = make()
    good = gpu0(collector.collect())
    assert good.temperature_held_seconds == 0.0
    assert good.temperature_celsius == int(good.temperature_celsius or 0)  # whole degrees
    node.nvml.override_temperature(0, 255)  # whole degrees, as NVML gives them
    held = [gpu0(tick(collector, clock, 0.5)) for _ in range(3)]
    assert [g.temperature_celsius for g in held] == [good.temperature_celsius] * 3
    assert [g.temperature_held_seconds for g in held] == [0.5, 1.0, 1.5]
    node.nvml.override_temperature(0, None)
    assert gpu0(tick(collector, clock)).temperature_held_seconds == 0.0


def wait_for_xid(collector: GpuCollector, count: int, **labels: str | int) -> Collected:
    deadline = time.monotonic() + 3.0
    while True:
        col = collector.collect()
        got = value(col, "gpuwatchd_gpu_xid_errors_total", **labels)
        if got == count or time.monotonic() > deadline:
            return col
        time.sleep(0.01)


def test_injected_xids_increment_the_counter(make: Make, node: SimNode,
                                             clock: ManualClock) -> None:
    collector = make(xid_events=True)
    col = collector.collect()
    assert "gpuwatchd_gpu_xid_errors_total" not in names(col)
    assert node.nvml.inject_xid(1, 79) == 1
    col = wait_for_xid(collector, 1, gpu=1, xid=79)
    assert value(col, "gpuwatchd_gpu_xid_errors_total", gpu=1, uuid=node.nvml.uuid(1),
                 xid=79) == 1
    assert value(col, "gpuwatchd_gpu_xid_last_timestamp_seconds", gpu=1, xid=79) == clock.time()
    node.nvml.inject_xid(1, 79)
    node.nvml.inject_xid(0, 13)
    col = wait_for_xid(collector, 2, gpu=1, xid=79)
    assert value(col, "gpuwatchd_gpu_xid_errors_total", gpu=1, xid=79) == 2
    col = wait_for_xid(collector, 1, gpu=0, xid=13)
    assert value(col, "gpuwatchd_gpu_xid_errors_total", gpu=0, xid=13) == 1


def test_slow_tier_is_read_once_per_slow_interval(make: Make, node: SimNode,
                                                  clock: ManualClock) -> None:
    collector = make(slow_interval_seconds=30.0)
    node.nvml.reset_calls()
    for _ in range(60):
        col = collector.collect()
        assert value(col, "gpuwatchd_gpu_utilization_ratio", gpu=1, engine="gpu") == 1.0
        clock.advance(1.0)
    calls = node.nvml.calls()
    assert calls["nvmlDeviceGetPowerUsage"] == 60 * 2  # fast tier: every tick, both GPUs
    assert calls["nvmlDeviceGetTemperature"] == 60 * 2
    assert calls["nvmlDeviceGetUtilizationRates"] == 2 * 2  # at 0 s and 30 s
    assert calls["nvmlDeviceGetPersistenceMode"] == 2 * 2
    assert calls["nvmlDeviceGetName"] == 2  # static: once, at discovery


def test_unsupported_calls_are_asked_once_not_every_tick(make: Make, node: SimNode,
                                                         clock: ManualClock) -> None:
    node.nvml.set_unsupported(0, "nvmlDeviceGetPowerUsage")
    collector = make(slow_interval_seconds=5.0)
    node.nvml.reset_calls()
    for _ in range(10):
        col = collector.collect()
        assert value(col, "gpuwatchd_gpu_power_watts", gpu=0) is None
        assert value(col, "gpuwatchd_gpu_power_watts", gpu=1) == 250.0
        clock.advance(1.0)
    calls = node.nvml.calls()
    assert calls["nvmlDeviceGetPowerUsage"] == 1 + 10  # GPU 0 once, GPU 1 every tick
    for call in ("nvmlDeviceGetTotalEnergyConsumption", "nvmlDeviceGetFieldValues",
                 "nvmlDeviceGetRemappedRows"):
        assert calls[call] == 2, call  # once per GPU
    assert calls["nvmlDeviceGetFanSpeed_v2"] == 0  # zero fans: never asked
    assert value(col, "gpuwatchd_nvml_errors_total", call="nvmlDeviceGetTotalEnergyConsumption",
                 error="not_supported") == 2


def test_a_hung_call_fails_the_tick_at_its_deadline_without_blocking_the_next(
        make: Make, node: SimNode, clock: ManualClock) -> None:
    runner = CollectorRunner(Scheduled(make(), 1.0, 0.3), clock)
    try:
        assert runner.start_if_due() and runner.finish().ok
        node.nvml.hang("nvmlDeviceGetPowerUsage", 30.0)
        clock.advance(1.0)
        started = time.perf_counter()
        assert runner.start_if_due()
        result = runner.finish()
        assert time.perf_counter() - started < 0.3 + 0.2
        assert not result.ok and "deadline of 0.3 s exceeded" in result.error
        assert value(result.collected, "gpuwatchd_gpu_up", gpu=0) == 1  # last good data kept
        clock.advance(1.0)
        started = time.perf_counter()
        assert not runner.start_if_due()  # the worker is still stuck: nothing queued behind
        result = runner.finish()
        assert time.perf_counter() - started < 0.1
        assert not result.ok and "still running" in result.error
        node.nvml.unhang()
        deadline = time.monotonic() + 3.0
        while not runner.start_if_due() and time.monotonic() < deadline:
            clock.advance(1.0)
            time.sleep(0.01)
        assert runner.finish().ok
    finally:
        node.nvml.unhang()
        runner.close()


def test_a_reinit_with_xid_events_armed_stays_within_the_deadline(make: Make, node: SimNode,
                                                                  clock: ManualClock) -> None:
    runner = CollectorRunner(Scheduled(make(xid_events=True), 1.0, 1.0), clock)
    try:
        assert runner.start_if_due() and runner.finish().ok
        node.nvml.lose_gpu(1)
        durations = []
        for _ in range(8):  # re-inits at +2 s, +4 s and +8 s; each one stops the XID thread
            clock.advance(1.0)
            assert runner.start_if_due()
            result = runner.finish()
            assert result.ok, result.error
            durations.append(result.duration_seconds)
        assert max(durations) < 0.6
    finally:
        runner.close()


def test_the_demo_config_builds_one_gpu_collector_on_the_sim(node: SimNode) -> None:
    cfg = config.load(DEMO_CONFIG)
    scheduled = gpu_collector.build(cfg, node.hardware())
    assert [(s.interval_seconds, s.deadline_seconds) for s in scheduled] == [(1.0, 1.0)]
    collector = scheduled[0].collector
    try:
        col = collector.collect()
        assert value(col, "gpuwatchd_gpus", state="visible") == 2
    finally:
        collector.close()
