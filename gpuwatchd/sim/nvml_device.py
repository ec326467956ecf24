"""Per-device answers of the simulated NVML (:mod:`gpuwatchd.sim.nvml`): a Tesla P40.

:data:`DEVICE_CALLS` maps a pynvml device function to ``f(sim, view, *args)``, where ``view``
is the GPU's :class:`gpuwatchd.sim.plant.GpuView` at the time of the call. A function missing
here is one a P40 does not have (energy counter, fan speed, row remapping, ...): the simulated
library answers it with NOT_SUPPORTED.

Thresholds, power limits and idle power come from the P40 ``nvidia-smi -q`` capture in
reference/fan-control.md (e). The board values below (1,531 MHz boost and GDDR5 at 3,615 MHz
as nvidia-smi reports it, 1,379 MHz video, 544 MHz idle graphics clock, 22,919 MiB visible of
24 GiB with ECC on, PCIe gen3 x16) are typical P40 figures, not checked against a capture: a
simulator needs plausible shapes, not exact values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import pynvml

from gpuwatchd.sim.plant import GpuSpec, GpuView

VBIOS_VERSION = "86.02.23.00.01"
PCI_DEVICE_ID, PCI_SUBSYSTEM_ID = 0x1B3810DE, 0x11D910DE  # 10de:1b38 Tesla P40
MAX_CLOCKS_MHZ = {0: 1531, 1: 1531, 2: 3615, 3: 1379}  # NVML_CLOCK_GRAPHICS/SM/MEM/VIDEO
IDLE_CLOCK_RATIO = 544 / 1531  # graphics clock of an idle P40 in P0
HW_SLOWDOWN_CLOCK_RATIO = 0.5  # HW slowdown halves the clocks
MEMORY_TOTAL_BYTES = 22_919 * 2**20  # 24 GiB with ECC on


class SimLibrary(Protocol):
    """What the answers need of the simulated library (gpuwatchd.sim.nvml.SimNvml, which
    imports this module: the protocol keeps the import one way)."""

    spec: GpuSpec
    wall: Callable[[], float]
    memory_total_bytes: int

    def uuid(self, index: int) -> str:
        """The GPU's UUID."""

    def bus_id(self, index: int) -> str:
        """The GPU's PCI bus id."""

    def temperature(self, view: GpuView) -> int:
        """The GPU's core temperature (with any override)."""


def _error(code: int) -> pynvml.NVMLError:
    return pynvml.NVMLError(code)


def _pick(table: dict[int, Any], key: int, missing: int = pynvml.NVML_ERROR_NOT_SUPPORTED) -> Any:
    if key not in table:
        raise _error(missing)
    return table[key]


def utilization(s: SimLibrary, g: GpuView) -> float:
    """0-1, as the utilisation call reports it (the MIG devices' memory follows it)."""
    return _utilization(s, g)


def _utilization(s: SimLibrary, g: GpuView) -> float:
    """0-1: busy from idle power up, fully busy from 80 % of the default limit."""
    busy_watts = 0.8 * s.spec.power_limit_default_watts - s.spec.idle_watts
    return min(1.0, max(0.0, (g.demand_watts - s.spec.idle_watts) / busy_watts))


def _clock(s: SimLibrary, g: GpuView, kind: int) -> int:
    top = _pick(MAX_CLOCKS_MHZ, kind, pynvml.NVML_ERROR_INVALID_ARGUMENT)
    if kind == pynvml.NVML_CLOCK_MEM:
        return int(top)
    ratio = 1.0 if _utilization(s, g) > 0 else IDLE_CLOCK_RATIO
    if g.power_capped and g.demand_watts > 0:
        ratio *= (g.power_limit_watts / g.demand_watts) ** (1 / 3)  # P ~ f^3 under DVFS
    if g.hw_slowdown:
        ratio *= HW_SLOWDOWN_CLOCK_RATIO
    return round(top * ratio)


def _event_reasons(s: SimLibrary, g: GpuView) -> int:
    bits = pynvml.nvmlClocksEventReasonGpuIdle if _utilization(s, g) == 0 else 0
    if g.power_capped:
        bits |= pynvml.nvmlClocksEventReasonSwPowerCap
    if g.hw_slowdown:
        bits |= (pynvml.nvmlClocksEventReasonHwSlowdown
                 | pynvml.nvmlClocksEventReasonHwThermalSlowdown
                 | pynvml.nvmlClocksEventReasonSwThermalSlowdown)
    return int(bits)


def _temperature(s: SimLibrary, g: GpuView, sensor: int) -> int:
    return int(_pick({pynvml.NVML_TEMPERATURE_GPU: s.temperature(g)}, sensor,
                     pynvml.NVML_ERROR_INVALID_ARGUMENT))


def _field_values(s: SimLibrary, g: GpuView, field_ids: list[Any]) -> Any:
    """Every field is NOT_SUPPORTED on the simulated P40 (memory temperature included)."""
    values = (pynvml.c_nvmlFieldValue_t * len(field_ids))()
    for value, field_id in zip(values, field_ids, strict=True):
        value.fieldId, value.scopeId = field_id if isinstance(field_id, tuple) else (field_id, 0)
        value.timestamp = int(s.wall() * 1e6)
        value.nvmlReturn = pynvml.NVML_ERROR_NOT_SUPPORTED
    return values


