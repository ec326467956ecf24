"""The simulated NVML (gpuwatchd.sim.nvml), the simulated node and the demo config."""

from __future__ import annotations

import ctypes
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import pynvml
import pytest

from gpuwatchd import config
from gpuwatchd.clock import ManualClock
from gpuwatchd.errors import Lost, Unsupported
from gpuwatchd.links.nvml import NvmlSession
from gpuwatchd.sim.node import DEMO_CONFIG, SimNode
from gpuwatchd.sim.nvml import SimNvml
from gpuwatchd.sim.profiles import Constant


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def node(clock: ManualClock) -> SimNode:
    return SimNode(clock=clock, profile=[Constant(50.0), Constant(250.0)])


@pytest.fixture
def nvml(node: SimNode) -> Iterator[SimNvml]:
    node.nvml.nvmlInit()
    yield node.nvml
    node.nvml.unhang()


def handle(nvml: SimNvml, index: int) -> Any:
    return nvml.nvmlDeviceGetHandleByIndex(index)


def test_calls_before_init_are_uninitialized(node: SimNode) -> None:
    with pytest.raises(pynvml.NVMLError_Uninitialized):
        node.nvml.nvmlDeviceGetCount()
    node.nvml.nvmlInit()
    assert node.nvml.nvmlDeviceGetCount() == 2
    node.nvml.nvmlShutdown()
    with pytest.raises(pynvml.NVMLError_Uninitialized):
        node.nvml.nvmlDeviceGetCount()


def test_identity_and_static_values_have_pynvml_shapes(nvml: SimNvml) -> None:
    h0, h1 = handle(nvml, 0), handle(nvml, 1)
    assert isinstance(h0, pynvml.c_nvmlDevice_t)
    assert nvml.nvmlSystemGetDriverVersion() == "535.183.01"
    assert nvml.nvmlSystemGetCudaDriverVersion_v2() == 12020
    uuids = {nvml.nvmlDeviceGetUUID(h) for h in (h0, h1)}
    assert len(uuids) == 2
    assert all(re.fullmatch(r"GPU-[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", u) for u in uuids)
    assert nvml.nvmlDeviceGetName(h0) == "Tesla P40"
    assert nvml.nvmlDeviceGetPciInfo(h1).busId == "00000000:82:00.0"  # decoded by pynvml
    threshold = nvml.nvmlDeviceGetTemperatureThreshold
    assert threshold(h0, pynvml.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN) == 92
    assert threshold(h0, pynvml.NVML_TEMPERATURE_THRESHOLD_SHUTDOWN) == 95
    with pytest.raises(pynvml.NVMLError_NotSupported):
        threshold(h0, pynvml.NVML_TEMPERATURE_THRESHOLD_GPU_MAX)
    assert nvml.nvmlDeviceGetMaxClockInfo(h0, pynvml.NVML_CLOCK_SM) == 1531
    assert nvml.nvmlDeviceGetPowerManagementLimitConstraints(h0) == [125_000, 250_000]
    assert nvml.nvmlDeviceGetPowerManagementDefaultLimit(h0) == 250_000
    assert (nvml.nvmlDeviceGetCurrPcieLinkGeneration(h0), nvml.nvmlDeviceGetCurrPcieLinkWidth(h0),
            nvml.nvmlDeviceGetMaxPcieLinkGeneration(h0)) == (3, 16, 3)
    assert nvml.nvmlDeviceGetPersistenceMode(h0) == pynvml.NVML_FEATURE_ENABLED
    assert nvml.nvmlDeviceGetNumFans(h0) == 0


