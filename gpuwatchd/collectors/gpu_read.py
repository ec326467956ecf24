"""Per-GPU NVML reads for the static, fast and slow tiers, and the GPU metric catalogue.

Each reader adds samples to a FamilyBuilder. A reading the GPU does not support is remembered
per GPU and never asked for again until re-init (so a passive P40 is asked for its fan once,
not every tick); it is absent from the exposition, never 0. ``Lost`` propagates to the
collector, which marks the GPU down and re-initialises NVML.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from gpuwatchd.errors import Refused, Transient, Unsupported
from gpuwatchd.links.nvml import NvmlLink
from gpuwatchd.model import FamilyBuilder, Kind

log = logging.getLogger(__name__)

G = "gpuwatchd_gpu_"
CATALOGUE: dict[str, tuple[Kind, str]] = {
    "gpuwatchd_nvml_up": ("gauge", "1 if NVML is initialised and answering, else 0."),
    "gpuwatchd_nvml_errors_total": ("counter", "NVML calls that failed, by call and error."),
    "gpuwatchd_gpus": ("gauge", "GPUs known to gpuwatchd, by state (visible or lost)."),
    G + "info": ("gauge", "GPU identity; always 1."),
    G + "up": ("gauge", "1 if the GPU answers NVML, 0 if it is lost or unreadable."),
    G + "temperature_celsius": ("gauge", "GPU core (sensor=gpu) or HBM (sensor=memory) "
                                         "temperature; cached, updated every fast tick."),
    G + "temperature_margin_celsius": ("gauge", "Distance to the nearest slowdown threshold."),
    G + "temperature_threshold_celsius": ("gauge", "Temperature thresholds, by threshold."),
    G + "implausible_readings_total": ("counter", "Readings rejected as implausible."),
    G + "power_watts": ("gauge", "Power draw (NVML power usage)."),
    G + "energy_joules_total": ("counter", "Energy consumed since the driver was loaded."),
    G + "power_limit_watts": ("gauge", "Power limits, by limit."),
    G + "clock_hertz": ("gauge", "Current clocks, by clock."),
    G + "clock_max_hertz": ("gauge", "Maximum clocks, by clock."),
    G + "clock_event_active": ("gauge", "1 while a clock event (throttle) reason is active."),
    G + "throttle_seconds_total": ("counter", "Time clocks were held down, by reason."),
    G + "pstate": ("gauge", "Performance state (0 = P0, fastest)."),
    G + "utilization_ratio": ("gauge", "Engine utilisation 0-1, by engine."),
    G + "memory_bytes": ("gauge", "Framebuffer memory, by state."),
    G + "ecc_errors_total": ("counter", "Volatile ECC errors since driver load, by type."),
    G + "remapped_rows": ("gauge", "Remapped memory rows, by type."),
    G + "remap_pending": ("gauge", "1 if a row remap is pending (reset the GPU)."),
    G + "remap_failed": ("gauge", "1 if a row remap failed."),
    G + "pcie_link_generation": ("gauge", "PCIe link generation, current and max."),
    G + "pcie_link_width": ("gauge", "PCIe link width in lanes, current and max."),
    G + "pcie_replays_total": ("counter", "PCIe replay counter."),
    G + "fan_speed_ratio": ("gauge", "GPU fan speed as a ratio of its maximum (may exceed 1)."),
    G + "persistence_mode": ("gauge", "1 if persistence mode is on."),
    G + "xid_errors_total": ("counter", "XID errors reported by the driver, by code."),
    G + "xid_last_timestamp_seconds": ("gauge", "When an XID of this code last occurred."),
}

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
    info: dict[str, str] = field(default_factory=dict)
    unsupported: set[str] = field(default_factory=set)
    static: dict[str, Any] = field(default_factory=dict)
    slow: FamilyBuilder | None = None
    last_temperature: float | None = None
    strikes: int = 0
    implausible: int = 0
    values: dict[str, Any] = field(default_factory=dict)  # this tick's values for GpuReading

    def labels(self) -> dict[str, str | int]:
        return {"gpu": self.index, "uuid": self.uuid}


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


def read_static(link: NvmlLink, gpu: GpuState) -> None:
    """Identity, thresholds and maxima: read at discovery and after each re-init.

    nvidia-smi: ``--query-gpu=name,serial,vbios_version,pci.bus_id`` and ``-q -d TEMPERATURE``.
    """
    h = gpu.handle
    pci = ask(link, gpu, "pci", "nvmlDeviceGetPciInfo", h)
    bus_id = getattr(pci, "busId", b"")
    gpu.info = {
        "name": gpu.name,
        "serial": _text(ask(link, gpu, "serial", "nvmlDeviceGetSerial", h)),
        "vbios_version": _text(ask(link, gpu, "vbios", "nvmlDeviceGetVbiosVersion", h)),
        "pci_bus_id": _text(bus_id),
    }
    gpu.static = {
        "thresholds": {name: ask(link, gpu, f"threshold_{name}",
                                 "nvmlDeviceGetTemperatureThreshold", h, code)
                       for name, code in THRESHOLDS.items()},
        "max_clocks": {name: ask(link, gpu, f"max_clock_{name}", "nvmlDeviceGetMaxClockInfo",
                                 h, code) for name, code in CLOCKS.items()},
        "pcie_max": (ask(link, gpu, "pcie_max_gen", "nvmlDeviceGetMaxPcieLinkGeneration", h),
                     ask(link, gpu, "pcie_max_width", "nvmlDeviceGetMaxPcieLinkWidth", h)),
        "fans": ask(link, gpu, "num_fans", "nvmlDeviceGetNumFans", h) or 0,
        "event_mask": _event_reasons(link, gpu, "supported_events", "Supported"),
    }


def read_fast(link: NvmlLink, gpu: GpuState, b: FamilyBuilder,
              plausible: tuple[float, float]) -> None:
    """Every tick: temperatures, margin, power, energy, clocks, clock events, pstate, fans.

    nvidia-smi: ``--query-gpu=temperature.gpu,temperature.gpu.tlimit,power.draw,clocks.sm,
    clocks_event_reasons.active,pstate,fan.speed --format=csv``.
    """
    h, lb = gpu.handle, gpu.labels()
    temp = _plausible_temperature(
        gpu, ask(link, gpu, "temperature", "nvmlDeviceGetTemperature", h, NVML_TEMPERATURE_GPU),
        plausible)
    b.add(G + "temperature_celsius", temp, **lb, sensor="gpu")
    b.add(G + "temperature_celsius", _memory_temperature(link, gpu), **lb, sensor="memory")
    margin = ask(link, gpu, "margin", "nvmlDeviceGetMarginTemperature", h)
    b.add(G + "temperature_margin_celsius", margin, **lb)
    power_mw = ask(link, gpu, "power", "nvmlDeviceGetPowerUsage", h)
    power = power_mw / 1000.0 if power_mw is not None else None
    b.add(G + "power_watts", power, **lb)
    energy_mj = ask(link, gpu, "energy", "nvmlDeviceGetTotalEnergyConsumption", h)
    b.add(G + "energy_joules_total", energy_mj / 1000.0 if energy_mj is not None else None, **lb)
    for clock, code in CLOCKS.items():
        mhz = ask(link, gpu, f"clock_{clock}", "nvmlDeviceGetClockInfo", h, code)
        b.add(G + "clock_hertz", mhz * 1e6 if mhz is not None else None, **lb, clock=clock)
    reasons = _event_reasons(link, gpu, "events", "Current")
    mask = gpu.static.get("event_mask")
    if reasons is not None:
        for reason, bit in CLOCK_EVENTS.items():
            if mask is None or mask & bit:
                b.add(G + "clock_event_active", bool(reasons & bit), **lb, reason=reason)
    b.add(G + "pstate", ask(link, gpu, "pstate", "nvmlDeviceGetPerformanceState", h), **lb)
    fans = []
    for fan in range(gpu.static.get("fans", 0)):
        pct = ask(link, gpu, f"fan_{fan}", "nvmlDeviceGetFanSpeed_v2", h, fan)
        if pct is not None:
            fans.append(pct / 100.0)
            b.add(G + "fan_speed_ratio", pct / 100.0, **lb, fan=fan)
    gpu.values.update(temperature=temp, margin=margin, power=power, fans=tuple(fans))


def read_slow(link: NvmlLink, gpu: GpuState) -> FamilyBuilder:
    """Every ``slow_interval_seconds``: limits, utilisation, memory, ECC, remap, PCIe, modes.

    nvidia-smi: ``--query-gpu=power.limit,utilization.gpu,memory.used,ecc.errors.corrected
    .volatile.total,pcie.link.gen.current,persistence_mode --format=csv``.
    """
    h, lb = gpu.handle, gpu.labels()
    b = FamilyBuilder(CATALOGUE)
    for limit, call in (("enforced", "nvmlDeviceGetEnforcedPowerLimit"),
                        ("current", "nvmlDeviceGetPowerManagementLimit"),
                        ("default", "nvmlDeviceGetPowerManagementDefaultLimit")):
        mw = ask(link, gpu, f"limit_{limit}", call, h)
        b.add(G + "power_limit_watts", mw / 1000.0 if mw is not None else None, **lb, limit=limit)
        if limit == "enforced":
            gpu.values["power_limit"] = mw / 1000.0 if mw is not None else None
    constraints = ask(link, gpu, "limit_constraints",
                      "nvmlDeviceGetPowerManagementLimitConstraints", h)
    if constraints is not None:
        b.add(G + "power_limit_watts", constraints[0] / 1000.0, **lb, limit="min")
        b.add(G + "power_limit_watts", constraints[1] / 1000.0, **lb, limit="max")
    util = ask(link, gpu, "utilization", "nvmlDeviceGetUtilizationRates", h)
    if util is not None:
        b.add(G + "utilization_ratio", util.gpu / 100.0, **lb, engine="gpu")
        b.add(G + "utilization_ratio", util.memory / 100.0, **lb, engine="memory")
    for engine, call in (("encoder", "nvmlDeviceGetEncoderUtilization"),
                         ("decoder", "nvmlDeviceGetDecoderUtilization")):
        value = ask(link, gpu, engine, call, h)
        b.add(G + "utilization_ratio", value[0] / 100.0 if value else None, **lb, engine=engine)
    mem = ask(link, gpu, "memory", "nvmlDeviceGetMemoryInfo", h)
    if mem is not None:
        b.add(G + "memory_bytes", mem.used, **lb, state="used")
        b.add(G + "memory_bytes", mem.free, **lb, state="free")
    for kind, code in NVML_MEMORY_ERROR_TYPES.items():
        b.add(G + "ecc_errors_total", ask(link, gpu, f"ecc_{kind}", "nvmlDeviceGetTotalEccErrors",
                                          h, code, NVML_VOLATILE_ECC), **lb, type=kind)
    _remapped_rows(link, gpu, b)
    _pcie(link, gpu, b)
    for reason, policy in VIOLATIONS.items():
        status = ask(link, gpu, f"violation_{reason}", "nvmlDeviceGetViolationStatus", h, policy)
        b.add(G + "throttle_seconds_total",
              status.violationTime / 1e9 if status is not None else None, **lb, reason=reason)
    b.add(G + "persistence_mode",
          ask(link, gpu, "persistence", "nvmlDeviceGetPersistenceMode", h), **lb)
    return b


def add_static(gpu: GpuState, b: FamilyBuilder, driver: dict[str, str]) -> None:
    """Identity and static values (cached at discovery) into this tick's builder."""
    lb = gpu.labels()
    b.add(G + "info", 1, **lb, **gpu.info, **driver)
    for name, value in gpu.static.get("thresholds", {}).items():
        b.add(G + "temperature_threshold_celsius", value, **lb, threshold=name)
    for name, mhz in gpu.static.get("max_clocks", {}).items():
        b.add(G + "clock_max_hertz", mhz * 1e6 if mhz is not None else None, **lb, clock=name)
    gen, width = gpu.static.get("pcie_max", (None, None))
    b.add(G + "pcie_link_generation", gen, **lb, which="max")
    b.add(G + "pcie_link_width", width, **lb, which="max")
    b.add(G + "implausible_readings_total", gpu.implausible, **lb, reading="temperature")


