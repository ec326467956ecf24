"""The NVML licence probe over a pynvml-compatible fake (real structs, real NVMLError codes)."""

from __future__ import annotations

import pynvml
import pytest

from gpuwatchd.errors import Lost
from gpuwatchd.licence.kinds import (
    ExpiryStatus,
    FeatureCode,
    HostLicenceState,
    VirtualizationMode,
    expiry_status,
)
from gpuwatchd.licence.probe import LicenceProbe, convert_expiry
from gpuwatchd.links.nvml import NvmlSession
from tests.fakes.licence_nvml import (
    INVALID,
    NOT_APPLICABLE,
    NOT_AVAILABLE,
    PERMANENT,
    FakeFeature,
    FakeInstance,
    FakeLicenceGpu,
    FakeLicenceNvml,
)

EXPIRY = 1_750_265_340.0  # 2025-06-18 16:49:00 GMT


def probe_one(gpu: FakeLicenceGpu, versions: tuple[str, ...] = ("_v4",)):
    lib = FakeLicenceNvml([gpu], versions)
    return LicenceProbe(NvmlSession(lib).lease()).probe(0, gpu.uuid), lib


def test_pynvml_expiry_constants_are_tuples_and_the_project_enum_copes() -> None:
    """The nvidia-ml-py trap the project works around: the constants are 1-tuples."""
    assert pynvml.NVML_GRID_LICENSE_EXPIRY_VALID == (2,)
    assert expiry_status(pynvml.NVML_GRID_LICENSE_EXPIRY_VALID) is ExpiryStatus.VALID
    assert expiry_status(4) is ExpiryStatus.PERMANENT
    assert expiry_status("garbage") is ExpiryStatus.INVALID


@pytest.mark.parametrize(("code", "feature"), [
    (1, FeatureCode.VGPU), (2, FeatureCode.NVIDIA_RTX), (3, FeatureCode.GAMING),
    (4, FeatureCode.COMPUTE), (5, FeatureCode.VGAMEDEV), (9, FeatureCode.UNKNOWN)])
def test_each_feature_code_and_bytes_product_name(code: int, feature: FeatureCode) -> None:
    gpu = FakeLicenceGpu("GPU-a", features=[FakeFeature(code=code, expiry=EXPIRY)])
    result, _ = probe_one(gpu)
    assert result.supported is True
    assert result.version == 4
    chosen = result.chosen()
    assert chosen is not None
    assert chosen.code is feature
    assert chosen.product == "NVIDIA Virtual Compute Server"  # decoded from c_char bytes


@pytest.mark.parametrize(("status", "when", "want_status", "want_stamp"), [
    (2, EXPIRY, ExpiryStatus.VALID, EXPIRY),
    (2, 1_000_000_000.0, ExpiryStatus.VALID, 1_000_000_000.0),  # a date in the past
    (PERMANENT, None, ExpiryStatus.PERMANENT, None),
    (NOT_APPLICABLE, None, ExpiryStatus.NOT_APPLICABLE, None),
    (NOT_AVAILABLE, None, ExpiryStatus.NOT_AVAILABLE, None),
    (INVALID, None, ExpiryStatus.INVALID, None),
])
def test_expiry_kinds(status: int, when: float | None, want_status: ExpiryStatus,
                      want_stamp: float | None) -> None:
    gpu = FakeLicenceGpu("GPU-a", features=[FakeFeature(expiry_status=status, expiry=when)])
    result, _ = probe_one(gpu)
    feature = result.chosen()
    assert feature is not None
    assert feature.expiry_status is want_status
    assert feature.expiry_timestamp_seconds == want_stamp


def test_valid_status_with_impossible_date_reads_invalid() -> None:
    struct = pynvml.c_nvmlGridLicenseExpiry_t()
    struct.status, struct.year, struct.month, struct.day = 2, 2025, 13, 40
    assert convert_expiry(struct) == (ExpiryStatus.INVALID, None)


def test_unlicensed_feature_and_selection_order() -> None:
    """The enabled feature wins over a licensed but not enabled one."""
    gpu = FakeLicenceGpu("GPU-a", features=[
        FakeFeature(code=2, state=1, enabled=0, product="NVIDIA RTX Virtual Workstation"),
        FakeFeature(code=4, state=0, enabled=1)])
    result, _ = probe_one(gpu)
    chosen = result.chosen()
    assert chosen is not None and chosen.code is FeatureCode.COMPUTE and not chosen.licensed