def test_readings_follow_the_plant(nvml: SimNvml, node: SimNode) -> None:
    h0, h1 = handle(nvml, 0), handle(nvml, 1)
    view = node.gpu_view(1)
    temp = nvml.nvmlDeviceGetTemperature(h1, pynvml.NVML_TEMPERATURE_GPU)
    assert isinstance(temp, int) and temp == round(view.temperature_celsius)
    assert nvml.nvmlDeviceGetMarginTemperature(h1) == 92 - temp
    assert nvml.nvmlDeviceGetPowerUsage(h1) == 250_000  # milliwatts
    assert nvml.nvmlDeviceGetPowerUsage(h0) == 50_000
    util = nvml.nvmlDeviceGetUtilizationRates(h1)
    assert isinstance(util, pynvml.c_nvmlUtilization_t) and util.gpu == 100
    assert nvml.nvmlDeviceGetUtilizationRates(h0).gpu == 0
    mem = nvml.nvmlDeviceGetMemoryInfo(h1)
    assert mem.used + mem.free == mem.total == 22_919 * 2**20
    assert nvml.nvmlDeviceGetMemoryInfo(h1).used > nvml.nvmlDeviceGetMemoryInfo(h0).used
    assert nvml.nvmlDeviceGetClockInfo(h1, pynvml.NVML_CLOCK_GRAPHICS) == 1531
    assert nvml.nvmlDeviceGetClockInfo(h0, pynvml.NVML_CLOCK_GRAPHICS) < 1531  # idle
    assert nvml.nvmlDeviceGetCurrentClocksEventReasons(h0) & pynvml.nvmlClocksEventReasonGpuIdle
    assert nvml.nvmlDeviceGetCurrentClocksEventReasons(h1) == 0
    assert nvml.nvmlDeviceGetPerformanceState(h1) == pynvml.NVML_PSTATE_0


def test_a_passive_p40_lacks_fans_memory_temperature_energy_and_remapping(nvml: SimNvml) -> None:
    h = handle(nvml, 0)
    values = nvml.nvmlDeviceGetFieldValues(h, [pynvml.NVML_FI_DEV_MEMORY_TEMP])
    assert values[0].fieldId == pynvml.NVML_FI_DEV_MEMORY_TEMP
    assert values[0].nvmlReturn == pynvml.NVML_ERROR_NOT_SUPPORTED
    for call, args in (("nvmlDeviceGetTotalEnergyConsumption", ()),
                       ("nvmlDeviceGetFanSpeed_v2", (0,)), ("nvmlDeviceGetRemappedRows", ()),
                       ("nvmlDeviceGetTemperatureV", (0,))):
        with pytest.raises(pynvml.NVMLError_NotSupported):
            getattr(nvml, call)(h, *args)
    assert nvml.NVML_TEMPERATURE_GPU == pynvml.NVML_TEMPERATURE_GPU  # constants are pynvml's
    assert nvml.NVMLError is pynvml.NVMLError


def test_thermal_slowdown_and_power_cap_show_in_clocks_and_reasons(nvml: SimNvml, node: SimNode,
                                                                   clock: ManualClock) -> None:
    h = handle(nvml, 1)
    node.set_power_limit(1, 125.0)
    clock.advance(1.0)
    reasons = nvml.nvmlDeviceGetCurrentClocksEventReasons(h)
    assert reasons & pynvml.nvmlClocksEventReasonSwPowerCap
    assert nvml.nvmlDeviceGetEnforcedPowerLimit(h) == 125_000
    assert nvml.nvmlDeviceGetPowerUsage(h) == 125_000
    capped_clock = nvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_SM)
    assert capped_clock < 1531
    node.set_power_limit(1, 250.0)
    node.set_duty(0.0)
    for _ in range(1800):
        clock.advance(1.0)
        if node.gpu_view(1).hw_slowdown:
            break
    reasons = nvml.nvmlDeviceGetCurrentClocksEventReasons(h)
    assert reasons & pynvml.nvmlClocksEventReasonHwThermalSlowdown
    assert reasons & pynvml.nvmlClocksEventReasonSwThermalSlowdown
    assert nvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_SM) <= 1531 // 2 + 1
    clock.advance(60.0)
    thermal = nvml.nvmlDeviceGetViolationStatus(h, pynvml.NVML_PERF_POLICY_THERMAL)
    assert thermal.violationTime > 1e9  # nanoseconds


def test_errors_go_through_the_real_link_mapping(nvml: SimNvml) -> None:
    link = NvmlSession(nvml).lease()
    link.initialized = True
    h = link.call("nvmlDeviceGetHandleByIndex", 0)
    with pytest.raises(Unsupported):
        link.call("nvmlDeviceGetTotalEnergyConsumption", h)
    nvml.lose_gpu(0)
    with pytest.raises(Lost, match="gpu_is_lost"):
        link.call("nvmlDeviceGetPowerUsage", h)
    assert link.errors[("nvmlDeviceGetPowerUsage", "gpu_is_lost")] == 1


