"""The NVML fan driver end to end: real nvidia-ml-py over the fake libnvidia-ml.so.1 (C, gcc).

GPU 1 of the default fake state is a card with two fans that accepts 30-100 % (an RTX 2070:
``nvmlDeviceGetMinMaxFanSpeed``), and answers a speed outside that with INVALID_ARGUMENT as
the driver does; GPU 0 is a passive P40.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from pathlib import Path

import pynvml
import pytest

from gpuwatchd.config.fan_drivers import Channel, ChannelKind
from gpuwatchd.control.drivers.nvml_fan import NvmlFanDriver
from gpuwatchd.errors import GpuwatchdError, Unsupported
from gpuwatchd.links.nvml import NvmlSession
from tests.fakes.fakenvml import FakeNvmlBuildError, FakeNvmlState, build_fake_nvml, reset_pynvml

pytestmark = pytest.mark.peer
GPU1 = Channel(ChannelKind.GPU, index=1)


@pytest.fixture(scope="module")
def lib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        return build_fake_nvml(tmp_path_factory.mktemp("fakenvml-fan"))
    except FakeNvmlBuildError as exc:
        pytest.fail(str(exc), pytrace=False)


def _reset(lib: Path) -> None:
    reset_pynvml(lib)


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lib: Path) -> Iterator[FakeNvmlState]:
    st = FakeNvmlState(tmp_path / "nvml.state")
    st.write()
    monkeypatch.setenv("FAKE_NVML_STATE", str(st.path))
    _reset(lib)
    yield st
    _reset(lib)


def target(lib: Path, gpu: int, fan: int) -> int:
    return int(ctypes.CDLL(str(lib)).fakeNvmlFanTarget(gpu, fan))


def driver(lib: Path) -> NvmlFanDriver:
    return NvmlFanDriver(NvmlSession(pynvml, str(lib)).lease())


def test_the_fake_refuses_a_speed_below_the_cards_minimum(state: FakeNvmlState,
                                                           lib: Path) -> None:
    pynvml.nvmlInit()
    try:
        handle = pynvml.nvmlDeviceGetHandleByIndex(1)
        assert pynvml.nvmlDeviceGetMinMaxFanSpeed(handle) == [30, 100]
        with pytest.raises(pynvml.NVMLError):
            pynvml.nvmlDeviceSetFanSpeed_v2(handle, 0, 20)
    finally:
        pynvml.nvmlShutdown()


def test_duties_are_clamped_to_the_cards_range_and_the_curve_restored(state: FakeNvmlState,
                                                                        lib: Path) -> None:
    fans = driver(lib)
    try:
        fans.take_control()
        assert fans.channels() == (GPU1,)
        fans.write({GPU1: 0.12})  # below the card's 30 %: 30 %, never a failed write
        assert (target(lib, 1, 0), target(lib, 1, 1)) == (30, 30)
        assert fans.in_control() is True
        fans.write({GPU1: 0.64})
        assert (target(lib, 1, 0), target(lib, 1, 1)) == (64, 64)
        fans.failsafe()  # the card's own curve again (idle fan-stop)
        assert (target(lib, 1, 0), target(lib, 1, 1)) == (-1, -1)
        fans.write({GPU1: 0.5})
        fans.release()
        assert (target(lib, 1, 0), target(lib, 1, 1)) == (-1, -1)
    finally:
        fans.close()


def test_no_gpu_with_fans_refuses_control(state: FakeNvmlState, lib: Path) -> None:
    state.gpus[1]["fans"] = 0
    state.write()
    fans = driver(lib)
    try:
        assert fans.channels() == ()
        with pytest.raises(Unsupported, match="no GPU with fans"):
            fans.take_control()
        try:
            fans.release()  # nothing to hand back: no call, no error
        except GpuwatchdError as exc:  # pragma: no cover - the assertion below says why
            pytest.fail(f"release with no fans raised {exc}")
    finally:
        fans.close()
