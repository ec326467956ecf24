"""MIG for the simulated NVML (:mod:`gpuwatchd.sim.nvml`): an A100 80GB and its MIG devices.

The ``--demo-profile cluster`` node (:func:`gpuwatchd.sim.node.demo_node`) runs A100-SXM4-80GB
GPUs; GPU 0 is in MIG mode with mixed profiles, :data:`DEMO_LAYOUT`: 3g.40gb + 2g.20gb +
1g.10gb x2 (7 of 7 compute slices, 8 of 8 memory slices). The other GPUs have MIG off.

Answers as NVML gives them (NVML API reference, "Multi Instance GPU Management"):
``nvmlDeviceGetMigMode`` [current, pending]; ``nvmlDeviceGetMaxMigDeviceCount`` 7 (A100);
``nvmlDeviceGetMigDeviceHandleByIndex`` NOT_FOUND past the last MIG device; on a MIG handle
the UUID (``MIG-...``), GPU/compute instance ids, memory and attributes, and INVALID_ARGUMENT
for the parent-only calls (power, temperature, clocks); the parent's utilisation is
NOT_SUPPORTED while MIG is on. Profile ids, slice counts, multiprocessors and memory sizes
are A100 80GB's (``nvidia-smi mig -lgip``: 1g.10gb 9.5 GiB, 2g.20gb 19.5 GiB, 3g.40gb
39.25 GiB; 14 SMs per slice); the thermal constants of :data:`A100_80GB` are typical
SXM4 figures (400 W TDP, slowdown 89 C, shutdown 92 C), not checked against a capture.
"""

from __future__ import annotations

import ctypes
import hashlib
import threading
from dataclasses import dataclass
from typing import Any

import pynvml

from gpuwatchd.sim.plant import GpuSpec

A100_80GB = GpuSpec(
    name="NVIDIA A100-SXM4-80GB", slowdown_celsius=89.0, shutdown_celsius=92.0,
    power_limit_default_watts=400.0, power_limit_min_watts=100.0, power_limit_max_watts=400.0,
    idle_watts=60.0, die_kelvin_per_watt=0.03, conv_kelvin_per_watt=0.05)
A100_MEMORY_TOTAL_BYTES = 81_920 * 2**20
A100_MAX_MIG_DEVICES = 7
_MIG_BASE, _MIG_GPU_STRIDE, _MIG_STRIDE = 0x7A7A_0000, 0x1000, 0x10


@dataclass(frozen=True)
class MigSlot:
    """One simulated MIG device: a GPU instance with one compute instance spanning it."""

    gpu_instance: int
    profile_id: int  # NVML's GPU instance profile id (nvidia-smi mig -lgip "ID")
    slices: int
    multiprocessors: int
    memory_mib: int
    placement_start: int
    placement_size: int
    compute_instance: int = 0


DEMO_LAYOUT = (
    MigSlot(gpu_instance=1, profile_id=9, slices=3, multiprocessors=42, memory_mib=40_192,
            placement_start=0, placement_size=4),
    MigSlot(gpu_instance=5, profile_id=14, slices=2, multiprocessors=28, memory_mib=19_968,
            placement_start=4, placement_size=2),
    MigSlot(gpu_instance=13, profile_id=19, slices=1, multiprocessors=14, memory_mib=9_728,
            placement_start=6, placement_size=1),
    MigSlot(gpu_instance=14, profile_id=19, slices=1, multiprocessors=14, memory_mib=9_728,
            placement_start=7, placement_size=1),
)


class GpuInstanceHandle:
    """An opaque ``nvmlGpuInstance_t`` (GPU index, GPU instance id)."""

    def __init__(self, index: int, gpu_instance: int) -> None:
        self.index, self.gpu_instance = index, gpu_instance


def mig_handle(index: int, slot: int) -> object:
    """The ``c_nvmlDevice_t`` of MIG device ``slot`` of GPU ``index`` (never dereferenced)."""
    address = _MIG_BASE + _MIG_GPU_STRIDE * index + _MIG_STRIDE * (slot + 1)
    return ctypes.cast(ctypes.c_void_p(address), pynvml.c_nvmlDevice_t)


def mig_of(handle: object) -> tuple[int, int] | None:
    """(GPU index, slot) if ``handle`` is a MIG handle of :func:`mig_handle`, else None."""
    try:
        address = ctypes.cast(handle, ctypes.c_void_p).value or 0  # type: ignore[arg-type]
    except (TypeError, ctypes.ArgumentError):
        return None
    index, rest = divmod(address - _MIG_BASE, _MIG_GPU_STRIDE)
    slot, odd = divmod(rest, _MIG_STRIDE)
    if address < _MIG_BASE or odd or slot < 1 or index >= 64:
        return None
    return index, slot - 1


def mig_uuid(index: int, slot: MigSlot) -> str:
    """A deterministic MIG device UUID (the format of driver R470 and later)."""
    d = hashlib.sha256(f"gpuwatchd-sim-mig-{index}-{slot.gpu_instance}".encode()).hexdigest()
    return f"MIG-{d[:8]}-{d[8:12]}-{d[12:16]}-{d[16:20]}-{d[20:32]}"


def attributes(slot: MigSlot) -> object:
    """``nvmlDeviceGetAttributes_v2`` of the MIG device."""
    return pynvml.c_nvmlDeviceAttributes(
        multiprocessorCount=slot.multiprocessors, sharedCopyEngineCount=slot.slices,
        sharedDecoderCount=slot.slices // 2, sharedEncoderCount=0, sharedJpegCount=0,
        sharedOfaCount=0, gpuInstanceSliceCount=slot.slices,
        computeInstanceSliceCount=slot.slices, memorySizeMB=slot.memory_mib)