def _memory(s: SimLibrary, g: GpuView, version: int | None = None) -> Any:
    total = s.memory_total_bytes
    used = int((256 + 18_000 * _utilization(s, g)) * 2**20)
    if version:
        return pynvml.c_nvmlMemory_v2_t(version=version, total=total, reserved=0,
                                        free=total - used, used=used)
    return pynvml.c_nvmlMemory_t(total=total, free=total - used, used=used)


def _violation(s: SimLibrary, g: GpuView, policy: int) -> Any:
    seconds = _pick({pynvml.NVML_PERF_POLICY_POWER: g.power_cap_seconds,
                     pynvml.NVML_PERF_POLICY_THERMAL: g.thermal_seconds}, policy)
    return pynvml.c_nvmlViolationTime_t(referenceTime=int(s.wall() * 1e6),
                                        violationTime=int(seconds * 1e9))


def _pci(s: SimLibrary, g: GpuView) -> Any:
    bus_id = s.bus_id(g.index)
    return pynvml.nvmlPciInfo_t(busIdLegacy=bus_id[4:].encode(), busId=bus_id.encode(),
                                domain=0, bus=int(bus_id[9:11], 16), device=0,
                                pciDeviceId=PCI_DEVICE_ID, pciSubSystemId=PCI_SUBSYSTEM_ID)


_MW = 1000.0
_SUPPORTED_REASONS = 0x1FF  # gpu_idle ... display_clock_setting
DEVICE_CALLS: dict[str, Callable[..., Any]] = {
    "nvmlDeviceGetUUID": lambda s, g: s.uuid(g.index),
    "nvmlDeviceGetName": lambda s, g: s.spec.name,
    "nvmlDeviceGetIndex": lambda s, g: g.index,
    "nvmlDeviceGetSerial": lambda s, g: f"03242170{g.index:05d}",
    "nvmlDeviceGetVbiosVersion": lambda s, g: VBIOS_VERSION,
    "nvmlDeviceGetPciInfo": _pci,
    "nvmlDeviceGetPciInfo_v3": _pci,
    "nvmlDeviceGetTemperature": _temperature,
    "nvmlDeviceGetTemperatureThreshold": lambda s, g, kind: int(_pick({
        pynvml.NVML_TEMPERATURE_THRESHOLD_SHUTDOWN: s.spec.shutdown_celsius,
        pynvml.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN: s.spec.slowdown_celsius}, kind)),
    "nvmlDeviceGetMarginTemperature": lambda s, g: int(s.spec.slowdown_celsius) - s.temperature(g),
    "nvmlDeviceGetFieldValues": _field_values,
    "nvmlDeviceGetPowerUsage": lambda s, g: round(g.power_watts * _MW),
    "nvmlDeviceGetClockInfo": _clock,
    "nvmlDeviceGetMaxClockInfo": lambda s, g, kind: _pick(
        MAX_CLOCKS_MHZ, kind, pynvml.NVML_ERROR_INVALID_ARGUMENT),
    "nvmlDeviceGetCurrentClocksEventReasons": _event_reasons,
    "nvmlDeviceGetCurrentClocksThrottleReasons": _event_reasons,
    "nvmlDeviceGetSupportedClocksEventReasons": lambda s, g: _SUPPORTED_REASONS,
    "nvmlDeviceGetSupportedClocksThrottleReasons": lambda s, g: _SUPPORTED_REASONS,
    "nvmlDeviceGetPerformanceState": lambda s, g: pynvml.NVML_PSTATE_0,
    "nvmlDeviceGetNumFans": lambda s, g: 0,
    "nvmlDeviceGetEnforcedPowerLimit": lambda s, g: round(g.power_limit_watts * _MW),
    "nvmlDeviceGetPowerManagementLimit": lambda s, g: round(g.power_limit_watts * _MW),
    "nvmlDeviceGetPowerManagementDefaultLimit": lambda s, g: round(
        s.spec.power_limit_default_watts * _MW),
    "nvmlDeviceGetPowerManagementLimitConstraints": lambda s, g: [
        round(s.spec.power_limit_min_watts * _MW), round(s.spec.power_limit_max_watts * _MW)],
    "nvmlDeviceGetUtilizationRates": lambda s, g: pynvml.c_nvmlUtilization_t(
        gpu=round(100 * _utilization(s, g)), memory=round(60 * _utilization(s, g))),
    "nvmlDeviceGetEncoderUtilization": lambda s, g: [0, 167_000],
    "nvmlDeviceGetDecoderUtilization": lambda s, g: [0, 167_000],
    "nvmlDeviceGetMemoryInfo": _memory,
    "nvmlDeviceGetTotalEccErrors": lambda s, g, error_type, counter_type: 0,
    "nvmlDeviceGetCurrPcieLinkGeneration": lambda s, g: 3,
    "nvmlDeviceGetMaxPcieLinkGeneration": lambda s, g: 3,
    "nvmlDeviceGetCurrPcieLinkWidth": lambda s, g: 16,
    "nvmlDeviceGetMaxPcieLinkWidth": lambda s, g: 16,
    "nvmlDeviceGetPcieReplayCounter": lambda s, g: 0,
    "nvmlDeviceGetViolationStatus": _violation,
    "nvmlDeviceGetPersistenceMode": lambda s, g: pynvml.NVML_FEATURE_ENABLED,
}
