"""GPU readings: one typed GpuReading per GPU (identity, static, fast and slow tiers), NVML."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class GpuClocks:
    """One value per NVML clock domain (``NVML_CLOCK_GRAPHICS/SM/MEM/VIDEO``), in hertz."""

    graphics_hertz: float | None = None
    sm_hertz: float | None = None
    memory_hertz: float | None = None
    video_hertz: float | None = None


@dataclass(frozen=True, slots=True)
class GpuIdentity:
    """What ``nvidia-smi --query-gpu=serial,vbios_version,pci.bus_id`` shows ('' = unknown)."""

    serial: str = ""
    vbios_version: str = ""
    pci_bus_id: str = ""


@dataclass(frozen=True, slots=True)
class GpuStatic:
    """Thresholds and maxima, read at discovery and after each re-init."""

    shutdown_celsius: float | None = None
    slowdown_celsius: float | None = None
    memory_max_celsius: float | None = None
    gpu_max_celsius: float | None = None
    max_clocks: GpuClocks = GpuClocks()
    pcie_max_generation: int | None = None
    pcie_max_width: int | None = None
    fan_count: int = 0
    supported_clock_events: int | None = None  # nvmlClocksEventReason* bits; None: unknown


@dataclass(frozen=True, slots=True)
class GpuFast:
    """The fast tier, read every tick. ``fan_speed_ratios[n]`` is fan n (None: no reading)."""

    temperature_celsius: float | None = None
    memory_temperature_celsius: float | None = None  # HBM; absent on GDDR cards (P40)
    margin_celsius: float | None = None
    power_watts: float | None = None
    energy_joules_total: float | None = None
    clocks: GpuClocks = GpuClocks()
    clock_events: int | None = None  # active nvmlClocksEventReason* bits
    pstate: int | None = None
    fan_speed_ratios: tuple[float | None, ...] = ()
    # How old the temperature is at this read: 0 for a fresh reading, else the age of the
    # last plausible one held in place of an implausible reading (gpuwatchd.collectors.
    # gpu_read); fan control adds it to the input's age, so its stale rule applies on time.
    temperature_held_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class GpuEnergy:
    """A GPU's energy as gpuwatchd accounted it (gpuwatchd.collectors.gpu_energy): from the
    GPU's energy counter where it has one, else integrated from its power draw over the
    sample interval (``estimated``: a P40 has no counter). Today and this month follow the
    host's local calendar; the price (``energy.price_per_kwh``) is the config's, None unset."""

    index: int
    uuid: str
    joules_total: float  # since gpuwatchd started
    today_joules: float
    month_joules: float
    estimated: bool
    price_per_kwh: float | None = None
    currency: str = ""


@dataclass(frozen=True, slots=True)
class GpuViolations:
    """Time clocks were held down, by NVML_PERF_POLICY_* reason, in seconds since boot."""

    power_seconds: float | None = None
    thermal_seconds: float | None = None
    sync_boost_seconds: float | None = None
    board_limit_seconds: float | None = None
    low_utilization_seconds: float | None = None
    reliability_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class MigInstance:
    """One MIG device (a compute instance inside a GPU instance) of a MIG-enabled GPU.

    Read in the slow tier from the MIG device handle (``nvmlDeviceGetMigDeviceHandleByIndex``);
    nvidia-smi: ``nvidia-smi mig -lgi`` / ``-lci`` and ``nvidia-smi -L``. ``profile`` is the
    nvidia-smi name (``3g.40gb``; ``1c.3g.40gb`` for a compute instance smaller than its GPU
    instance). Memory belongs to the GPU instance: compute instances of one GPU instance
    report the same memory. The placement needs ``nvmlDeviceGetGpuInstanceById``, which NVML
    allows only to a privileged user: None where it was refused. Utilisation, power,
    temperature and clocks are not per instance (NVML has them for the parent GPU only).
    """

    gpu_instance: int
    compute_instance: int
    uuid: str
    profile: str = ""
    slices: int | None = None  # GPU instance slices (of 7 on A100/H100)
    compute_slices: int | None = None
    multiprocessors: int | None = None
    memory_total_bytes: int | None = None
    memory_used_bytes: int | None = None
    memory_free_bytes: int | None = None
    placement_start: int | None = None
    placement_size: int | None = None


@dataclass(frozen=True, slots=True)
class GpuSlow:
    """The slow tier, read every ``gpus.slow_interval_seconds``."""

    power_limit_enforced_watts: float | None = None
    power_limit_current_watts: float | None = None
    power_limit_default_watts: float | None = None
    power_limit_min_watts: float | None = None
    power_limit_max_watts: float | None = None
    utilization_gpu_ratio: float | None = None
    utilization_memory_ratio: float | None = None
    utilization_encoder_ratio: float | None = None
    utilization_decoder_ratio: float | None = None
    memory_used_bytes: int | None = None
    memory_free_bytes: int | None = None
    ecc_corrected_errors_total: int | None = None
    ecc_uncorrected_errors_total: int | None = None
    remapped_correctable_rows: int | None = None  # the four remap values come together
    remapped_uncorrectable_rows: int | None = None
    remap_pending: bool | None = None
    remap_failed: bool | None = None
    pcie_generation: int | None = None
    pcie_width: int | None = None
    pcie_replays_total: int | None = None
    violations: GpuViolations = GpuViolations()
    persistence_mode: int | None = None
    mig_mode_current: bool | None = None  # None: not a MIG-capable GPU (NOT_SUPPORTED)
    mig_mode_pending: bool | None = None  # differs from current until the GPU is reset
    mig_instances: tuple[MigInstance, ...] = ()


@dataclass(frozen=True, slots=True)
class GpuReading:
    """One GPU as the GPU collector read it: the single record of its values.

    The exporter's families (``gpuwatchd.collectors.gpu_metrics``), the status table and the
    fan controller's inputs are all derived from it. ``identity`` and ``static`` are from the
    last discovery (None: never read); ``fast`` and ``slow`` are None while the GPU is down.
    Temperatures in degrees Celsius, power in watts; ``None`` = unsupported or not read.
    """

    index: int
    uuid: str
    name: str
    up: bool
    error: str = ""
    identity: GpuIdentity | None = None
    static: GpuStatic | None = None
    fast: GpuFast | None = None
    slow: GpuSlow | None = None
    implausible_readings_total: int = 0

    @property
    def temperature_celsius(self) -> float | None:
        return self.fast.temperature_celsius if self.fast is not None else None

    @property
    def temperature_held_seconds(self) -> float:
        return self.fast.temperature_held_seconds if self.fast is not None else 0.0

    @property
    def margin_celsius(self) -> float | None:
        return self.fast.margin_celsius if self.fast is not None else None

    @property
    def power_watts(self) -> float | None:
        return self.fast.power_watts if self.fast is not None else None

    @property
    def fan_ratios(self) -> tuple[float, ...]:
        """The fans that answered, in fan order."""
        fans = self.fast.fan_speed_ratios if self.fast is not None else ()
        return tuple(r for r in fans if r is not None)

    @property
    def slowdown_celsius(self) -> float | None:
        return self.static.slowdown_celsius if self.static is not None else None

    @property
    def shutdown_celsius(self) -> float | None:
        return self.static.shutdown_celsius if self.static is not None else None

    @property
    def power_limit_watts(self) -> float | None:
        """The enforced power limit."""
        return self.slow.power_limit_enforced_watts if self.slow is not None else None

    @property
    def mig_instances(self) -> tuple[MigInstance, ...]:
        """The MIG devices of the last slow read (empty: MIG off or not supported)."""
        return self.slow.mig_instances if self.slow is not None else ()


@dataclass(frozen=True, slots=True)
class NvmlErrorCount:
    """Failed NVML calls of one kind since the session was made (all NVML users together)."""

    call: str
    error: str  # the NVML return code's name: not_supported, gpu_is_lost, ...
    count: int


@dataclass(frozen=True, slots=True)
class XidCount:
    """XID events of one code on one GPU (``gpu`` -1, ``uuid`` 'unknown': an unmatched handle)."""

    gpu: int
    uuid: str
    xid: int
    count: int
    last_timestamp_seconds: float


@dataclass(frozen=True, slots=True)
class NvmlReading:
    """Whether NVML answers, the driver it reports, its error counts and the XID counts."""

    up: bool
    driver_version: str = ""
    error: str = ""
    cuda_driver_version: str = ""
    errors: tuple[NvmlErrorCount, ...] = ()
    xids: tuple[XidCount, ...] = ()
