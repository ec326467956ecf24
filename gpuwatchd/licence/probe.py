"""The NVML side of the licence watch: virtualization mode, licensable features, vGPU instances.

Every call goes through :class:`gpuwatchd.links.nvml.NvmlLink`. Command-line equivalents:
``nvidia-smi -q`` sections "GPU Virtualization Mode" and "vGPU Software Licensed Product" in a
guest, ``nvidia-smi vgpu -q`` ("License Status" per vGPU) on a host.

``nvmlDeviceGetGridLicensableFeatures`` exists in four struct versions: v1 (code, state, info),
v2 (+ productName), v3 (+ featureEnabled), v4 (+ licenseExpiry, from the R470 / CUDA 11.4
header). The newest one the bindings and the driver both have is used: a binding without a
version raises nothing here (it is skipped), a driver without the symbol answers
``FUNCTION_NOT_FOUND`` (Unsupported), and the version that answered is remembered per GPU.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from gpuwatchd.errors import Refused, Transient, Unsupported
from gpuwatchd.licence.kinds import (
    ExpiryStatus,
    FeatureCode,
    HostLicenceState,
    VirtualizationMode,
    expiry_status,
    feature_code,
    host_state,
)
from gpuwatchd.links.nvml import NvmlLink

log = logging.getLogger(__name__)

FEATURE_CALLS = (
    "nvmlDeviceGetGridLicensableFeatures_v4",
    "nvmlDeviceGetGridLicensableFeatures_v3",
    "nvmlDeviceGetGridLicensableFeatures_v2",
    "nvmlDeviceGetGridLicensableFeatures",  # v4 in nvidia-ml-py >= 11.495, v3 in 11.450
)
MAX_FEATURES = 3  # NVML_GRID_LICENSE_FEATURE_MAX_COUNT


@dataclass(frozen=True)
class Feature:
    """One licensable feature as the guest driver reports it."""

    code: FeatureCode
    licensed: bool  # featureState != 0 ("non-zero if currently licensed")
    product: str = ""
    enabled: bool | None = None  # v3+: the feature gridd is configured for
    expiry_status: ExpiryStatus | None = None  # v4+
    expiry_timestamp_seconds: float | None = None  # only when expiry_status is VALID


@dataclass(frozen=True)
class VgpuInstance:
    """One vGPU instance on a host (``nvmlVgpuInstanceGetLicenseInfo_v2``)."""

    vgpu_uuid: str
    vm_id: str
    vgpu_type: str
    state: HostLicenceState
    licensed: bool
    expiry_status: ExpiryStatus | None = None
    expiry_timestamp_seconds: float | None = None


@dataclass(frozen=True)
class GpuProbe:
    """One GPU's licence facts from NVML.

    ``supported`` is False when the GPU has no licensing (the call is unsupported or
    ``isGridLicenseSupported`` is 0), None when the probe could not tell (``error`` says why).
    """

    mode: VirtualizationMode | None
    supported: bool | None
    version: int = 0
    features: tuple[Feature, ...] = ()
    instances: tuple[VgpuInstance, ...] = ()
    error: str = ""
    vgpu_type: str = ""  # in a vGPU guest, the GPU's name is its vGPU type ("GRID A100-4C")

    def chosen(self, feature_type: int | None = None) -> Feature | None:
        """The feature that matters: enabled, else FeatureType's, else licensed, else first."""
        for test in (lambda f: f.enabled,
                     lambda f: feature_type is not None and int(f.code) == feature_type,
                     lambda f: f.licensed):
            for feature in self.features:
                if test(feature):
                    return feature
        return self.features[0] if self.features else None