def test_lost_gpu(nvml: SimNvml) -> None:
    h = handle(nvml, 0)
    nvml.lose_gpu(0)
    with pytest.raises(pynvml.NVMLError_GpuIsLost):
        nvml.nvmlDeviceGetPowerUsage(h)
    with pytest.raises(pynvml.NVMLError_GpuIsLost):
        handle(nvml, 0)
    assert nvml.nvmlDeviceGetPowerUsage(handle(nvml, 1)) == 250_000  # the other GPU answers
    nvml.restore_gpu(0)
    assert nvml.nvmlDeviceGetPowerUsage(handle(nvml, 0)) == 50_000


def test_driver_unloaded(nvml: SimNvml) -> None:
    nvml.unload_driver()
    with pytest.raises(pynvml.NVMLError_DriverNotLoaded):
        nvml.nvmlInit()
    with pytest.raises(pynvml.NVMLError_Uninitialized):
        nvml.nvmlDeviceGetCount()
    nvml.load_driver()
    nvml.nvmlInit()
    assert nvml.nvmlDeviceGetCount() == 2


def test_invalid_handles_and_arguments(nvml: SimNvml) -> None:
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        handle(nvml, 2)
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        nvml.nvmlDeviceGetPowerUsage(object())
    bogus = ctypes.cast(ctypes.c_void_p(0x1234), pynvml.c_nvmlDevice_t)
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        nvml.nvmlDeviceGetPowerUsage(bogus)
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        nvml.nvmlDeviceGetTemperature(handle(nvml, 0), 7)


def test_set_unsupported_and_override_temperature(nvml: SimNvml) -> None:
    h0, h1 = handle(nvml, 0), handle(nvml, 1)
    nvml.set_unsupported(0, "nvmlDeviceGetPowerUsage")
    with pytest.raises(pynvml.NVMLError_NotSupported):
        nvml.nvmlDeviceGetPowerUsage(h0)
    assert nvml.nvmlDeviceGetPowerUsage(h1) == 250_000
    nvml.set_unsupported(None, "nvmlSystemGetCudaDriverVersion_v2")
    with pytest.raises(pynvml.NVMLError_NotSupported):
        nvml.nvmlSystemGetCudaDriverVersion_v2()
    nvml.override_temperature(0, 82505)
    assert nvml.nvmlDeviceGetTemperature(h0, pynvml.NVML_TEMPERATURE_GPU) == 82505
    nvml.override_temperature(0, None)
    assert nvml.nvmlDeviceGetTemperature(h0, pynvml.NVML_TEMPERATURE_GPU) < 100


def test_hang_sleeps_and_unhang_wakes_it(nvml: SimNvml) -> None:
    h = handle(nvml, 0)
    nvml.hang("nvmlDeviceGetPowerUsage", 0.2)
    started = time.perf_counter()
    assert nvml.nvmlDeviceGetPowerUsage(h) == 50_000
    assert time.perf_counter() - started >= 0.2
    nvml.hang("nvmlDeviceGetPowerUsage", 30.0)
    done = threading.Event()
    worker = threading.Thread(target=lambda: (nvml.nvmlDeviceGetPowerUsage(h), done.set()))
    started = time.perf_counter()
    worker.start()
    assert not done.wait(0.1)
    nvml.unhang("nvmlDeviceGetPowerUsage")
    assert done.wait(2.0)
    assert time.perf_counter() - started < 2.0
    worker.join(2.0)


