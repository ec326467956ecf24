"""One NVML session per process: one nvmlInit, one enumeration, one set of counters."""

from __future__ import annotations

from typing import Any

import pytest

from gpuwatchd import config
from gpuwatchd.clock import ManualClock
from gpuwatchd.collectors import gpu, licence
from gpuwatchd.config import GpuConfig
from gpuwatchd.control.factory import make_driver
from gpuwatchd.errors import Lost, NotInstalled, Unsupported
from gpuwatchd.hardware import Hardware
from gpuwatchd.links import nvml
from gpuwatchd.links.nvml import NvmlSession
from gpuwatchd.model import NvmlReading
from gpuwatchd.sim.node import SimNode

CONFIG = """
licence: {enabled: true, interval_seconds: 30}
fan_control:
  driver: nvml
  zones: [{name: gpus, inputs: ["gpu:*"]}]
"""


@pytest.fixture
def node() -> SimNode:
    return SimNode(clock=ManualClock(), profile="idle")


def test_leases_share_one_init_and_the_last_one_shuts_down(node: SimNode) -> None:
    session = NvmlSession(node.nvml)
    first, second = session.lease(), session.lease()
    first.init()
    second.init()
    second.init()  # a lease holds one reference, however often it asks
    assert node.nvml.calls()["nvmlInit"] == 1 and session.initialized
    first.shutdown()
    assert node.nvml.calls()["nvmlShutdown"] == 0 and session.initialized
    second.shutdown()
    second.shutdown()
    assert node.nvml.calls()["nvmlShutdown"] == 1 and not session.initialized


def test_gpus_are_enumerated_once_per_init(node: SimNode) -> None:
    session = NvmlSession(node.nvml)
    a, b = session.lease(), session.lease()
    a.init()
    b.init()
    assert [d.index for d in a.devices()] == [0, 1]
    assert b.devices() == a.devices()
    assert node.nvml.calls()["nvmlDeviceGetCount"] == 1
    a.devices(refresh=True)  # the GPU collector re-opening its GPUs
    assert node.nvml.calls()["nvmlDeviceGetCount"] == 2
    a.shutdown()
    b.shutdown()
    a.init()
    a.devices()
    assert node.nvml.calls()["nvmlDeviceGetCount"] == 3, "a new init enumerates again"


def test_a_gpu_that_cannot_be_opened_is_enumerated_with_its_failure(node: SimNode) -> None:
    node.nvml.lose_gpu(1)
    link = NvmlSession(node.nvml).lease()
    link.init()
    ok, lost = link.devices()
    assert ok.failure is None and ok.uuid
    assert lost.index == 1 and lost.failure is not None and "gpu_is_lost" in str(lost.failure)


def test_every_nvml_user_of_the_daemon_shares_one_session(node: SimNode) -> None:
    cfg = config.loads(CONFIG)
    hw = nvml.shared(node.hardware(), cfg.gpus)
    assert nvml.shared(hw, cfg.gpus) is hw, "made once"
    (g,) = gpu.build(cfg, hw)
    (lic,) = licence.build(cfg, hw)
    built = make_driver(cfg, hw)
    try:
        collected = g.collector.collect()
        lic.collector.collect()
        with pytest.raises(Unsupported, match="no GPU with fans"):  # passive P40s: monitor
            built.driver.take_control()  # ... after asking NVML, over the shared session
        calls = node.nvml.calls()
        assert calls["nvmlInit"] == 1, "one nvmlInit for the GPU, licence and fan users"
        assert calls["nvmlDeviceGetCount"] == 1, "one enumeration"
        assert isinstance(g.collector, gpu.GpuCollector)
        assert g.collector.link.session is nvml.session_of(hw) is not None
        (reading,) = [r for r in collected.readings if isinstance(r, NvmlReading)]
        assert reading.up
    finally:
        built.close()
        lic.collector.close()
        g.collector.close()
    assert node.nvml.calls()["nvmlShutdown"] == 1, "the last lease shuts NVML down"


def test_errors_of_every_user_are_counted_once_in_the_session(node: SimNode) -> None:
    session = NvmlSession(node.nvml)
    a, b = session.lease(), session.lease()
    a.init()
    b.init()
    for link in (a, b):
        assert link.optional("nvmlDeviceGetNoSuchThing") is None
    assert session.errors[("nvmlDeviceGetNoSuchThing", "function_not_found")] == 2
    assert a.errors is b.errors is session.errors


def test_a_missing_nvidia_ml_py_is_not_installed() -> None:
    def no_pynvml() -> Any:
        raise ImportError("No module named 'pynvml'")

    link = nvml.lease(Hardware(clock=ManualClock(), nvml=no_pynvml), GpuConfig())  # no import yet
    with pytest.raises(NotInstalled, match="nvidia-ml-py"):
        link.init()
    assert not link.initialized


def test_a_failed_init_is_retried_by_no_user_before_the_backoff(node: SimNode) -> None:
    clock = ManualClock()
    session = NvmlSession(node.nvml, clock=clock, max_backoff_seconds=4.0)
    gpu_link, licence_link = session.lease(), session.lease()
    node.nvml.unload_driver()
    for link in (gpu_link, licence_link, gpu_link):
        with pytest.raises(Lost, match="driver_not_loaded"):
            link.init()
    assert node.nvml.calls()["nvmlInit"] == 1, "one attempt, then the backoff for every user"
    for wait, attempts in ((1.0, 2), (1.9, 2), (0.1, 3), (4.0, 4), (4.0, 5)):  # 1, 2, 4, 4 s
        clock.advance(wait)
        with pytest.raises(Lost):
            licence_link.init()
        assert node.nvml.calls()["nvmlInit"] == attempts, wait
    node.nvml.load_driver()
    clock.advance(4.0)
    licence_link.init()
    gpu_link.init()
    assert session.initialized and node.nvml.calls()["nvmlInit"] == 6
