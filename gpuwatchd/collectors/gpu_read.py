"""Per-GPU NVML reads for the static, fast and slow tiers, each into a typed record.

Each reader returns its tier's record (gpuwatchd.model: GpuStatic, GpuFast, GpuSlow); the
metric families are rendered from them by gpuwatchd.collectors.gpu_metrics. A reading the GPU
does not support is remembered per GPU and never asked for again until re-init (so a passive
P40 is asked for its fan once, not every tick); it is absent from the exposition, never 0.
``Lost`` propagates to the collector, which marks the GPU down and re-initialises NVML.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from gpuwatchd.errors import Refused, Transient, Unsupported
from gpuwatchd.links.nvml import NvmlLink
from gpuwatchd.model import GpuClocks, GpuFast, GpuIdentity, GpuSlow, GpuStatic, GpuViolations

log = logging.getLogger(__name__)

CLOCKS = {"graphics": 0, "sm": 1, "memory": 2, "video": 3}  # NVML_CLOCK_*
THRESHOLDS = {"shutdown": 0, "slowdown": 1, "mem_max": 2, "gpu_max": 3}  # NVML_..._THRESHOLD_*
CLOCK_EVENTS = {  # nvmlClocksEventReason* bits
    "gpu_idle": 0x1, "applications_clocks_setting": 0x2, "sw_power_cap": 0x4,
    "hw_slowdown": 0x8, "sync_boost": 0x10, "sw_thermal": 0x20, "hw_thermal": 0x40,
    "hw_power_brake": 0x80, "display_clock_setting": 0x100,
}
VIOLATIONS = {"power": 0, "thermal": 1, "sync_boost": 2, "board_limit": 3,
              "low_utilization": 4, "reliability": 5}  # NVML_PERF_POLICY_*
NVML_TEMPERATURE_GPU = 0
NVML_FI_DEV_MEMORY_TEMP = 82
NVML_MEMORY_ERROR_TYPES = {"corrected": 0, "uncorrected": 1}
NVML_VOLATILE_ECC = 0


@dataclass
class GpuState:
    """What the collector keeps per GPU between ticks (mutable, owned by the collector)."""

    index: int
    uuid: str
    handle: Any = None
    name: str = ""
    up: bool = False
    error: str = ""
    unsupported: set[str] = field(default_factory=set)
    identity: GpuIdentity | None = None
    static: GpuStatic | None = None
    fast: GpuFast | None = None  # this tick's
    slow: GpuSlow | None = None  # the last slow read's
    last_temperature: float | None = None
    last_temperature_mono: float = 0.0  # when last_temperature was read
    strikes: int = 0
    implausible: int = 0


def ask(link: NvmlLink, gpu: GpuState, key: str, call: str, *args: Any) -> Any:
    """One NVML read for ``gpu``; None if unsupported (remembered) or refused/transient."""
    if key in gpu.unsupported:
        return None
    try:
        return link.call(call, *args)
    except Unsupported:
        gpu.unsupported.add(key)
        log.debug("GPU %d: %s unsupported", gpu.index, key)
    except (Refused, Transient) as exc:
        log.debug("GPU %d: %s failed: %s", gpu.index, key, exc)
    return None


def read_static(link: NvmlLink, gpu: GpuState) -> tuple[GpuIdentity, GpuStatic]:
    """Identity, thresholds and maxima: read at discovery and after each re-init.

    nvidia-smi: ``--query-gpu=name,serial,vbios_version,pci.bus_id`` and ``-q -d TEMPERATURE``.
    """
    h = gpu.handle
    pci = ask(link, gpu, "pci", "nvmlDeviceGetPciInfo", h)
    identity = GpuIdentity(
        serial=_text(ask(link, gpu, "serial", "nvmlDeviceGetSerial", h)),
        vbios_version=_text(ask(link, gpu, "vbios", "nvmlDeviceGetVbiosVersion", h)),
        pci_bus_id=_text(getattr(pci, "busId", b"")))
    thresholds = {name: ask(link, gpu, f"threshold_{name}", "nvmlDeviceGetTemperatureThreshold",
                            h, code) for name, code in THRESHOLDS.items()}
    max_mhz = {name: ask(link, gpu, f"max_clock_{name}", "nvmlDeviceGetMaxClockInfo", h, code)
               for name, code in CLOCKS.items()}
    static = GpuStatic(
        shutdown_celsius=thresholds["shutdown"], slowdown_celsius=thresholds["slowdown"],
        memory_max_celsius=thresholds["mem_max"], gpu_max_celsius=thresholds["gpu_max"],
        max_clocks=_clocks(max_mhz),
        pcie_max_generation=ask(link, gpu, "pcie_max_gen", "nvmlDeviceGetMaxPcieLinkGeneration", h),
        pcie_max_width=ask(link, gpu, "pcie_max_width", "nvmlDeviceGetMaxPcieLinkWidth", h),
        fan_count=ask(link, gpu, "num_fans", "nvmlDeviceGetNumFans", h) or 0,
        supported_clock_events=_event_reasons(link, gpu, "supported_events", "Supported"))
    return identity, static


def read_fast(link: NvmlLink, gpu: GpuState, plausible: tuple[float, float],
              now: float = 0.0) -> GpuFast:
    """Every tick: temperatures, margin, power, energy, clocks, clock events, pstate, fans.

    nvidia-smi: ``--query-gpu=temperature.gpu,temperature.gpu.tlimit,power.draw,clocks.sm,
    clocks_event_reasons.active,pstate,fan.speed --format=csv``.
    """
    h = gpu.handle
    temp = _plausible_temperature(
        gpu, ask(link, gpu, "temperature", "nvmlDeviceGetTemperature", h, NVML_TEMPERATURE_GPU),
        plausible, now)
    held = now - gpu.last_temperature_mono if gpu.strikes and temp is not None else 0.0
    memory_temp = _memory_temperature(link, gpu)
    margin = ask(link, gpu, "margin", "nvmlDeviceGetMarginTemperature", h)
    power_mw = ask(link, gpu, "power", "nvmlDeviceGetPowerUsage", h)
    energy_mj = ask(link, gpu, "energy", "nvmlDeviceGetTotalEnergyConsumption", h)
    mhz = {clock: ask(link, gpu, f"clock_{clock}", "nvmlDeviceGetClockInfo", h, code)
           for clock, code in CLOCKS.items()}
    reasons = _event_reasons(link, gpu, "events", "Current")
    pstate = ask(link, gpu, "pstate", "nvmlDeviceGetPerformanceState", h)
    fans = []
    for fan in range(gpu.static.fan_count if gpu.static is not None else 0):
        pct = ask(link, gpu, f"fan_{fan}", "nvmlDeviceGetFanSpeed_v2", h, fan)
        fans.append(pct / 100.0 if pct is not None else None)
    return GpuFast(
        temperature_celsius=temp, memory_temperature_celsius=memory_temp, margin_celsius=margin,
        power_watts=_per_thousand(power_mw), energy_joules_total=_per_thousand(energy_mj),
        clocks=_clocks(mhz), clock_events=reasons, pstate=pstate, fan_speed_ratios=tuple(fans),
        temperature_held_seconds=held)


def read_slow(link: NvmlLink, gpu: GpuState) -> GpuSlow:
    """Every ``slow_interval_seconds``: limits, utilisation, memory, ECC, remap, PCIe, modes.

    nvidia-smi: ``--query-gpu=power.limit,utilization.gpu,memory.used,ecc.errors.corrected
    .volatile.total,pcie.link.gen.current,persistence_mode --format=csv``.
    """
    h = gpu.handle
    limits = {limit: _per_thousand(ask(link, gpu, f"limit_{limit}", call, h))
              for limit, call in (("enforced", "nvmlDeviceGetEnforcedPowerLimit"),
                                  ("current", "nvmlDeviceGetPowerManagementLimit"),
                                  ("default", "nvmlDeviceGetPowerManagementDefaultLimit"))}
    constraints = ask(link, gpu, "limit_constraints",
                      "nvmlDeviceGetPowerManagementLimitConstraints", h)
    util = ask(link, gpu, "utilization", "nvmlDeviceGetUtilizationRates", h)
    coding = {engine: ask(link, gpu, engine, call, h)
              for engine, call in (("encoder", "nvmlDeviceGetEncoderUtilization"),
                                   ("decoder", "nvmlDeviceGetDecoderUtilization"))}
    mem = ask(link, gpu, "memory", "nvmlDeviceGetMemoryInfo", h)
    ecc = {kind: ask(link, gpu, f"ecc_{kind}", "nvmlDeviceGetTotalEccErrors", h, code,
                     NVML_VOLATILE_ECC) for kind, code in NVML_MEMORY_ERROR_TYPES.items()}
    rows = ask(link, gpu, "remapped_rows", "nvmlDeviceGetRemappedRows", h)
    return GpuSlow(
        power_limit_enforced_watts=limits["enforced"], power_limit_current_watts=limits["current"],
        power_limit_default_watts=limits["default"],
        power_limit_min_watts=constraints[0] / 1000.0 if constraints is not None else None,
        power_limit_max_watts=constraints[1] / 1000.0 if constraints is not None else None,
        utilization_gpu_ratio=util.gpu / 100.0 if util is not None else None,
        utilization_memory_ratio=util.memory / 100.0 if util is not None else None,
        utilization_encoder_ratio=_percent(coding["encoder"]),
        utilization_decoder_ratio=_percent(coding["decoder"]),
        memory_used_bytes=mem.used if mem is not None else None,
        memory_free_bytes=mem.free if mem is not None else None,
        ecc_corrected_errors_total=ecc["corrected"],
        ecc_uncorrected_errors_total=ecc["uncorrected"],
        remapped_correctable_rows=rows[0] if rows is not None else None,
        remapped_uncorrectable_rows=rows[1] if rows is not None else None,
        remap_pending=bool(rows[2]) if rows is not None else None,
        remap_failed=bool(rows[3]) if rows is not None else None,
        pcie_generation=ask(link, gpu, "pcie_gen", "nvmlDeviceGetCurrPcieLinkGeneration", h),
        pcie_width=ask(link, gpu, "pcie_width", "nvmlDeviceGetCurrPcieLinkWidth", h),
        pcie_replays_total=ask(link, gpu, "pcie_replays", "nvmlDeviceGetPcieReplayCounter", h),
        violations=_violations(link, gpu),
        persistence_mode=ask(link, gpu, "persistence", "nvmlDeviceGetPersistenceMode", h))


def _violations(link: NvmlLink, gpu: GpuState) -> GpuViolations:
    seconds = {}
    for reason, policy in VIOLATIONS.items():
        status = ask(link, gpu, f"violation_{reason}", "nvmlDeviceGetViolationStatus", gpu.handle,
                     policy)
        seconds[reason] = status.violationTime / 1e9 if status is not None else None
    return GpuViolations(
        power_seconds=seconds["power"], thermal_seconds=seconds["thermal"],
        sync_boost_seconds=seconds["sync_boost"], board_limit_seconds=seconds["board_limit"],
        low_utilization_seconds=seconds["low_utilization"],
        reliability_seconds=seconds["reliability"])


def _clocks(mhz: dict[str, Any]) -> GpuClocks:
    """NVML clocks in MHz by CLOCKS name -> hertz."""
    hz = {name: value * 1e6 if value is not None else None for name, value in mhz.items()}
    return GpuClocks(graphics_hertz=hz["graphics"], sm_hertz=hz["sm"],
                     memory_hertz=hz["memory"], video_hertz=hz["video"])


def _per_thousand(milli: Any) -> float | None:
    """NVML's milliwatts / millijoules -> watts / joules."""
    return milli / 1000.0 if milli is not None else None