class LicenceProbe:
    """Reads the licence facts of each GPU; remembers the working feature-call per GPU."""

    def __init__(self, link: NvmlLink) -> None:
        self._link = link
        self._feature_call: dict[str, str] = {}  # uuid -> call name; "" = licensing unsupported
        self._vgpu_type: dict[str, str] = {}  # uuid -> vGPU type name (read once per init)

    def reset(self) -> None:
        """Forget what each GPU supports (after an NVML re-init)."""
        self._feature_call.clear()
        self._vgpu_type.clear()

    def probe(self, handle: Any, uuid: str) -> GpuProbe:
        """Probe one GPU. ``Lost`` propagates; every other failure is recorded in the result."""
        mode = self._mode(handle)
        if mode is not None and mode.is_host:
            return GpuProbe(mode, supported=False, instances=self._instances(handle))
        try:
            raw = self._features(handle, uuid)
        except (Refused, Transient) as exc:
            return GpuProbe(mode, supported=None, error=str(exc))
        if raw is None or not int(getattr(raw, "isGridLicenseSupported", 0)):
            return GpuProbe(mode, supported=False)
        features, version = _convert_features(raw)
        return GpuProbe(mode, supported=True, version=version, features=features,
                        vgpu_type=self._type_name(handle, uuid, mode))

    def _type_name(self, handle: Any, uuid: str, mode: VirtualizationMode | None) -> str:
        """``nvidia-smi --query-gpu=name``: a guest's vGPU type; "" outside a vGPU guest."""
        if mode is not VirtualizationMode.VGPU:
            return ""
        if uuid not in self._vgpu_type:
            self._vgpu_type[uuid] = _text(self._link.optional("nvmlDeviceGetName", handle))
        return self._vgpu_type[uuid]

    def _mode(self, handle: Any) -> VirtualizationMode | None:
        """``nvidia-smi -q`` "Virtualization Mode"; None where the GPU cannot say."""
        value = self._link.optional("nvmlDeviceGetVirtualizationMode", handle)
        if value is None:
            return None
        try:
            return VirtualizationMode(int(value))
        except ValueError:
            return None

    def _features(self, handle: Any, uuid: str) -> Any:
        """The newest licensable-features struct, or None if licensing is unsupported."""
        known = self._feature_call.get(uuid)
        if known == "":
            return None
        for name in (known,) if known else FEATURE_CALLS:
            if getattr(self._link.lib, name, None) is None:
                continue  # not in this nvidia-ml-py
            try:
                raw = self._link.call(name, handle)
            except Unsupported:
                continue  # FUNCTION_NOT_FOUND (older driver) or NOT_SUPPORTED: try older
            self._feature_call[uuid] = name
            return raw
        self._feature_call[uuid] = ""
        log.debug("GPU %s: no GRID licensable features (licensing not applicable)", uuid)
        return None

    def _instances(self, handle: Any) -> tuple[VgpuInstance, ...]:
        """Per vGPU instance licence on a host; () where the host cannot list them."""
        ids = self._link.optional("nvmlDeviceGetActiveVgpus", handle) or []
        return tuple(self._instance(inst) for inst in ids)

    def _instance(self, inst: Any) -> VgpuInstance:
        vm = self._link.optional("nvmlVgpuInstanceGetVmID", inst)
        type_id = self._link.optional("nvmlVgpuInstanceGetType", inst)
        type_name = (self._link.optional("nvmlVgpuTypeGetName", type_id)
                     if type_id is not None else None)
        uuid = _text(self._link.optional("nvmlVgpuInstanceGetUUID", inst))
        vm_id = _text(vm[0] if isinstance(vm, tuple) else vm)
        info = self._link.optional("nvmlVgpuInstanceGetLicenseInfo_v2", inst)
        if info is not None:
            status, stamp = convert_expiry(info.licenseExpiry)
            return VgpuInstance(uuid, vm_id, _text(type_name), host_state(info.currentState),
                                bool(info.isLicensed), status, stamp)
        old = self._link.optional("nvmlVgpuInstanceGetLicenseStatus", inst)  # before R510
        state = (HostLicenceState.UNKNOWN if old is None else
                 HostLicenceState.LICENSED if old else HostLicenceState.UNLICENSED)
        return VgpuInstance(uuid, vm_id, _text(type_name), state, bool(old))


def _convert_features(raw: Any) -> tuple[tuple[Feature, ...], int]:
    """The struct -> Features; the version is read from the fields the struct has."""
    count = max(0, min(int(getattr(raw, "licensableFeaturesCount", 0)), MAX_FEATURES))
    out: list[Feature] = []
    version = 1
    for i in range(count):
        item = raw.gridLicensableFeatures[i]
        enabled = getattr(item, "featureEnabled", None)
        expiry = getattr(item, "licenseExpiry", None)
        version = 4 if expiry is not None else 3 if enabled is not None else (
            2 if hasattr(item, "productName") else 1)
        status, stamp = convert_expiry(expiry) if expiry is not None else (None, None)
        out.append(Feature(code=feature_code(item.featureCode), licensed=bool(item.featureState),
                           product=_text(getattr(item, "productName", b"")),
                           enabled=None if enabled is None else bool(enabled),
                           expiry_status=status, expiry_timestamp_seconds=stamp))
    return tuple(out), version


def convert_expiry(expiry: Any) -> tuple[ExpiryStatus, float | None]:
    """``c_nvmlGridLicenseExpiry_t`` (GMT fields + status) -> (status, epoch seconds or None)."""
    status = expiry_status(getattr(expiry, "status", ExpiryStatus.INVALID))
    if status is not ExpiryStatus.VALID:
        return status, None
    try:
        when = dt.datetime(int(expiry.year), int(expiry.month), int(expiry.day), int(expiry.hour),
                           int(expiry.min), int(expiry.sec), tzinfo=dt.timezone.utc)
    except (ValueError, TypeError, OverflowError):
        return ExpiryStatus.INVALID, None
    return status, when.timestamp()


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.split(b"\0", 1)[0].decode(errors="replace").strip()
    return str(value).strip()
