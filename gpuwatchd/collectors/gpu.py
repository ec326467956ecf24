"""GPU collector over NVML: discovery, tiers, lifecycle and re-init with backoff.

Lifecycle rules (from nvidia_gpu_exporter's NVML backend and NVML's docs):
- no ``libnvidia-ml.so.1``: run without GPUs, ``gpuwatchd_nvml_up 0``; with ``enabled: auto``
  this is a normal state (a node without GPUs), with ``enabled: true`` the collector fails;
- a lifecycle error (GPU lost, driver unloaded, version mismatch): that GPU's
  ``gpuwatchd_gpu_up`` goes to 0 (the series stays), and NVML is shut down and re-initialised
  with exponential backoff; GPUs are matched by UUID across re-inits;
- unsupported readings are absent, decided once per GPU.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from gpuwatchd.collectors import Scheduled, gpu_energy, gpu_metrics, gpu_mig
from gpuwatchd.collectors import gpu_read as rd
from gpuwatchd.collectors.gpu_energy import EnergyMeter
from gpuwatchd.collectors.gpu_xid import XidWatcher
from gpuwatchd.errors import GpuwatchdError, Lost, NotInstalled, Transient
from gpuwatchd.links import nvml
from gpuwatchd.links.nvml import NvmlDevice, NvmlLink
from gpuwatchd.model import Collected, GpuReading, NvmlErrorCount, NvmlReading, XidCount

if TYPE_CHECKING:
    from gpuwatchd.clock import Clock
    from gpuwatchd.config import Config, GpuConfig
    from gpuwatchd.config.schema import EnergyConfig
    from gpuwatchd.hardware import Hardware

log = logging.getLogger(__name__)

FIRST_BACKOFF_SECONDS = 1.0


class GpuCollector:
    """Reads every GPU each fast tick; slow readings every ``slow_interval_seconds``."""

    name = "gpu"

    def __init__(self, link: NvmlLink, clock: Clock, cfg: GpuConfig,
                 energy: EnergyConfig | None = None) -> None:
        self._link = link
        self._clock = clock
        self._cfg = cfg
        self._gpus: dict[str, rd.GpuState] = {}  # by UUID, in discovery order
        self._driver: dict[str, str] = {}
        self._next_init = float("-inf")
        self._reinit_at = float("inf")
        self._backoff = FIRST_BACKOFF_SECONDS
        self._next_slow = float("-inf")
        self._error = ""
        self._installed = True
        self._xid = XidWatcher(link, clock) if cfg.xid_events else None
        self._energy = EnergyMeter(energy.price_per_kwh if energy else None,
                                   energy.currency if energy else "")  # kWh (issue 14)

    def collect(self) -> Collected:
        """One fast tick (plus the slow tier when due); see the module docstring."""
        now = self._clock.monotonic()
        if self._link.initialized and now >= self._reinit_at:
            self._reinit_at = float("inf")
            self._stop()
            self._next_init = now
        if not self._link.initialized and now >= self._next_init:
            self._init(now)
        for gpu in self._gpus.values():
            gpu.fast = None
        if self._link.initialized:
            slow_due = now >= self._next_slow
            for gpu in self._gpus.values():
                if gpu.up:
                    self._read(gpu, slow_due)
            if slow_due:
                self._next_slow = now + self._cfg.slow_interval_seconds
            if any(not gpu.up for gpu in self._gpus.values()):
                self._schedule_reinit(now)
        elif not self._installed and self._cfg.enabled is True:
            raise NotInstalled(self._error)
        return self._collected()

    def _init(self, now: float) -> None:
        """nvmlInit, enumerate GPUs, read static values, arm the XID thread."""
        try:
            self._link.init()
            self._driver = {
                "driver_version": self._link.text("nvmlSystemGetDriverVersion"),
                "cuda_driver_version": _cuda_version(self._link),
            }
            devices = self._link.devices(refresh=True)  # this collector re-opens its GPUs
            found = [gpu for device in devices if (gpu := self._discover(device))]
        except GpuwatchdError as exc:
            self._init_failed(now, exc)
            return
        seen = {gpu.uuid for gpu in found}
        for gpu in self._gpus.values():
            if gpu.uuid not in seen and gpu.up:
                gpu.up, gpu.error = False, "no longer enumerated by NVML"
        self._gpus.update({gpu.uuid: gpu for gpu in found})
        self._error, self._installed = "", True
        self._next_slow = float("-inf")
        lost = [gpu.index for gpu in self._gpus.values() if not gpu.up]
        log.info("NVML initialised: driver %s, %d GPU(s)%s", self._driver["driver_version"],
                 len(found), f", lost: {lost}" if lost else "")
        if not lost:
            self._backoff = FIRST_BACKOFF_SECONDS
        if self._xid is not None:
            self._xid.arm([(g.handle, g.index, g.uuid) for g in self._gpus.values() if g.up])

    def _discover(self, device: NvmlDevice) -> rd.GpuState | None:
        """One GPU's identity and static values; None if that GPU alone fails.

        A GPU lost after its UUID was read (fake libnvidia-ml: handle and UUID answer, the
        next call returns GPU_IS_LOST) is kept as down, and the other GPUs stay up.
        """
        index, handle, uuid = device.index, device.handle, device.uuid
        try:
            if device.failure is not None:  # its handle or UUID failed at enumeration
                raise device.failure
            gpu = self._gpus.get(uuid) or rd.GpuState(index=index, uuid=uuid)
            gpu.index, gpu.handle, gpu.error = index, handle, ""
            gpu.name = self._link.text("nvmlDeviceGetName", handle)
            gpu.unsupported.clear()
            gpu.identity, gpu.static = rd.read_static(self._link, gpu)
        except (Lost, Transient) as exc:
            if isinstance(exc, NotInstalled):
                raise
            log.error("GPU %d cannot be opened: %s", index, exc)
            if uuid:
                lost = self._gpus.setdefault(uuid, rd.GpuState(index=index, uuid=uuid))
                lost.up, lost.error = False, str(exc)
            return None
        gpu.up = True
        return gpu

    def _init_failed(self, now: float, exc: GpuwatchdError) -> None:
        self._link.shutdown()
        for gpu in self._gpus.values():
            gpu.up, gpu.error = False, str(exc)
        if isinstance(exc, NotInstalled):
            self._installed = False
            self._backoff = self._cfg.reinit_max_backoff_seconds
            if self._error != str(exc):
                log.info("no NVIDIA driver (%s): running without GPUs", exc)
        elif self._error != str(exc):
            log.warning("NVML init failed: %s; retrying in %.0f s", exc, self._backoff)
        self._error = str(exc)
        self._next_init = now + self._backoff
        self._backoff = min(self._backoff * 2, self._cfg.reinit_max_backoff_seconds)

    def _schedule_reinit(self, now: float) -> None:
        """A GPU is down: re-init after the backoff; the healthy GPUs are read until then."""
        if self._reinit_at == float("inf"):
            self._reinit_at = now + self._backoff
            self._backoff = min(self._backoff * 2, self._cfg.reinit_max_backoff_seconds)

    def _stop(self) -> None:
        if self._xid is not None:
            self._xid.disarm()
        self._link.shutdown()

    def _read(self, gpu: rd.GpuState, slow_due: bool) -> None:
        plausible = (self._cfg.plausible_min_celsius, self._cfg.plausible_max_celsius)
        try:
            fast = rd.read_fast(self._link, gpu, plausible,  # kept only if every call answers
                                self._clock.monotonic())
            if slow_due or gpu.slow is None:
                gpu.slow = gpu_mig.read(self._link, gpu, rd.read_slow(self._link, gpu))
        except Lost as exc:
            gpu.up, gpu.error = False, str(exc)
            log.error("GPU %d (%s) lost: %s", gpu.index, gpu.uuid, exc, extra={"GPU": gpu.uuid})
            return
        gpu.fast = fast

    def _collected(self) -> Collected:
        """This tick's readings (the single record) and the families rendered from them."""
        xids = self._xid.snapshot() if self._xid is not None else {}
        nvml = NvmlReading(
            up=self._link.initialized, driver_version=self._driver.get("driver_version", ""),
            error=self._error, cuda_driver_version=self._driver.get("cuda_driver_version", ""),
            errors=tuple(NvmlErrorCount(call, error, count)
                         for (call, error), count in sorted(self._link.errors.items())),
            xids=tuple(XidCount(index, uuid, xid, count, last)
                       for (index, uuid, xid), (count, last) in sorted(xids.items())))
        gpus = tuple(_reading(gpu) for gpu in self._gpus.values())
        families = gpu_metrics.render(nvml, gpus, known=bool(self._gpus) or nvml.up)
        energy = self._energy.observe(gpus, self._clock.monotonic(), self._clock.time())
        return Collected(readings=(nvml, *gpus, *energy),
                         families=(*families, *gpu_energy.render(energy)))

    def close(self) -> None:
        """Stop the XID thread and shut NVML down."""
        self._stop()

    @property
    def link(self) -> NvmlLink:
        """The NVML link (benchmarks read its call counters)."""
        return self._link


def _reading(gpu: rd.GpuState) -> GpuReading:
    return GpuReading(
        index=gpu.index, uuid=gpu.uuid, name=gpu.name, up=gpu.up, error=gpu.error,
        identity=gpu.identity, static=gpu.static,
        fast=gpu.fast if gpu.up else None,
        slow=gpu.slow if gpu.up and gpu.fast is not None else None,
        implausible_readings_total=gpu.implausible)


def _cuda_version(link: NvmlLink) -> str:
    """CUDA driver API version, e.g. 12020 -> '12.2'; '' where the call is missing."""
    version = link.optional("nvmlSystemGetCudaDriverVersion_v2")
    if not version:
        return ""
    return f"{version // 1000}.{(version % 1000) // 10}"


def build(config: Config, hw: Hardware) -> Sequence[Scheduled]:
    """The registry factory: one GPU collector unless ``gpus.enabled`` is false."""
    cfg = config.gpus
    if cfg.enabled is False:
        return []
    collector = GpuCollector(nvml.lease(hw, cfg), hw.clock, cfg, config.energy)
    deadline = min(cfg.deadline_seconds, config.interval_seconds)
    return [Scheduled(collector, config.interval_seconds, deadline)]