def memory(slot: MigSlot, busy: float) -> object:
    """``nvmlDeviceGetMemoryInfo`` of the MIG device: its GPU instance's memory, ``busy`` 0-1."""
    total = slot.memory_mib * 2**20
    used = int((64 + 0.7 * busy * slot.memory_mib) * 2**20)
    return pynvml.c_nvmlMemory_t(total=total, free=total - used, used=used)


def gpu_instance_info(parent: object, slot: MigSlot) -> object:
    """``nvmlGpuInstanceGetInfo``: the parent handle, id, profile id and placement."""
    return pynvml.c_nvmlGpuInstanceInfo_t(
        device=parent, id=slot.gpu_instance, profileId=slot.profile_id,
        placement=pynvml.c_nvmlGpuInstancePlacement_t(start=slot.placement_start,
                                                      size=slot.placement_size))


class MigCalls:
    """The MIG calls of :class:`gpuwatchd.sim.nvml.SimNvml` (its base class): the parent's
    (mode, MIG device handles, GPU instances) and those that take a MIG handle."""

    mig: dict[int, tuple[MigSlot, ...]]
    mig_capable: bool
    _lost: set[int]
    _lock: threading.Lock
    _handles: list[Any]

    def _enter(self, name: str, handle: Any = None) -> int | None:
        raise NotImplementedError  # SimNvml's gate: counts, hangs, lost GPUs

    def _index(self, handle: Any) -> int:
        raise NotImplementedError

    def _device_call(self, name: str, handle: Any, *args: Any) -> Any:
        raise NotImplementedError

    def _busy(self, index: int) -> float:
        raise NotImplementedError

    def _mig_slot(self, name: str, handle: Any) -> tuple[int, MigSlot] | None:
        """(GPU index, MIG slot) for a MIG handle, else None (a parent handle)."""
        found = mig_of(handle)
        if found is None:
            return None
        self._enter(name)
        index, slot = found
        slots = self.mig.get(index, ())
        with self._lock:
            if index in self._lost:
                raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)
        if slot >= len(slots):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return index, slots[slot]

    def _parent(self, name: str, handle: Any) -> int:
        index = self._enter(name, handle)
        if index is None:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        if not self.mig_capable:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return index

    def nvmlDeviceGetMigMode(self, handle: Any) -> list[int]:
        index = self._parent("nvmlDeviceGetMigMode", handle)
        mode = int(index in self.mig)
        return [mode, mode]

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: Any) -> int:
        self._parent("nvmlDeviceGetMaxMigDeviceCount", handle)
        return A100_MAX_MIG_DEVICES

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: Any, slot: int) -> Any:
        index = self._parent("nvmlDeviceGetMigDeviceHandleByIndex", handle)
        if index not in self.mig:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)  # MIG is off
        if not 0 <= slot < len(self.mig[index]):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_FOUND)
        return mig_handle(index, slot)

    def nvmlDeviceGetGpuInstanceById(self, handle: Any, gpu_instance: int) -> Any:
        index = self._parent("nvmlDeviceGetGpuInstanceById", handle)
        if not any(s.gpu_instance == gpu_instance for s in self.mig.get(index, ())):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_FOUND)
        return GpuInstanceHandle(index, gpu_instance)

    def nvmlGpuInstanceGetInfo(self, instance: Any) -> Any:
        self._enter("nvmlGpuInstanceGetInfo")
        if not isinstance(instance, GpuInstanceHandle):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        slot = next(s for s in self.mig[instance.index]
                    if s.gpu_instance == instance.gpu_instance)
        return gpu_instance_info(self._handles[instance.index], slot)

    def _mig_only(self, name: str, handle: Any) -> tuple[int, MigSlot]:
        found = self._mig_slot(name, handle)
        if found is None:  # a parent handle: "not a MIG device"
            self._enter(name, handle)
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return found

    def nvmlDeviceGetGpuInstanceId(self, handle: Any) -> int:
        return self._mig_only("nvmlDeviceGetGpuInstanceId", handle)[1].gpu_instance

    def nvmlDeviceGetComputeInstanceId(self, handle: Any) -> int:
        return self._mig_only("nvmlDeviceGetComputeInstanceId", handle)[1].compute_instance

    def nvmlDeviceGetAttributes_v2(self, handle: Any) -> Any:
        return attributes(self._mig_only("nvmlDeviceGetAttributes_v2", handle)[1])

    def nvmlDeviceGetUUID(self, handle: Any) -> str:
        found = self._mig_slot("nvmlDeviceGetUUID", handle)
        if found is None:
            return str(self._device_call("nvmlDeviceGetUUID", handle))
        return mig_uuid(*found)

    def nvmlDeviceGetMemoryInfo(self, handle: Any, version: int | None = None) -> Any:
        found = self._mig_slot("nvmlDeviceGetMemoryInfo", handle)
        if found is None:
            return self._device_call("nvmlDeviceGetMemoryInfo", handle, version)
        index, slot = found
        return memory(slot, self._busy(index))

    def nvmlDeviceGetUtilizationRates(self, handle: Any) -> Any:
        """NOT_SUPPORTED on a MIG-enabled GPU (NVML has no whole-GPU utilisation then)."""
        try:
            mig_on = self._index(handle) in self.mig
        except pynvml.NVMLError:
            mig_on = False
        if mig_on:
            self._enter("nvmlDeviceGetUtilizationRates", handle)
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return self._device_call("nvmlDeviceGetUtilizationRates", handle)
