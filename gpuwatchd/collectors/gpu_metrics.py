"""The GPU metric catalogue and the pure functions that render it from the typed readings.

Input: the collector's :class:`NvmlReading` and one :class:`GpuReading` per GPU (the single
record of each value); output: the families. Nothing here calls NVML. A value that is None
(unsupported, not read, GPU down) adds no sample: absent, never 0.
Command-line equivalent: ``curl -s localhost:10045/metrics | grep -E '^gpuwatchd_(gpu|nvml)'``.
"""

from __future__ import annotations

from collections.abc import Sequence

from gpuwatchd.collectors.gpu_read import CLOCK_EVENTS
from gpuwatchd.model import (
    Family,
    FamilyBuilder,
    GpuClocks,
    GpuFast,
    GpuReading,
    GpuSlow,
    Kind,
    MigInstance,
    NvmlReading,
)

CATALOGUE: dict[str, tuple[Kind, str]] = {
    "gpuwatchd_nvml_up": ("gauge", "1 if NVML is initialised and answering, else 0."),
    "gpuwatchd_nvml_errors_total": ("counter", "NVML calls that failed, by call and error."),
    "gpuwatchd_gpus": ("gauge", "GPUs known to gpuwatchd, by state (visible or lost)."),
    "gpuwatchd_gpu_info": ("gauge", "GPU identity; always 1."),
    "gpuwatchd_gpu_up": ("gauge", "1 if the GPU answers NVML, 0 if it is lost or unreadable."),
    "gpuwatchd_gpu_temperature_celsius": (
        "gauge", "GPU core (sensor=gpu) or HBM (sensor=memory) temperature; cached, updated "
                 "every fast tick."),
    "gpuwatchd_gpu_temperature_margin_celsius": (
        "gauge", "Distance to the nearest slowdown threshold."),
    "gpuwatchd_gpu_temperature_threshold_celsius": (
        "gauge", "Temperature thresholds, by threshold."),
    "gpuwatchd_gpu_implausible_readings_total": ("counter", "Readings rejected as implausible."),
    "gpuwatchd_gpu_power_watts": ("gauge", "Power draw (NVML power usage)."),
    "gpuwatchd_gpu_energy_joules_total": (
        "counter", "Energy consumed since the driver was loaded."),
    "gpuwatchd_gpu_power_limit_watts": ("gauge", "Power limits, by limit."),
    "gpuwatchd_gpu_clock_hertz": ("gauge", "Current clocks, by clock."),
    "gpuwatchd_gpu_clock_max_hertz": ("gauge", "Maximum clocks, by clock."),
    "gpuwatchd_gpu_clock_event_active": (
        "gauge", "1 while a clock event (throttle) reason is active."),
    "gpuwatchd_gpu_throttle_seconds_total": ("counter", "Time clocks were held down, by reason."),
    "gpuwatchd_gpu_pstate": ("gauge", "Performance state (0 = P0, fastest)."),
    "gpuwatchd_gpu_utilization_ratio": ("gauge", "Engine utilisation 0-1, by engine."),
    "gpuwatchd_gpu_memory_bytes": ("gauge", "Framebuffer memory, by state."),
    "gpuwatchd_gpu_ecc_errors_total": (
        "counter", "Volatile ECC errors since driver load, by type."),
    "gpuwatchd_gpu_remapped_rows": ("gauge", "Remapped memory rows, by type."),
    "gpuwatchd_gpu_remap_pending": ("gauge", "1 if a row remap is pending (reset the GPU)."),
    "gpuwatchd_gpu_remap_failed": ("gauge", "1 if a row remap failed."),
    "gpuwatchd_gpu_pcie_link_generation": ("gauge", "PCIe link generation, current and max."),
    "gpuwatchd_gpu_pcie_link_width": ("gauge", "PCIe link width in lanes, current and max."),
    "gpuwatchd_gpu_pcie_replays_total": ("counter", "PCIe replay counter."),
    "gpuwatchd_gpu_fan_speed_ratio": (
        "gauge", "GPU fan speed as a ratio of its maximum (may exceed 1)."),
    "gpuwatchd_gpu_persistence_mode": ("gauge", "1 if persistence mode is on."),
    "gpuwatchd_gpu_mig_mode": (
        "gauge", "1 if MIG mode is on, by which (current, or pending until the next GPU reset)."),
    "gpuwatchd_gpu_mig_info": (
        "gauge", "One MIG device (GPU instance and compute instance) of the GPU; always 1."),
    "gpuwatchd_gpu_mig_memory_bytes": (
        "gauge", "A MIG GPU instance's framebuffer memory, by state (its compute instances "
                 "share it)."),
    "gpuwatchd_gpu_xid_errors_total": ("counter", "XID errors reported by the driver, by code."),
    "gpuwatchd_gpu_xid_last_timestamp_seconds": (
        "gauge", "When an XID of this code last occurred."),
}