def _percent(value: Any) -> float | None:
    """(percent, sampling period) from the encoder/decoder calls -> a ratio."""
    return value[0] / 100.0 if value else None


def _event_reasons(link: NvmlLink, gpu: GpuState, key: str, which: str) -> int | None:
    """``nvmlDeviceGet{which}ClocksEventReasons``, or on drivers before R535 (no such symbol:
    FunctionNotFound, proven with the fake library's old-driver build) the older name
    ``nvmlDeviceGet{which}ClocksThrottleReasons``, which returns the same bits."""
    value = ask(link, gpu, key, f"nvmlDeviceGet{which}ClocksEventReasons", gpu.handle)
    if value is None and key in gpu.unsupported:
        value = ask(link, gpu, f"{key}_legacy", f"nvmlDeviceGet{which}ClocksThrottleReasons",
                    gpu.handle)
    return value


def _memory_temperature(link: NvmlLink, gpu: GpuState) -> float | None:
    """HBM temperature via field values; GDDR cards (P40) report it as unsupported."""
    values = ask(link, gpu, "memory_temperature", "nvmlDeviceGetFieldValues", gpu.handle,
                 [NVML_FI_DEV_MEMORY_TEMP])
    if not values or getattr(values[0], "nvmlReturn", 1) != 0:
        gpu.unsupported.add("memory_temperature")
        return None
    value = values[0].value
    return float(getattr(value, "uiVal", value))


def _plausible_temperature(gpu: GpuState, value: float | None,
                           plausible: tuple[float, float], now: float) -> float | None:
    """Reject readings outside the plausible range (dcgm-exporter#312 saw 82505 C).

    A rejected value is counted; the last good value is held for up to 3 strikes, then absent.
    The held value keeps its own age (GpuFast.temperature_held_seconds): fan control sees it
    as data that old, so a zone goes to failsafe after its ``stale_after_seconds`` (within 2
    intervals by default), not after the 3 strikes.
    """
    if value is None:
        return None
    low, high = plausible
    if low <= value <= high:
        gpu.last_temperature, gpu.strikes = float(value), 0
        gpu.last_temperature_mono = now
        return float(value)
    gpu.implausible += 1
    gpu.strikes += 1
    log.warning("GPU %d: implausible temperature %s C rejected (strike %d)",
                gpu.index, value, gpu.strikes, extra={"GPU": gpu.uuid})
    return gpu.last_temperature if gpu.strikes <= 3 else None


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