def test_xid_events(nvml: SimNvml) -> None:
    h = handle(nvml, 1)
    event_set = nvml.nvmlEventSetCreate()
    assert nvml.inject_xid(1, 79) == 0  # nobody registered: dropped, as NVML does
    nvml.nvmlDeviceRegisterEvents(h, pynvml.nvmlEventTypeXidCriticalError, event_set)
    started = time.perf_counter()
    with pytest.raises(pynvml.NVMLError_Timeout):
        nvml.nvmlEventSetWait_v2(event_set, 100)
    assert time.perf_counter() - started >= 0.09
    threading.Timer(0.05, nvml.inject_xid, (1, 43)).start()
    started = time.perf_counter()
    data = nvml.nvmlEventSetWait_v2(event_set, 5000)
    assert time.perf_counter() - started < 2.0  # woken by the event, not the timeout
    assert (data.eventType, data.eventData) == (pynvml.nvmlEventTypeXidCriticalError, 43)
    assert ctypes.cast(data.device, ctypes.c_void_p).value == ctypes.cast(h, ctypes.c_void_p).value
    assert nvml.inject_xid(0, 13) == 0  # GPU 0 is not in the set
    nvml.nvmlEventSetFree(event_set)
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        nvml.nvmlEventSetWait_v2(event_set, 1000)


def test_unloading_the_driver_wakes_an_event_wait(nvml: SimNvml) -> None:
    event_set = nvml.nvmlEventSetCreate()
    threading.Timer(0.05, nvml.unload_driver).start()
    started = time.perf_counter()
    with pytest.raises(pynvml.NVMLError_Uninitialized):
        nvml.nvmlEventSetWait_v2(event_set, 5000)
    assert time.perf_counter() - started < 2.0


def test_calls_are_counted_per_function(nvml: SimNvml) -> None:
    h = handle(nvml, 0)
    nvml.reset_calls()
    for _ in range(3):
        nvml.nvmlDeviceGetPowerUsage(h)
    with pytest.raises(pynvml.NVMLError_NotSupported):
        nvml.nvmlDeviceGetTotalEnergyConsumption(h)
    assert nvml.calls() == {"nvmlDeviceGetPowerUsage": 3,
                            "nvmlDeviceGetTotalEnergyConsumption": 1}


def test_concurrent_callers_while_the_clock_moves(nvml: SimNvml, clock: ManualClock) -> None:
    handles = [handle(nvml, 0), handle(nvml, 1)]
    nvml.reset_calls()
    errors: list[BaseException] = []

    def reader(h: Any) -> None:
        try:
            for _ in range(300):
                nvml.nvmlDeviceGetTemperature(h, pynvml.NVML_TEMPERATURE_GPU)
                nvml.nvmlDeviceGetPowerUsage(h)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(handles[i % 2],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for _ in range(300):
        clock.advance(0.5)
    for thread in threads:
        thread.join(10.0)
    assert errors == []
    assert nvml.calls()["nvmlDeviceGetPowerUsage"] == 1200


def test_node_advances_lazily_with_its_clock_and_speed(clock: ManualClock) -> None:
    node = SimNode(clock=clock, profile="step", speed=10.0)
    assert node.sim_seconds() == 0.0
    first = node.gpu_view(0)
    assert node.gpu_view(0) == first  # no clock movement, no change
    clock.advance(6.0)  # 60 simulated seconds: the step to 250 W
    assert node.sim_seconds() == pytest.approx(60.0)
    clock.advance(1.0)
    assert node.gpu_view(0).power_watts == 250.0
    assert node.gpu_view(0).temperature_celsius > first.temperature_celsius


def test_node_defaults_to_the_dell_third_party_card_floor(node: SimNode,
                                                          clock: ManualClock) -> None:
    assert node.fan_rpms() == (14_400.0,) * 8  # 80 % duty
    assert node.duty(0) == 0.8
    node.set_duty(0.3)
    clock.advance(30.0)
    assert node.fan_rpm(0) == pytest.approx(6_400.0, abs=1.0)
    node.set_inlet(30.0)
    assert node.inlet_celsius() == 30.0
    assert 0.0 < node.oracle_duty(250.0, 75.0) < 0.8


def test_node_hardware_is_the_demo_roots(node: SimNode, clock: ManualClock) -> None:
    hw = node.hardware()
    assert hw.demo and hw.clock is clock and hw.nvml() is node.nvml
    assert set(hw.ipmi_peers) == {"idrac"} and hw.licence is not None


def test_demo_config_is_valid() -> None:
    cfg = config.load(DEMO_CONFIG)
    assert cfg.interval_seconds == 1.0
    assert cfg.gpus.enabled is True
    assert cfg.exporter.listen == ("127.0.0.1:10045",)
