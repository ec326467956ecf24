"""MIG (Multi-Instance GPU) reads for the slow tier: the mode, and one record per MIG device.

nvidia-smi equivalents: ``nvidia-smi --query-gpu=mig.mode.current,mig.mode.pending
--format=csv``, ``nvidia-smi -L`` (MIG UUIDs), ``nvidia-smi mig -lgi`` / ``-lci``.

What NVML gives, and to whom (NVML API reference, "Multi Instance GPU Management"):
- ``nvmlDeviceGetMigMode`` on the parent: [current, pending]; NOT_SUPPORTED on a GPU without
  MIG (everything before Ampere, GA10x cards): the whole MIG read is then skipped for good
  (until re-init), like any unsupported reading;
- ``nvmlDeviceGetMaxMigDeviceCount`` and ``nvmlDeviceGetMigDeviceHandleByIndex(parent, i)``:
  the MIG devices; an empty slot answers NOT_FOUND (it is skipped, not remembered: instances
  come and go when the GPU operator's mig-manager repartitions the GPU);
- on the MIG handle: ``nvmlDeviceGetUUID`` (``MIG-...``), ``nvmlDeviceGetGpuInstanceId``,
  ``nvmlDeviceGetComputeInstanceId``, ``nvmlDeviceGetMemoryInfo`` (the GPU instance's memory)
  and ``nvmlDeviceGetAttributes_v2`` (slices, multiprocessors, memory size: the profile name);
- ``nvmlDeviceGetGpuInstanceById`` + ``nvmlGpuInstanceGetInfo`` (placement) "requires a
  privileged user": unprivileged (the DaemonSet's uid 65534) they answer NO_PERMISSION and the
  placement is absent.
Utilisation (``nvmlDeviceGetUtilizationRates``) is NOT_SUPPORTED on MIG devices and on a
MIG-enabled parent; power, temperature and clocks exist for the parent only. None of those is
read per instance, so none is duplicated per instance (dcgm-exporter#353).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from gpuwatchd.collectors.gpu_read import GpuState, ask
from gpuwatchd.errors import Refused, Transient, Unsupported
from gpuwatchd.links.nvml import NvmlLink
from gpuwatchd.model import GpuSlow, MigInstance


def read(link: NvmlLink, gpu: GpuState, slow: GpuSlow) -> GpuSlow:
    """``slow`` with the MIG mode and, where MIG is on, the MIG devices."""
    current, pending = read_mode(link, gpu)
    instances = read_instances(link, gpu) if current else ()
    return dataclasses.replace(slow, mig_mode_current=current, mig_mode_pending=pending,
                               mig_instances=instances)


def read_mode(link: NvmlLink, gpu: GpuState) -> tuple[bool | None, bool | None]:
    """(current, pending) MIG mode; (None, None) on a GPU without MIG."""
    mode = ask(link, gpu, "mig_mode", "nvmlDeviceGetMigMode", gpu.handle)
    if mode is None:
        return None, None
    return bool(mode[0]), bool(mode[1])


def read_instances(link: NvmlLink, gpu: GpuState) -> tuple[MigInstance, ...]:
    """Every MIG device of a GPU whose current MIG mode is on, in GPU-instance order."""
    count = ask(link, gpu, "mig_count", "nvmlDeviceGetMaxMigDeviceCount", gpu.handle) or 0
    found = []
    for slot in range(count):
        try:
            handle = link.call("nvmlDeviceGetMigDeviceHandleByIndex", gpu.handle, slot)
        except (Unsupported, Refused, Transient):  # NOT_FOUND: an empty slot
            continue
        instance = _instance(link, gpu, handle)
        if instance is not None:
            found.append(instance)
    return tuple(sorted(found, key=lambda m: (m.gpu_instance, m.compute_instance)))


def _instance(link: NvmlLink, gpu: GpuState, handle: Any) -> MigInstance | None:
    """One MIG device; None if its identity does not answer (it is being destroyed)."""
    try:
        gi = int(link.call("nvmlDeviceGetGpuInstanceId", handle))
        ci = int(link.call("nvmlDeviceGetComputeInstanceId", handle))
        uuid = link.text("nvmlDeviceGetUUID", handle)
    except (Unsupported, Refused, Transient):
        return None
    attrs = link.optional("nvmlDeviceGetAttributes_v2", handle)
    memory = link.optional("nvmlDeviceGetMemoryInfo", handle)
    start, size = _placement(link, gpu, gi)
    slices = getattr(attrs, "gpuInstanceSliceCount", None)
    compute = getattr(attrs, "computeInstanceSliceCount", None)
    return MigInstance(
        gpu_instance=gi, compute_instance=ci, uuid=uuid,
        profile=profile_name(slices, compute, getattr(attrs, "memorySizeMB", None)),
        slices=slices, compute_slices=compute,
        multiprocessors=getattr(attrs, "multiprocessorCount", None),
        memory_total_bytes=memory.total if memory is not None else None,
        memory_used_bytes=memory.used if memory is not None else None,
        memory_free_bytes=memory.free if memory is not None else None,
        placement_start=start, placement_size=size)


def _placement(link: NvmlLink, gpu: GpuState, gpu_instance: int) -> tuple[int | None, int | None]:
    """The GPU instance's (start, size) in memory slices; (None, None) unprivileged."""
    if "mig_placement" in gpu.unsupported:
        return None, None
    try:
        instance = link.call("nvmlDeviceGetGpuInstanceById", gpu.handle, gpu_instance)
    except (Unsupported, Refused):  # NO_PERMISSION unprivileged: asked once per init
        gpu.unsupported.add("mig_placement")
        return None, None
    except Transient:
        return None, None
    info = link.optional("nvmlGpuInstanceGetInfo", instance)
    if info is None:
        return None, None
    return int(info.placement.start), int(info.placement.size)


def profile_name(slices: int | None, compute_slices: int | None,
                 memory_mib: int | None) -> str:
    """nvidia-smi's profile name from the attributes: ``3g.40gb``, ``1c.3g.40gb``; '' if unknown.

    The memory part is the profile's nominal size: NVML reports a little less (A100 80GB:
    1g.10gb 9.5 GiB, 3g.40gb 39.25 GiB, 7g.80gb 79.25 GiB; A100 40GB 1g.5gb 4.75 GiB), so the
    GiB are rounded up.
    """
    if not slices or memory_mib is None:
        return ""
    name = f"{slices}g.{math.ceil(memory_mib / 1024)}gb"
    if compute_slices and compute_slices < slices:
        name = f"{compute_slices}c.{name}"
    return name
