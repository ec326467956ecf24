"""The licence collector through the real nvidia-ml-py over the fake libnvidia-ml.so.1 (C).

NvmlLink -> pynvml -> ctypes -> ``nvmlDeviceGetVirtualizationMode`` and
``nvmlDeviceGetGridLicensableFeatures_v4`` with nvml.h's struct layout: the product name comes
back as bytes from a ``c_char`` array, the expiry as GMT fields plus a status byte, exactly as
on a vGPU guest.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pynvml
import pytest

from gpuwatchd import config as cfgmod
from gpuwatchd.clock import ManualClock
from gpuwatchd.collectors.licence import LicenceCollector
from gpuwatchd.licence.journal import QueueLineSource
from gpuwatchd.licence.sources import LicenceSources
from gpuwatchd.links.nvml import NvmlSession
from gpuwatchd.model import Collected, LicenceReading
from tests.fakes.fakenvml import FakeNvmlBuildError, FakeNvmlState, build_fake_nvml, reset_pynvml
from tests.fakes.licence_runner import FakeRunner

pytestmark = pytest.mark.peer
EXPIRY = 1_750_265_340  # 2025-06-18 16:49:00 GMT
NOW = EXPIRY - 6 * 3600


@pytest.fixture(scope="module")
def lib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        return build_fake_nvml(tmp_path_factory.mktemp("fakenvml-licence"))
    except FakeNvmlBuildError as exc:
        pytest.fail(str(exc), pytrace=False)


def _reset(lib: Path) -> None:
    reset_pynvml(lib)


@pytest.fixture
def state(tmp_path: Path, lib: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeNvmlState]:
    st = FakeNvmlState(tmp_path / "nvml.state")
    st.gpus[0].update({"virt_mode": 2, "grid.supported": 1, "grid.count": 1,
                       "grid.0.code": 4, "grid.0.state": 1, "grid.0.enabled": 1,
                       "grid.0.product": "NVIDIA Virtual Compute Server",
                       "grid.0.expiry_status": 2, "grid.0.expiry": EXPIRY})
    st.write()  # GPU 1 has no licensing keys: NOT_SUPPORTED, like bare metal
    monkeypatch.setenv("FAKE_NVML_STATE", str(st.path))
    _reset(lib)
    yield st
    _reset(lib)


def make(tmp_path: Path, lib: Path) -> tuple[LicenceCollector, ManualClock]:
    root = tmp_path / "root"
    os.makedirs(root / "etc/nvidia/ClientConfigToken")
    (root / "etc/nvidia/gridd.conf").write_text("FeatureType=1\n")
    (root / "etc/nvidia/ClientConfigToken/client_configuration_token_1.tok").write_text("x")
    clock = ManualClock(start_wall=NOW)
    cfg = cfgmod.loads("licence: {remediation: {state_file: null}}\n").licence
    sources = LicenceSources(runner=FakeRunner(), journal=lambda _c: QueueLineSource(),
                             root=str(root), adjtimex=lambda: True)
    return LicenceCollector(NvmlSession(pynvml, str(lib)).lease(), clock, cfg, sources), clock


def series(out: Collected, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {frozenset(s.labels): s.value for f in out.families if f.name == name
            for s in f.samples}


def test_guest_and_bare_metal_through_real_pynvml(tmp_path: Path, lib: Path,
                                                  state: FakeNvmlState) -> None:
    collector, clock = make(tmp_path, lib)
    try:
        out = collector.collect()
        uuid0, uuid1 = state.gpus[0]["uuid"], state.gpus[1]["uuid"]
        modes = series(out, "gpuwatchd_vgpu_virtualization_mode")
        assert modes == {frozenset({("gpu", "0"), ("uuid", uuid0), ("mode", "vgpu")}): 1.0}
        expiry = series(out, "gpuwatchd_vgpu_licence_expiry_timestamp_seconds")
        assert expiry == {frozenset({("gpu", "0"), ("uuid", uuid0)}): EXPIRY}
        (gpu0,) = [r for r in out.readings if isinstance(r, LicenceReading)]
        assert (gpu0.uuid, gpu0.state, gpu0.feature, gpu0.product) == (
            uuid0, "licensed", "compute", "NVIDIA Virtual Compute Server")
        supported = series(out, "gpuwatchd_vgpu_licence_supported")
        assert supported[frozenset({("gpu", "1"), ("uuid", uuid1)})] == 0.0

        state.gpus[0].update({"grid.0.state": 0})  # the lease is gone
        state.write()
        clock.advance(60)
        (gpu0,) = [r for r in collector.collect().readings if isinstance(r, LicenceReading)]
        assert (gpu0.state, gpu0.unlicensed_since_timestamp_seconds) == ("unlicensed_grace",
                                                                         clock.time())
        state.gpus[0].update({"grid.0.state": 1, "grid.0.expiry_status": 4})  # permanent
        state.write()
        clock.advance(60)
        (gpu0,) = [r for r in collector.collect().readings if isinstance(r, LicenceReading)]
        assert (gpu0.state, gpu0.expiry_status, gpu0.expiry_timestamp_seconds) == (
            "licensed", "permanent", None)
    finally:
        collector.close()