Labels = dict[str, str | int]


def render(nvml: NvmlReading, gpus: Sequence[GpuReading], known: bool) -> tuple[Family, ...]:
    """The GPU collector's families for one tick; ``known``: NVML was ever up or a GPU seen."""
    b = FamilyBuilder(CATALOGUE)
    for gpu in gpus:
        if gpu.fast is not None:
            _fast(b, _labels(gpu), gpu.fast,
                  gpu.static.supported_clock_events if gpu.static is not None else None)
        if gpu.fast is not None and gpu.slow is not None:
            _slow(b, _labels(gpu), gpu.slow)
    b.add("gpuwatchd_nvml_up", nvml.up)
    for err in nvml.errors:
        b.add("gpuwatchd_nvml_errors_total", err.count, call=err.call, error=err.error)
    if known:
        visible = sum(1 for gpu in gpus if gpu.up)
        b.add("gpuwatchd_gpus", visible, state="visible")
        b.add("gpuwatchd_gpus", len(gpus) - visible, state="lost")
    for gpu in gpus:
        b.add("gpuwatchd_gpu_up", gpu.up, **_labels(gpu))
        _static(b, gpu, nvml)
    for x in nvml.xids:
        b.add("gpuwatchd_gpu_xid_errors_total", x.count, gpu=x.gpu, uuid=x.uuid, xid=x.xid)
        b.add("gpuwatchd_gpu_xid_last_timestamp_seconds", x.last_timestamp_seconds, gpu=x.gpu,
              uuid=x.uuid, xid=x.xid)
    return b.build()


def _labels(gpu: GpuReading) -> Labels:
    return {"gpu": gpu.index, "uuid": gpu.uuid}


def _clocks(b: FamilyBuilder, name: str, clocks: GpuClocks, lb: Labels) -> None:
    for clock, hertz in (("graphics", clocks.graphics_hertz), ("sm", clocks.sm_hertz),
                         ("memory", clocks.memory_hertz), ("video", clocks.video_hertz)):
        b.add(name, hertz, **lb, clock=clock)


def _fast(b: FamilyBuilder, lb: Labels, f: GpuFast, supported: int | None) -> None:
    b.add("gpuwatchd_gpu_temperature_celsius", f.temperature_celsius, **lb, sensor="gpu")
    b.add("gpuwatchd_gpu_temperature_celsius", f.memory_temperature_celsius, **lb,
          sensor="memory")
    b.add("gpuwatchd_gpu_temperature_margin_celsius", f.margin_celsius, **lb)
    b.add("gpuwatchd_gpu_power_watts", f.power_watts, **lb)
    b.add("gpuwatchd_gpu_energy_joules_total", f.energy_joules_total, **lb)
    _clocks(b, "gpuwatchd_gpu_clock_hertz", f.clocks, lb)
    if f.clock_events is not None:
        for reason, bit in CLOCK_EVENTS.items():
            if supported is None or supported & bit:
                b.add("gpuwatchd_gpu_clock_event_active", bool(f.clock_events & bit), **lb,
                      reason=reason)
    b.add("gpuwatchd_gpu_pstate", f.pstate, **lb)
    for fan, ratio in enumerate(f.fan_speed_ratios):
        b.add("gpuwatchd_gpu_fan_speed_ratio", ratio, **lb, fan=fan)


