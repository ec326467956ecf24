"""The GPU collector end to end: real nvidia-ml-py over a fake libnvidia-ml.so.1 (C, gcc).

Everything between the collector and the C ABI is the production code path: NvmlLink ->
pynvml -> ctypes -> the library's exported symbols and struct layouts. The fake reads its
values from a state file (tests/fakes/fakenvml), which the tests rewrite while it is loaded.

pynvml keeps the loaded library (``pynvml.nvmlLib``) and a cache of function pointers per
process; the ``nvml`` fixture resets both (and the fake's own globals) around every test.
"""

from __future__ import annotations

import ctypes
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pynvml
import pytest

from gpuwatchd.clock import ManualClock
from gpuwatchd.collectors import Scheduled
from gpuwatchd.collectors.gpu import GpuCollector
from gpuwatchd.collectors.runner import CollectorRunner
from gpuwatchd.config import GpuConfig
from gpuwatchd.links.nvml import NvmlSession
from gpuwatchd.model import Collected, GpuReading, NvmlReading
from tests.fakes.fakenvml import (
    CLOCK,
    ECC_TYPE,
    ECC_VOLATILE,
    FIELD_MEMORY_TEMP,
    OLD_DRIVER_MISSING,
    RC_DRIVER_NOT_LOADED,
    RC_GPU_IS_LOST,
    RC_NOT_SUPPORTED,
    THRESHOLD,
    VIOLATION,
    FakeNvmlBuildError,
    FakeNvmlState,
    add_mig,
    build_fake_nvml,
    collect_in_subprocess,
    reset_pynvml,
)

pytestmark = pytest.mark.peer

CLOCK_EVENT_BITS = {"gpu_idle": 0x1, "sw_power_cap": 0x4, "sw_thermal": 0x20,
                    "hw_thermal": 0x40}


# ---- fixtures ----------------------------------------------------------------------------