def test_older_driver_falls_back_and_remembers_the_version() -> None:
    """No _v4 symbol in the driver: the plain call answers; the next probe asks only it."""
    gpu = FakeLicenceGpu("GPU-a")
    lib = FakeLicenceNvml([gpu], versions=("",))
    probe = LicenceProbe(NvmlSession(lib).lease())
    first = probe.probe(0, "GPU-a")
    assert first.supported is True
    assert lib.calls.count("nvmlDeviceGetGridLicensableFeatures_v4") == 1
    lib.calls.clear()
    probe.probe(0, "GPU-a")
    assert "nvmlDeviceGetGridLicensableFeatures_v4" not in lib.calls
    assert lib.calls.count("nvmlDeviceGetGridLicensableFeatures") == 1


def test_not_supported_is_not_applicable_and_not_asked_again() -> None:
    gpu = FakeLicenceGpu("GPU-a", mode=0, features_error=pynvml.NVML_ERROR_NOT_SUPPORTED)
    lib = FakeLicenceNvml([gpu], versions=("_v4", ""))
    probe = LicenceProbe(NvmlSession(lib).lease())
    assert probe.probe(0, "GPU-a").supported is False
    asked = len([c for c in lib.calls if "Licensable" in c])
    probe.probe(0, "GPU-a")
    assert len([c for c in lib.calls if "Licensable" in c]) == asked
    probe.reset()
    probe.probe(0, "GPU-a")
    assert len([c for c in lib.calls if "Licensable" in c]) > asked


def test_licensing_unsupported_flag() -> None:
    result, _ = probe_one(FakeLicenceGpu("GPU-a", mode=0, supported=0))
    assert result.supported is False
    assert result.mode is VirtualizationMode.NONE


def test_refused_or_transient_is_unknown_and_lost_propagates() -> None:
    result, _ = probe_one(FakeLicenceGpu("GPU-a", features_error=pynvml.NVML_ERROR_NO_PERMISSION))
    assert result.supported is None
    assert "no_permission" in result.error
    result, _ = probe_one(FakeLicenceGpu("GPU-a", features_error=pynvml.NVML_ERROR_TIMEOUT))
    assert result.supported is None
    with pytest.raises(Lost):
        probe_one(FakeLicenceGpu("GPU-a", features_error=pynvml.NVML_ERROR_GPU_IS_LOST))


def test_mode_not_supported_still_probes_features() -> None:
    result, _ = probe_one(FakeLicenceGpu("GPU-a", mode=None))
    assert result.mode is None
    assert result.supported is True


def test_host_reads_each_vgpu_instance() -> None:
    gpu = FakeLicenceGpu("GPU-host", mode=3, instances=[
        FakeInstance("vgpu-1", state=5, licensed=1, expiry=EXPIRY),
        FakeInstance("vgpu-2", vm_id="vm-2", state=3, licensed=0)])
    result, lib = probe_one(gpu)
    assert result.mode is VirtualizationMode.HOST_VGPU
    assert result.supported is False  # the host GPU itself holds no guest licence
    assert not any("Licensable" in c for c in lib.calls)
    one, two = result.instances
    assert (one.vgpu_uuid, one.state, one.licensed) == ("vgpu-1", HostLicenceState.LICENSED, True)
    assert one.expiry_timestamp_seconds == EXPIRY
    assert one.vgpu_type == "GRID A100-4C"
    assert (two.vm_id, two.state) == ("vm-2", HostLicenceState.UNLICENSED_RESTRICTED)
    assert two.state.text == "Unlicensed (Restricted)"
    assert two.expiry_status is ExpiryStatus.NOT_APPLICABLE


def test_host_before_r510_uses_the_deprecated_status() -> None:
    gpu = FakeLicenceGpu("GPU-host", mode=3, instances=[FakeInstance("vgpu-1", licensed=0)])
    lib = FakeLicenceNvml([gpu])
    lib.host_license_info_v2 = False
    result = LicenceProbe(NvmlSession(lib).lease()).probe(0, "GPU-host")
    assert result.instances[0].state is HostLicenceState.UNLICENSED