def _remapped_rows(link: NvmlLink, gpu: GpuState, b: FamilyBuilder) -> None:
    rows = ask(link, gpu, "remapped_rows", "nvmlDeviceGetRemappedRows", gpu.handle)
    if rows is None:
        return
    lb = gpu.labels()
    b.add(G + "remapped_rows", rows[0], **lb, type="correctable")
    b.add(G + "remapped_rows", rows[1], **lb, type="uncorrectable")
    b.add(G + "remap_pending", bool(rows[2]), **lb)
    b.add(G + "remap_failed", bool(rows[3]), **lb)


def _pcie(link: NvmlLink, gpu: GpuState, b: FamilyBuilder) -> None:
    h, lb = gpu.handle, gpu.labels()
    b.add(G + "pcie_link_generation",
          ask(link, gpu, "pcie_gen", "nvmlDeviceGetCurrPcieLinkGeneration", h), **lb,
          which="current")
    b.add(G + "pcie_link_width",
          ask(link, gpu, "pcie_width", "nvmlDeviceGetCurrPcieLinkWidth", h), **lb,
          which="current")
    b.add(G + "pcie_replays_total",
          ask(link, gpu, "pcie_replays", "nvmlDeviceGetPcieReplayCounter", h), **lb)


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
                           plausible: tuple[float, float]) -> float | None:
    """Reject readings outside the plausible range (dcgm-exporter#312 saw 82505 C).

    A rejected value is counted; the last good value is held for up to 3 strikes, then absent.
    """
    if value is None:
        return None
    low, high = plausible
    if low <= value <= high:
        gpu.last_temperature, gpu.strikes = float(value), 0
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