@pytest.fixture(scope="session")
def libs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Both variants of the fake library, compiled once per session."""
    where = tmp_path_factory.mktemp("fakenvml")
    try:
        return {"current": build_fake_nvml(where),
                "old": build_fake_nvml(where, old_driver=True)}
    except FakeNvmlBuildError as exc:
        pytest.fail(str(exc), pytrace=False)


def _reset(libs: dict[str, Path]) -> None:
    reset_pynvml(*libs.values())


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeNvmlState:
    st = FakeNvmlState(tmp_path / "nvml.state")
    st.write()
    monkeypatch.setenv("FAKE_NVML_STATE", str(st.path))
    return st


Make = Callable[..., GpuCollector]


@pytest.fixture
def make(libs: dict[str, Path], state: FakeNvmlState) -> Iterator[Make]:
    """Build GpuCollectors over pynvml + the fake; closes them and resets pynvml after."""
    made: list[GpuCollector] = []
    _reset(libs)

    def build(clock: ManualClock | None = None, variant: str = "current",
              **options: Any) -> GpuCollector:
        cfg = GpuConfig(library_path=str(libs[variant]), **{"xid_events": False, **options})
        link = NvmlSession(pynvml, cfg.library_path).lease()
        collector = GpuCollector(link, clock or ManualClock(), cfg)
        made.append(collector)
        return collector

    yield build
    for collector in made:
        collector.close()
    _reset(libs)


# ---- helpers -----------------------------------------------------------------------------

def samples(collected: Collected) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(family.name, frozenset(sample.labels)): sample.value
            for family in collected.families for sample in family.samples}


def value(collected: Collected, name: str, **labels: object) -> float | None:
    """The one sample of ``name`` whose labels include ``labels``; None if absent."""
    want = {(key, str(val)) for key, val in labels.items()}
    found = [v for (n, lb), v in samples(collected).items() if n == name and want <= lb]
    assert len(found) <= 1, f"{name}{labels} matches {len(found)} series"
    return found[0] if found else None


def info_labels(collected: Collected, gpu: int) -> dict[str, str]:
    for (name, labels), _ in samples(collected).items():
        if name == "gpuwatchd_gpu_info" and ("gpu", str(gpu)) in labels:
            return dict(labels)
    raise AssertionError(f"no gpuwatchd_gpu_info for GPU {gpu}")


def up(collected: Collected, gpu: int) -> float | None:
    return value(collected, "gpuwatchd_gpu_up", gpu=gpu)


def gpu_reading(collected: Collected, gpu: int) -> GpuReading:
    return next(r for r in collected.readings if isinstance(r, GpuReading) and r.index == gpu)


# ---- values ------------------------------------------------------------------------------

def test_two_gpus_report_exactly_the_values_in_the_state_file(
        make: Make, state: FakeNvmlState) -> None:
    collected = make().collect()
    assert value(collected, "gpuwatchd_nvml_up") == 1
    assert value(collected, "gpuwatchd_gpus", state="visible") == 2
    assert value(collected, "gpuwatchd_gpus", state="lost") == 0
    for index, gpu in enumerate(state.gpus):
        _assert_gpu_values(collected, index, gpu)
    # passive GDDR card: no fan series, no memory temperature, no mem_max threshold (absent)
    assert value(collected, "gpuwatchd_gpu_fan_speed_ratio", gpu=0) is None
    assert value(collected, "gpuwatchd_gpu_temperature_celsius", gpu=0, sensor="memory") is None
    assert value(collected, "gpuwatchd_gpu_temperature_threshold_celsius", gpu=0,
                 threshold="mem_max") is None
    assert value(collected, "gpuwatchd_gpu_temperature_celsius", gpu=1, sensor="memory") == \
        state.gpus[1][f"field.{FIELD_MEMORY_TEMP}"]
    assert value(collected, "gpuwatchd_gpu_fan_speed_ratio", gpu=1, fan=1) == 0.55
    assert gpu_reading(collected, 1).fan_ratios == (0.40, 0.55)
    # GPU 1: sw_power_cap + sw_thermal active (0x24), the others inactive
    for reason, bit in CLOCK_EVENT_BITS.items():
        assert value(collected, "gpuwatchd_gpu_clock_event_active", gpu=1, reason=reason) == \
            (1 if bit & 0x24 else 0), reason
    for family in collected.families:
        assert family.name.startswith("gpuwatchd_")
        if family.name.startswith("gpuwatchd_gpu_"):
            assert all({"gpu", "uuid"} <= dict(s.labels).keys() for s in family.samples)
    nvml = next(r for r in collected.readings if isinstance(r, NvmlReading))
    assert (nvml.up, nvml.driver_version, nvml.error) == (True, "550.54.15", "")
    assert nvml.cuda_driver_version == "12.4"


def _assert_gpu_values(collected: Collected, index: int, gpu: dict[str, Any]) -> None:
    g = {"gpu": index, "uuid": gpu["uuid"]}
    assert info_labels(collected, index) == {
        "gpu": str(index), "uuid": gpu["uuid"], "name": gpu["name"], "serial": gpu["serial"],
        "vbios_version": gpu["vbios"], "pci_bus_id": gpu["pci.bus_id"],
        "driver_version": "550.54.15", "cuda_driver_version": "12.4"}
    expected: list[tuple[str, dict[str, object], float]] = [
        ("gpuwatchd_gpu_up", {}, 1),
        ("gpuwatchd_gpu_temperature_celsius", {"sensor": "gpu"}, gpu["temperature.0"]),
        ("gpuwatchd_gpu_temperature_margin_celsius", {}, gpu["margin"]),
        ("gpuwatchd_gpu_power_watts", {}, gpu["power_mw"] / 1000),
        ("gpuwatchd_gpu_energy_joules_total", {}, gpu["energy_mj"] / 1000),
        ("gpuwatchd_gpu_pstate", {}, gpu["pstate"]),
        ("gpuwatchd_gpu_memory_bytes", {"state": "used"}, gpu["mem.used"]),
        ("gpuwatchd_gpu_memory_bytes", {"state": "free"}, gpu["mem.free"]),
        ("gpuwatchd_gpu_utilization_ratio", {"engine": "gpu"}, gpu["util.gpu"] / 100),
        ("gpuwatchd_gpu_utilization_ratio", {"engine": "memory"}, gpu["util.memory"] / 100),
        ("gpuwatchd_gpu_utilization_ratio", {"engine": "decoder"}, gpu["util.decoder"] / 100),
        ("gpuwatchd_gpu_power_limit_watts", {"limit": "enforced"},
         gpu["limit.enforced_mw"] / 1000),
        ("gpuwatchd_gpu_power_limit_watts", {"limit": "min"}, gpu["limit.min_mw"] / 1000),
        ("gpuwatchd_gpu_power_limit_watts", {"limit": "max"}, gpu["limit.max_mw"] / 1000),
        ("gpuwatchd_gpu_remapped_rows", {"type": "correctable"}, gpu["remap.correctable"]),
        ("gpuwatchd_gpu_remap_pending", {}, gpu["remap.pending"]),
        ("gpuwatchd_gpu_pcie_link_generation", {"which": "current"}, gpu["pcie.gen"]),
        ("gpuwatchd_gpu_pcie_link_generation", {"which": "max"}, gpu["pcie.max_gen"]),
        ("gpuwatchd_gpu_pcie_link_width", {"which": "current"}, gpu["pcie.width"]),
        ("gpuwatchd_gpu_pcie_link_width", {"which": "max"}, gpu["pcie.max_width"]),
        ("gpuwatchd_gpu_pcie_replays_total", {}, gpu["pcie.replays"]),
        ("gpuwatchd_gpu_persistence_mode", {}, gpu["persistence"]),
    ]
    expected += [("gpuwatchd_gpu_clock_hertz", {"clock": name}, gpu[f"clock.{code}"] * 1e6)
                 for name, code in CLOCK.items()]
    expected += [("gpuwatchd_gpu_clock_max_hertz", {"clock": name},
                  gpu[f"max_clock.{code}"] * 1e6) for name, code in CLOCK.items()]
    expected += [("gpuwatchd_gpu_ecc_errors_total", {"type": kind},
                  gpu[f"ecc.{code}.{ECC_VOLATILE}"]) for kind, code in ECC_TYPE.items()]
    expected += [("gpuwatchd_gpu_throttle_seconds_total", {"reason": reason},
                  gpu[f"violation.{code}"] / 1e9) for reason, code in VIOLATION.items()]
    expected += [("gpuwatchd_gpu_temperature_threshold_celsius", {"threshold": name},
                  gpu[f"threshold.{code}"]) for name, code in THRESHOLD.items()
                 if f"threshold.{code}" in gpu]
    for name, labels, want in expected:
        assert value(collected, name, **g, **labels) == pytest.approx(want), (name, labels)
    reading = gpu_reading(collected, index)
    assert (reading.uuid, reading.name, reading.up) == (gpu["uuid"], gpu["name"], True)
    assert reading.temperature_celsius == gpu["temperature.0"]
    assert reading.power_watts == pytest.approx(gpu["power_mw"] / 1000)
    assert reading.slowdown_celsius == gpu[f"threshold.{THRESHOLD['slowdown']}"]


def test_values_follow_the_state_file_while_the_library_stays_loaded(
        make: Make, state: FakeNvmlState) -> None:
    collector = make()
    collector.collect()
    state.gpus[0]["temperature.0"] = 77
    state.gpus[1]["power_mw"] = 299_999
    state.write()
    collected = collector.collect()
    assert value(collected, "gpuwatchd_gpu_temperature_celsius", gpu=0, sensor="gpu") == 77
    assert value(collected, "gpuwatchd_gpu_power_watts", gpu=1) == pytest.approx(299.999)


# ---- absent, never 0 ---------------------------------------------------------------------

def test_a_not_supported_call_is_absent_and_asked_once(make: Make, state: FakeNvmlState) -> None:
    state.set_call("nvmlDeviceGetPowerUsage", rc=RC_NOT_SUPPORTED, gpu=0)
    state.set_call("nvmlDeviceGetUtilizationRates", rc=RC_NOT_SUPPORTED)
    state.write()
    collector = make()
    collector.collect()
    collected = collector.collect()
    assert value(collected, "gpuwatchd_gpu_power_watts", gpu=0) is None
    assert gpu_reading(collected, 0).power_watts is None
    assert value(collected, "gpuwatchd_gpu_power_watts", gpu=1) == pytest.approx(52.234)
    for gpu in (0, 1):
        assert value(collected, "gpuwatchd_gpu_utilization_ratio", gpu=gpu, engine="gpu") is None
        assert value(collected, "gpuwatchd_gpu_utilization_ratio", gpu=gpu,
                     engine="decoder") is not None
    # unsupported is decided once per GPU: GPU 0 asked once, GPU 1 on both ticks
    assert collector.link.calls["nvmlDeviceGetPowerUsage"] == 3
    assert value(collected, "gpuwatchd_nvml_errors_total", call="nvmlDeviceGetPowerUsage",
                 error="not_supported") == 1


def test_a_symbol_missing_from_the_library_is_absent(make: Make, state: FakeNvmlState,
                                                     libs: dict[str, Path]) -> None:
    old = ctypes.CDLL(str(libs["old"]))
    assert not any(hasattr(old, name) for name in OLD_DRIVER_MISSING)
    collected = make(variant="old").collect()
    for gpu in (0, 1):
        assert up(collected, gpu) == 1
        assert value(collected, "gpuwatchd_gpu_temperature_margin_celsius", gpu=gpu) is None
        assert value(collected, "gpuwatchd_gpu_remapped_rows", gpu=gpu,
                     type="correctable") is None
        assert value(collected, "gpuwatchd_gpu_remap_pending", gpu=gpu) is None
        assert value(collected, "gpuwatchd_gpu_temperature_celsius", gpu=gpu, sensor="gpu") == \
            state.gpus[gpu]["temperature.0"]
        assert gpu_reading(collected, gpu).margin_celsius is None
        assert info_labels(collected, gpu)["cuda_driver_version"] == ""
    # pre-R535 drivers name the clock-event calls *ThrottleReasons: same values via fallback
    for reason, bit in CLOCK_EVENT_BITS.items():
        assert value(collected, "gpuwatchd_gpu_clock_event_active", gpu=1, reason=reason) == \
            (1 if bit & 0x24 else 0), reason
    assert value(collected, "gpuwatchd_nvml_errors_total", call="nvmlDeviceGetMarginTemperature",
                 error="function_not_found") == 2  # once per GPU, then remembered


# ---- lifecycle ---------------------------------------------------------------------------

def test_gpu_lost_mid_run_then_back_after_the_reinit_backoff(
        make: Make, state: FakeNvmlState) -> None:
    clock = ManualClock()
    collector = make(clock)
    assert up(collector.collect(), 1) == 1
    state.gpus[1]["rc"] = RC_GPU_IS_LOST
    state.write()
    clock.advance(2)
    collected = collector.collect()
    assert (up(collected, 0), up(collected, 1)) == (1, 0)
    assert value(collected, "gpuwatchd_gpu_up", gpu=1, uuid=state.gpus[1]["uuid"]) == 0
    assert value(collected, "gpuwatchd_gpu_temperature_celsius", gpu=1, sensor="gpu") is None
    assert value(collected, "gpuwatchd_gpu_temperature_celsius", gpu=0, sensor="gpu") == 41
    assert value(collected, "gpuwatchd_gpus", state="lost") == 1
    assert not gpu_reading(collected, 1).up
    assert "lost" in gpu_reading(collected, 1).error.lower()
    del state.gpus[1]["rc"]
    state.gpus[0]["temperature.0"] = 60
    state.write()
    recovered_after = None
    for step in range(1, 21):  # 0.5 s steps of the manual clock; the first backoff is 1 s
        clock.advance(0.5)
        collected = collector.collect()
        assert up(collected, 0) == 1, "the healthy GPU must be read on every tick"
        assert value(collected, "gpuwatchd_gpu_temperature_celsius", gpu=0, sensor="gpu") == 60
        if up(collected, 1) == 1:
            recovered_after = step * 0.5
            break
    assert recovered_after == 1.0
    assert value(collected, "gpuwatchd_gpu_temperature_celsius", gpu=1, sensor="gpu") == 51
    assert value(collected, "gpuwatchd_gpus", state="lost") == 0
    assert collector.link.calls["nvmlInit"] == 2


@pytest.mark.parametrize("call", ["nvmlDeviceGetPowerUsage", "nvmlDeviceGetMemoryInfo"])
def test_gpu_lost_halfway_through_a_read_exposes_no_half_read_series(
        make: Make, state: FakeNvmlState, call: str) -> None:
    state.set_call(call, rc=RC_GPU_IS_LOST, gpu=1)  # fast tier, or slow tier
    state.write()
    collected = make().collect()
    assert (up(collected, 0), up(collected, 1)) == (1, 0)
    assert value(collected, "gpuwatchd_gpu_temperature_celsius", gpu=1, sensor="gpu") is None
    assert value(collected, "gpuwatchd_gpu_temperature_celsius", gpu=0, sensor="gpu") == 41
    assert gpu_reading(collected, 1).temperature_celsius is None


def test_gpu_still_lost_at_reinit_stays_down_and_backs_off(
        make: Make, state: FakeNvmlState) -> None:
    clock = ManualClock()
    collector = make(clock)
    collector.collect()
    state.gpus[1]["rc"] = RC_GPU_IS_LOST
    state.write()
    inits = []
    for _ in range(16):  # 8 s in 0.5 s steps: re-inits at +1 s, +3 s (after 2 s), +7 s (4 s)
        clock.advance(0.5)
        collected = collector.collect()
        assert (up(collected, 0), up(collected, 1)) == (1, 0)
        inits.append(collector.link.calls["nvmlInit"])
    assert inits[-1] == 4
    assert value(collected, "gpuwatchd_gpus", state="visible") == 1


def test_gpu_lost_during_discovery_does_not_take_the_other_gpu_down(
        make: Make, state: FakeNvmlState) -> None:
    state.gpus[1]["rc"] = RC_GPU_IS_LOST  # its handle and UUID open, then every call fails
    state.set_call("nvmlDeviceGetHandleByIndex_v2", rc=0, gpu=1)
    state.set_call("nvmlDeviceGetUUID", rc=0, gpu=1)
    state.write()
    clock = ManualClock()
    collector = make(clock)
    collected = collector.collect()
    assert value(collected, "gpuwatchd_nvml_up") == 1
    assert up(collected, 0) == 1
    assert value(collected, "gpuwatchd_gpu_temperature_celsius", gpu=0, sensor="gpu") == 41
    assert up(collected, 1) == 0
    assert value(collected, "gpuwatchd_gpus", state="lost") == 1
    assert "gpu_is_lost" in gpu_reading(collected, 1).error
    state.gpus[1].pop("rc")
    state.calls.clear()
    state.write()
    clock.advance(1.0)  # the first re-init backoff
    collected = collector.collect()
    assert (up(collected, 0), up(collected, 1)) == (1, 1)
    assert info_labels(collected, 1)["name"] == state.gpus[1]["name"]


def test_driver_not_loaded_at_init_then_recovery(make: Make, state: FakeNvmlState) -> None:
    state.globals["init_rc"] = RC_DRIVER_NOT_LOADED
    state.write()
    clock = ManualClock()
    collector = make(clock, enabled=True)  # a Lost init is retried, not NotInstalled
    collected = collector.collect()
    assert value(collected, "gpuwatchd_nvml_up") == 0
    assert value(collected, "gpuwatchd_gpus", state="visible") is None
    assert not [f for f in collected.families if f.name.startswith("gpuwatchd_gpu_")]
    nvml = next(r for r in collected.readings if isinstance(r, NvmlReading))
    assert not nvml.up
    assert "driver_not_loaded" in nvml.error
    clock.advance(0.5)
    assert value(collector.collect(), "gpuwatchd_nvml_up") == 0
    assert collector.link.calls["nvmlInit"] == 1, "retried before the backoff passed"
    del state.globals["init_rc"]
    state.write()
    clock.advance(0.5)
    collected = collector.collect()
    assert value(collected, "gpuwatchd_nvml_up") == 1
    assert (up(collected, 0), up(collected, 1)) == (1, 1)
    assert value(collected, "gpuwatchd_gpu_power_watts", gpu=0) == pytest.approx(51.234)


# ---- deadlines ---------------------------------------------------------------------------

def test_a_hung_call_misses_its_deadline_and_does_not_block_the_next_tick(
        make: Make, state: FakeNvmlState) -> None:
    clock = ManualClock()
    runner = CollectorRunner(Scheduled(make(clock), 1.0, 0.3), clock)
    try:
        assert runner.start_if_due()
        good = runner.finish()
        assert good.ok, good.error
        state.set_call("nvmlDeviceGetPowerUsage", sleep_seconds=5, gpu=1)
        state.write()
        clock.advance(1.0)
        started = time.perf_counter()
        assert runner.start_if_due()
        result = runner.finish()
        took = time.perf_counter() - started
        assert not result.ok
        assert "deadline of 0.3 s exceeded" in result.error
        assert 0.25 <= took < 0.8, took
        assert result.collected is good.collected  # last good data kept, ageing towards stale
        clock.advance(1.0)
        started = time.perf_counter()
        assert not runner.start_if_due(), "queued behind a hung call"
        assert time.perf_counter() - started < 0.1
        assert "hung call" in runner.result.error
        state.clear_call("nvmlDeviceGetPowerUsage", gpu=1)  # the hang ends within ~10 ms
        state.write()
        _wait_until_idle(runner)
        clock.advance(1.0)
        assert runner.start_if_due()
        assert runner.finish().ok
    finally:
        state.calls.clear()
        state.write()
        _wait_until_idle(runner)
        runner.close()


def _wait_until_idle(runner: CollectorRunner, limit: float = 2.0) -> None:
    deadline = time.monotonic() + limit
    while runner._worker.busy:
        assert time.monotonic() < deadline, "worker still busy"
        time.sleep(0.01)


# ---- XID events --------------------------------------------------------------------------

def test_an_xid_event_increments_its_counter(make: Make, state: FakeNvmlState) -> None:
    clock = ManualClock()
    collector = make(clock, xid_events=True)
    collected = collector.collect()
    assert value(collected, "gpuwatchd_gpu_xid_errors_total", gpu=1, xid=79) is None
    state.push_event(1, 79)
    state.write()
    collected = _collect_until(collector, "gpuwatchd_gpu_xid_errors_total", gpu=1, xid=79)
    uuid = state.gpus[1]["uuid"]
    assert value(collected, "gpuwatchd_gpu_xid_errors_total", gpu=1, uuid=uuid, xid=79) == 1
    assert value(collected, "gpuwatchd_gpu_xid_last_timestamp_seconds", gpu=1, xid=79) == \
        clock.time()
    state.push_event(1, 79)
    state.push_event(0, 48)
    state.write()
    collected = _collect_until(collector, "gpuwatchd_gpu_xid_errors_total", gpu=0, xid=48)
    collected = _collect_until(collector, "gpuwatchd_gpu_xid_errors_total", want=2, gpu=1, xid=79)
    assert value(collected, "gpuwatchd_gpu_xid_errors_total", gpu=0, xid=48) == 1
    # a wait that times out (here after event_wait_cap_ms = 50) is how the event loop idles:
    # not an NVML error, or gpuwatchd_nvml_errors_total would climb on every healthy node
    waits = collector.link.calls["nvmlEventSetWait_v2"]
    time.sleep(0.2)
    collected = collector.collect()
    assert collector.link.calls["nvmlEventSetWait_v2"] >= waits + 2, "no wait timed out"
    assert value(collected, "gpuwatchd_nvml_errors_total", call="nvmlEventSetWait_v2") is None
    started = time.perf_counter()
    collector.close()
    assert time.perf_counter() - started < 1.0


def _collect_until(collector: GpuCollector, name: str, want: float = 1,
                   **labels: object) -> Collected:
    deadline = time.monotonic() + 3.0
    while True:
        collected = collector.collect()
        if value(collected, name, **labels) == want:
            return collected
        assert time.monotonic() < deadline, f"{name}{labels} never reached {want}"
        time.sleep(0.01)


# ---- default library lookup, as on a real node -------------------------------------------

def test_default_lookup_through_ld_library_path_in_a_new_process(
        libs: dict[str, Path], state: FakeNvmlState) -> None:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
           "LD_LIBRARY_PATH": str(libs["current"].parent), **state.env()}
    records, stderr = collect_in_subprocess({"enabled": True}, env)  # no library_path
    assert "Traceback" not in stderr
    [record] = records
    assert record["ok"], record["error"]
    got = {(name, tuple(sorted(labels.items()))): v for name, labels, v in record["samples"]}
    assert got[("gpuwatchd_nvml_up", ())] == 1
    for index, gpu in enumerate(state.gpus):
        key = (("gpu", str(index)), ("sensor", "gpu"), ("uuid", gpu["uuid"]))
        assert got[("gpuwatchd_gpu_temperature_celsius", key)] == gpu["temperature.0"]
    assert "NVML initialised: driver 550.54.15, 2 GPU(s)" in stderr


# ---- MIG (issue 15) ----------------------------------------------------------------------

def _series(collected: Collected, name: str) -> list[dict[str, str]]:
    return [dict(lb) for (n, lb), _ in samples(collected).items() if n == name]


def test_mig_devices_are_enumerated_with_their_memory_and_no_parent_duplicates(
        make: Make, state: FakeNvmlState) -> None:
    uuids = add_mig(state.gpus[1])  # unprivileged: no placement
    state.gpus[1].pop("util.gpu")  # NVML: no whole-GPU utilisation while MIG is on
    state.write()
    collected = make().collect()
    reading = gpu_reading(collected, 1)
    assert [(m.gpu_instance, m.compute_instance, m.profile) for m in reading.mig_instances] == [
        (1, 0, "3g.40gb"), (5, 0, "2g.20gb"), (13, 0, "1g.10gb"), (14, 0, "1g.10gb")]
    assert [m.uuid for m in reading.mig_instances] == uuids
    assert all(m.placement_start is None for m in reading.mig_instances)
    assert value(collected, "gpuwatchd_gpu_mig_mode", gpu=1, which="current") == 1
    assert value(collected, "gpuwatchd_gpu_mig_mode", gpu=0, which="current") is None  # P40
    assert value(collected, "gpuwatchd_gpu_mig_memory_bytes", gpu=1, gpu_instance=5,
                 state="used") == 150 * 2**20
    assert value(collected, "gpuwatchd_gpu_mig_memory_bytes", gpu=1, gpu_instance=13,
                 state="free") == 9_728 * 2**20 - 230 * 2**20
    infos = _series(collected, "gpuwatchd_gpu_mig_info")
    assert {i["mig_uuid"] for i in infos} == set(uuids)
    assert all("placement_start" not in i for i in infos)
    # parent-only readings: one series per GPU, none with an instance label
    for name in ("gpuwatchd_gpu_power_watts", "gpuwatchd_gpu_temperature_margin_celsius"):
        assert [lb["gpu"] for lb in _series(collected, name)] == ["0", "1"]
    assert not [lb for lb in _series(collected, "gpuwatchd_gpu_clock_hertz")
                if "gpu_instance" in lb]
    assert value(collected, "gpuwatchd_gpu_utilization_ratio", gpu=1, engine="gpu") is None
    # empty slot 1 (NOT_FOUND) is expected, not an error; NO_PERMISSION asked once
    errors = {(e.call, e.error): e.count for r in collected.readings
              if isinstance(r, NvmlReading) for e in r.errors}
    assert ("nvmlDeviceGetMigDeviceHandleByIndex", "not_found") not in errors
    assert errors[("nvmlDeviceGetGpuInstanceById", "no_permission")] == 1


def test_mig_placement_where_privileged_and_pending_mode(make: Make,
                                                         state: FakeNvmlState) -> None:
    add_mig(state.gpus[0], privileged=True, pending=0, empty_slots=())
    state.write()
    collected = make().collect()
    reading = gpu_reading(collected, 0)
    assert [(m.placement_start, m.placement_size) for m in reading.mig_instances] == [
        (0, 4), (4, 2), (6, 1), (7, 1)]
    assert value(collected, "gpuwatchd_gpu_mig_mode", gpu=0, which="pending") == 0
    assert value(collected, "gpuwatchd_gpu_mig_info", gpu=0, gpu_instance=1,
                 placement_start=0, placement_size=4, profile="3g.40gb") == 1


def test_mig_repartitioned_at_runtime_is_seen_at_the_next_slow_read(
        make: Make, state: FakeNvmlState) -> None:
    add_mig(state.gpus[1])
    state.write()
    clock = ManualClock()
    collector = make(clock)
    assert len(gpu_reading(collector.collect(), 1).mig_instances) == 4
    for key in [k for k in state.gpus[1] if k.startswith("mig.3.")]:
        del state.gpus[1][key]  # mig-manager destroyed the 1g.10gb in slot 3
    state.write()
    clock.advance(GpuConfig().slow_interval_seconds)
    assert [m.gpu_instance for m in gpu_reading(collector.collect(), 1).mig_instances] == [
        1, 5, 14]
