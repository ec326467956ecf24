"""A pynvml-compatible fake for the licence calls: real ctypes structs, real NVMLError codes.

Each GPU is a :class:`FakeLicenceGpu` whose fields the test changes between probes. The
licensable-features answer is built in pynvml's own ``c_nvmlGridLicensableFeatures_v4_t``
(productName comes back as bytes, as on a real driver), and the vGPU licence info in
``c_nvmlVgpuLicenseInfo_t``. ``versions`` says which ``nvmlDeviceGetGridLicensableFeatures``
symbols the "driver" has: a missing one raises ``NVMLError(FUNCTION_NOT_FOUND)``, as pynvml does
for a symbol absent from an older libnvidia-ml.so.1.
"""

from __future__ import annotations

import ctypes
import time
from dataclasses import dataclass, field

import pynvml

NVMLError = pynvml.NVMLError
VALID, PERMANENT, NOT_APPLICABLE, NOT_AVAILABLE, INVALID = 2, 4, 3, 0, 1


@dataclass
class FakeFeature:
    code: int = 1  # VGPU
    state: int = 1  # featureState: non-zero = licensed
    product: str = "NVIDIA Virtual Compute Server"
    enabled: int = 1
    expiry_status: int = VALID
    expiry: float | None = None  # epoch seconds (GMT fields are derived)


@dataclass
class FakeInstance:
    uuid: str
    vm_id: str = "vm-1"
    vgpu_type: str = "GRID A100-4C"
    state: int = 5  # NVML_GRID_LICENSE_STATE_LICENSED
    licensed: int = 1
    expiry: float | None = None


@dataclass
class FakeLicenceGpu:
    uuid: str
    mode: int | None = 2  # VGPU guest; None: NOT_SUPPORTED
    supported: int = 1
    features: list[FakeFeature] = field(default_factory=lambda: [FakeFeature()])
    features_error: int | None = None  # raise this NVML code from the features call
    instances: list[FakeInstance] = field(default_factory=list)
    bus_id: str = "00000000:00:07.0"
    name: str = "NVIDIA A100-4C"  # nvmlDeviceGetName: a guest's vGPU type (C-series: vCS)


def _expiry_struct(target: ctypes.Structure, status: int, when: float | None) -> None:
    target.status = status
    if when is not None:
        parts = time.gmtime(when)
        target.year, target.month, target.day = parts.tm_year, parts.tm_mon, parts.tm_mday
        target.hour, target.min, target.sec = parts.tm_hour, parts.tm_min, parts.tm_sec


class FakeLicenceNvml:
    """The pynvml subset the licence collector calls."""

    NVMLError = pynvml.NVMLError
    nvmlLib: object = "fake"

    def __init__(self, gpus: list[FakeLicenceGpu],
                 versions: tuple[str, ...] = ("_v4",)) -> None:
        self.gpus = gpus
        self.versions = set(versions)
        self.calls: list[str] = []
        self.lost: set[int] = set()
        self.init_error: int | None = None
        self.host_license_info_v2 = True  # False: a pre-R510 host driver

    # lifecycle and discovery
    def nvmlInit(self) -> None:
        self.calls.append("nvmlInit")
        if self.init_error is not None:
            raise NVMLError(self.init_error)

    def nvmlShutdown(self) -> None:
        self.calls.append("nvmlShutdown")

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def _gpu(self, handle: int) -> FakeLicenceGpu:
        if handle in self.lost:
            raise NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)
        return self.gpus[handle]

    def nvmlDeviceGetUUID(self, handle: int) -> str:
        return self._gpu(handle).uuid

    def nvmlDeviceGetName(self, handle: int) -> str:
        return self._gpu(handle).name

    def nvmlDeviceGetPciInfo(self, handle: int) -> pynvml.nvmlPciInfo_t:
        info = pynvml.nvmlPciInfo_t()
        info.busId = self._gpu(handle).bus_id.encode()
        return info

    def nvmlDeviceGetVirtualizationMode(self, handle: int) -> int:
        self.calls.append("nvmlDeviceGetVirtualizationMode")
        mode = self._gpu(handle).mode
        if mode is None:
            raise NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return mode

    # guest: licensable features
    def _features(self, handle: int, version: str) -> pynvml.c_nvmlGridLicensableFeatures_v4_t:
        self.calls.append("nvmlDeviceGetGridLicensableFeatures" + version)
        if version not in self.versions:
            raise NVMLError(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)
        gpu = self._gpu(handle)
        if gpu.features_error is not None:
            raise NVMLError(gpu.features_error)
        raw = pynvml.c_nvmlGridLicensableFeatures_v4_t()
        raw.isGridLicenseSupported = gpu.supported
        raw.licensableFeaturesCount = len(gpu.features)
        for i, feat in enumerate(gpu.features[:3]):
            item = raw.gridLicensableFeatures[i]
            item.featureCode, item.featureState = feat.code, feat.state
            item.productName = feat.product.encode()
            item.featureEnabled = feat.enabled
            _expiry_struct(item.licenseExpiry, feat.expiry_status, feat.expiry)
        return raw

    def nvmlDeviceGetGridLicensableFeatures_v4(self, handle: int) -> object:
        return self._features(handle, "_v4")

    def nvmlDeviceGetGridLicensableFeatures(self, handle: int) -> object:
        return self._features(handle, "")

    # host: vGPU instances
    def nvmlDeviceGetActiveVgpus(self, handle: int) -> list[int]:
        gpu = self._gpu(handle)
        if gpu.mode != pynvml.NVML_GPU_VIRTUALIZATION_MODE_HOST_VGPU:
            raise NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return [handle * 100 + i for i in range(len(gpu.instances))]

    def _instance(self, inst: int) -> FakeInstance:
        return self.gpus[inst // 100].instances[inst % 100]

    def nvmlVgpuInstanceGetUUID(self, inst: int) -> str:
        return self._instance(inst).uuid

    def nvmlVgpuInstanceGetVmID(self, inst: int) -> tuple[str, int]:
        return (self._instance(inst).vm_id, 0)

    def nvmlVgpuInstanceGetType(self, inst: int) -> int:
        return 7

    def nvmlVgpuTypeGetName(self, type_id: int) -> str:
        return "GRID A100-4C"

    def nvmlVgpuInstanceGetLicenseInfo_v2(self, inst: int) -> pynvml.c_nvmlVgpuLicenseInfo_t:
        if not self.host_license_info_v2:
            raise NVMLError(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)
        fake = self._instance(inst)
        info = pynvml.c_nvmlVgpuLicenseInfo_t()
        info.isLicensed, info.currentState = fake.licensed, fake.state
        _expiry_struct(info.licenseExpiry, VALID if fake.expiry else NOT_APPLICABLE,
                       fake.expiry)
        return info

    def nvmlVgpuInstanceGetLicenseStatus(self, inst: int) -> int:
        return self._instance(inst).licensed