def _slow(b: FamilyBuilder, lb: Labels, s: GpuSlow) -> None:
    for limit, watts in (("enforced", s.power_limit_enforced_watts),
                         ("current", s.power_limit_current_watts),
                         ("default", s.power_limit_default_watts),
                         ("min", s.power_limit_min_watts), ("max", s.power_limit_max_watts)):
        b.add("gpuwatchd_gpu_power_limit_watts", watts, **lb, limit=limit)
    for engine, ratio in (("gpu", s.utilization_gpu_ratio),
                          ("memory", s.utilization_memory_ratio),
                          ("encoder", s.utilization_encoder_ratio),
                          ("decoder", s.utilization_decoder_ratio)):
        b.add("gpuwatchd_gpu_utilization_ratio", ratio, **lb, engine=engine)
    b.add("gpuwatchd_gpu_memory_bytes", s.memory_used_bytes, **lb, state="used")
    b.add("gpuwatchd_gpu_memory_bytes", s.memory_free_bytes, **lb, state="free")
    b.add("gpuwatchd_gpu_ecc_errors_total", s.ecc_corrected_errors_total, **lb, type="corrected")
    b.add("gpuwatchd_gpu_ecc_errors_total", s.ecc_uncorrected_errors_total, **lb,
          type="uncorrected")
    b.add("gpuwatchd_gpu_remapped_rows", s.remapped_correctable_rows, **lb, type="correctable")
    b.add("gpuwatchd_gpu_remapped_rows", s.remapped_uncorrectable_rows, **lb,
          type="uncorrectable")
    b.add("gpuwatchd_gpu_remap_pending", s.remap_pending, **lb)
    b.add("gpuwatchd_gpu_remap_failed", s.remap_failed, **lb)
    b.add("gpuwatchd_gpu_pcie_link_generation", s.pcie_generation, **lb, which="current")
    b.add("gpuwatchd_gpu_pcie_link_width", s.pcie_width, **lb, which="current")
    b.add("gpuwatchd_gpu_pcie_replays_total", s.pcie_replays_total, **lb)
    v = s.violations
    for reason, seconds in (("power", v.power_seconds), ("thermal", v.thermal_seconds),
                            ("sync_boost", v.sync_boost_seconds),
                            ("board_limit", v.board_limit_seconds),
                            ("low_utilization", v.low_utilization_seconds),
                            ("reliability", v.reliability_seconds)):
        b.add("gpuwatchd_gpu_throttle_seconds_total", seconds, **lb, reason=reason)
    b.add("gpuwatchd_gpu_persistence_mode", s.persistence_mode, **lb)
    b.add("gpuwatchd_gpu_mig_mode", s.mig_mode_current, **lb, which="current")
    b.add("gpuwatchd_gpu_mig_mode", s.mig_mode_pending, **lb, which="pending")
    _mig(b, lb, s.mig_instances)


def _mig(b: FamilyBuilder, lb: Labels, instances: tuple[MigInstance, ...]) -> None:
    """Identity per MIG device; memory once per GPU instance. Nothing of the parent's (power,
    temperature, clocks) is repeated here: those series stay on the parent GPU only."""
    memory_done: set[int] = set()
    for m in instances:
        placement: Labels = {} if m.placement_start is None or m.placement_size is None else {
            "placement_start": m.placement_start, "placement_size": m.placement_size}
        b.add("gpuwatchd_gpu_mig_info", 1, **lb, gpu_instance=m.gpu_instance,
              compute_instance=m.compute_instance, mig_uuid=m.uuid, profile=m.profile,
              **placement)
        if m.gpu_instance in memory_done:
            continue
        memory_done.add(m.gpu_instance)
        b.add("gpuwatchd_gpu_mig_memory_bytes", m.memory_used_bytes, **lb,
              gpu_instance=m.gpu_instance, state="used")
        b.add("gpuwatchd_gpu_mig_memory_bytes", m.memory_free_bytes, **lb,
              gpu_instance=m.gpu_instance, state="free")


def _static(b: FamilyBuilder, gpu: GpuReading, nvml: NvmlReading) -> None:
    """Identity and the values cached at discovery, for every known GPU (up or not)."""
    lb = _labels(gpu)
    ident = gpu.identity
    info: dict[str, str] = {} if ident is None else {
        "name": gpu.name, "serial": ident.serial, "vbios_version": ident.vbios_version,
        "pci_bus_id": ident.pci_bus_id}
    b.add("gpuwatchd_gpu_info", 1, **lb, **info, driver_version=nvml.driver_version,
          cuda_driver_version=nvml.cuda_driver_version)
    st = gpu.static
    if st is not None:
        for threshold, celsius in (("shutdown", st.shutdown_celsius),
                                   ("slowdown", st.slowdown_celsius),
                                   ("mem_max", st.memory_max_celsius),
                                   ("gpu_max", st.gpu_max_celsius)):
            b.add("gpuwatchd_gpu_temperature_threshold_celsius", celsius, **lb,
                  threshold=threshold)
        _clocks(b, "gpuwatchd_gpu_clock_max_hertz", st.max_clocks, lb)
        b.add("gpuwatchd_gpu_pcie_link_generation", st.pcie_max_generation, **lb, which="max")
        b.add("gpuwatchd_gpu_pcie_link_width", st.pcie_max_width, **lb, which="max")
    b.add("gpuwatchd_gpu_implausible_readings_total", gpu.implausible_readings_total, **lb,
          reading="temperature")
