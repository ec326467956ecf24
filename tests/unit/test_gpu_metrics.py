"""The GPU families are a pure function of the typed readings (no NVML involved)."""

from __future__ import annotations

from gpuwatchd.collectors.gpu_metrics import CATALOGUE, render
from gpuwatchd.model import (
    Family,
    GpuClocks,
    GpuFast,
    GpuIdentity,
    GpuReading,
    GpuSlow,
    GpuStatic,
    NvmlErrorCount,
    NvmlReading,
    XidCount,
)

NVML = NvmlReading(True, "550.54.15", cuda_driver_version="12.4",
                   errors=(NvmlErrorCount("nvmlDeviceGetFanSpeed_v2", "not_supported", 1),),
                   xids=(XidCount(0, "GPU-0", 79, 2, 1700000000.0),))
STATIC = GpuStatic(shutdown_celsius=95.0, slowdown_celsius=92.0,
                   max_clocks=GpuClocks(sm_hertz=1.5e9), pcie_max_generation=3, pcie_max_width=16,
                   fan_count=1, supported_clock_events=0x24)
UP = GpuReading(0, "GPU-0", "Tesla P40", True,
                identity=GpuIdentity("0324", "86.02", "0000:04:00.0"), static=STATIC,
                fast=GpuFast(temperature_celsius=61.0, power_watts=120.5, clock_events=0x20,
                             fan_speed_ratios=(None,)),
                slow=GpuSlow(power_limit_enforced_watts=250.0, pcie_generation=3))
DOWN = GpuReading(1, "GPU-1", "Tesla P40", False, error="gpu_is_lost", static=STATIC)


def samples(families: tuple[Family, ...], name: str) -> list[tuple[dict[str, str], float]]:
    return [(dict(s.labels), s.value) for f in families if f.name == name for s in f.samples]


def test_an_up_gpu_renders_its_values_and_nothing_for_the_absent_ones() -> None:
    out = render(NVML, (UP,), known=True)
    assert samples(out, "gpuwatchd_gpu_temperature_celsius") == [
        ({"gpu": "0", "uuid": "GPU-0", "sensor": "gpu"}, 61.0)]  # no HBM sensor: absent
    assert samples(out, "gpuwatchd_gpu_fan_speed_ratio") == []  # its one fan did not answer
    assert [lb["reason"] for lb, _ in samples(out, "gpuwatchd_gpu_clock_event_active")] == [
        "sw_power_cap", "sw_thermal"]  # only the supported reasons
    assert samples(out, "gpuwatchd_gpu_pcie_link_generation") == [
        ({"gpu": "0", "uuid": "GPU-0", "which": "current"}, 3.0),
        ({"gpu": "0", "uuid": "GPU-0", "which": "max"}, 3.0)]
    (info, _), = samples(out, "gpuwatchd_gpu_info")
    assert info == {"gpu": "0", "uuid": "GPU-0", "name": "Tesla P40", "serial": "0324",
                    "vbios_version": "86.02", "pci_bus_id": "0000:04:00.0",
                    "driver_version": "550.54.15", "cuda_driver_version": "12.4"}
    assert samples(out, "gpuwatchd_nvml_errors_total") == [
        ({"call": "nvmlDeviceGetFanSpeed_v2", "error": "not_supported"}, 1.0)]
    assert samples(out, "gpuwatchd_gpu_xid_errors_total") == [
        ({"gpu": "0", "uuid": "GPU-0", "xid": "79"}, 2.0)]


def test_a_down_gpu_keeps_its_identity_series_and_loses_its_readings() -> None:
    out = render(NVML, (UP, DOWN), known=True)
    assert samples(out, "gpuwatchd_gpu_up") == [({"gpu": "0", "uuid": "GPU-0"}, 1.0),
                                                ({"gpu": "1", "uuid": "GPU-1"}, 0.0)]
    assert [lb["gpu"] for lb, _ in samples(out, "gpuwatchd_gpu_power_watts")] == ["0"]
    assert ({"gpu": "1", "uuid": "GPU-1", "threshold": "slowdown"}, 92.0) in samples(
        out, "gpuwatchd_gpu_temperature_threshold_celsius")
    assert samples(out, "gpuwatchd_gpus") == [({"state": "visible"}, 1.0),
                                              ({"state": "lost"}, 1.0)]


def test_families_come_in_catalogue_order_and_a_node_without_gpus_says_only_nvml_up() -> None:
    out = render(NVML, (UP, DOWN), known=True)
    order = list(CATALOGUE)
    assert [f.name for f in out] == sorted((f.name for f in out), key=order.index)
    bare = render(NvmlReading(False), (), known=False)
    assert [(f.name, f.samples[0].value) for f in bare] == [("gpuwatchd_nvml_up", 0.0)]


def test_the_reading_is_the_record_status_and_control_read() -> None:
    assert (UP.temperature_celsius, UP.power_watts, UP.slowdown_celsius,
            UP.power_limit_watts, UP.fan_ratios) == (61.0, 120.5, 92.0, 250.0, ())
    assert (DOWN.temperature_celsius, DOWN.slowdown_celsius) == (None, 92.0)
