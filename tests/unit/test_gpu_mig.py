"""MIG (issue 15) on the simulated A100 80GB of ``--demo-profile cluster``: readings, series,
status. The same reads over real nvidia-ml-py and the fake libnvidia-ml.so.1 are in
tests/integration/test_gpu_fake_nvml.py."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from gpuwatchd.clock import ManualClock
from gpuwatchd.collectors.gpu_mig import profile_name
from gpuwatchd.daemon.cli import _demo_config, parser
from gpuwatchd.daemon.service import Daemon
from gpuwatchd.exporter.render import Renderer
from gpuwatchd.model import GpuReading
from gpuwatchd.sim.node import demo_node
from gpuwatchd.status.document import DaemonInfo, build_status
from gpuwatchd.status.table import render


@pytest.fixture
def daemon() -> Iterator[tuple[Daemon, ManualClock]]:
    clock = ManualClock()
    node = demo_node("cluster", 2, clock)
    d = Daemon(_demo_config(), node.hardware())
    d._build(d.config)
    for _ in range(2):
        d.tick()
        clock.advance(d.config.interval_seconds)
    yield d, clock
    d._close_hardware()


def _gpus(d: Daemon) -> list[GpuReading]:
    return [r for res in d.snapshot.results for r in res.collected.readings
            if isinstance(r, GpuReading)]


def _exposition(d: Daemon, clock: ManualClock) -> list[str]:
    text = Renderer(lambda: d.snapshot, clock, process_metrics=False).render().decode()
    return [line for line in text.splitlines() if not line.startswith("#")]


def test_cluster_demo_gpu0_has_mixed_profiles_gpu1_has_mig_off(
        daemon: tuple[Daemon, ManualClock]) -> None:
    gpu0, gpu1 = _gpus(daemon[0])
    assert gpu0.name == "NVIDIA A100-SXM4-80GB"
    assert [m.profile for m in gpu0.mig_instances] == ["3g.40gb", "2g.20gb", "1g.10gb",
                                                       "1g.10gb"]
    assert sum(m.slices or 0 for m in gpu0.mig_instances) == 7
    assert sum(m.placement_size or 0 for m in gpu0.mig_instances) == 8
    assert all(m.uuid.startswith("MIG-") for m in gpu0.mig_instances)
    assert len({m.uuid for m in gpu0.mig_instances}) == 4
    assert gpu0.slow is not None and gpu0.slow.mig_mode_current is True
    assert gpu1.mig_instances == () and gpu1.slow is not None
    assert gpu1.slow.mig_mode_current is False
    # no whole-GPU utilisation while MIG is on; GPU 1 (MIG off) has it
    assert gpu0.slow.utilization_gpu_ratio is None
    assert gpu1.slow.utilization_gpu_ratio is not None


def test_per_instance_memory_series_and_no_duplicated_parent_power(
        daemon: tuple[Daemon, ManualClock]) -> None:
    lines = _exposition(*daemon)
    memory = [line for line in lines if line.startswith("gpuwatchd_gpu_mig_memory_bytes{")]
    assert len(memory) == 8  # 4 GPU instances x used/free
    info = [line for line in lines if line.startswith("gpuwatchd_gpu_mig_info{")]
    assert len(info) == 4 and all('compute_instance="0"' in line for line in info)
    power = [line for line in lines if line.startswith("gpuwatchd_gpu_power_watts{")]
    assert len(power) == 2  # one per parent GPU
    assert not [line for line in lines if "gpu_instance=" in line
                and not line.startswith("gpuwatchd_gpu_mig_")]


def test_status_lists_the_instances_under_the_gpu_table(
        daemon: tuple[Daemon, ManualClock]) -> None:
    d, clock = daemon
    info = DaemonInfo(version="0", pid=1, started_wall=time.time(), config_path=None,
                      interval_seconds=2.0, state="running", ticks=2,
                      last_tick_mono=clock.monotonic())
    doc = build_status(d.snapshot, info, clock.monotonic())
    assert [m["profile"] for m in doc["gpus"][0]["mig"]] == ["3g.40gb", "2g.20gb", "1g.10gb",
                                                            "1g.10gb"]
    text = render(doc, time.time())
    head = next(line for line in text.splitlines() if line.startswith("MIG GPU"))
    assert "PROFILE" in head and "MEMORY USED/TOTAL" in head
    rows = [line for line in text.splitlines() if "MIG-" in line]
    assert len(rows) == 4
    assert "3g.40gb" in rows[0] and "0:4" in rows[0] and "39.2 GiB" in rows[0]


def test_default_demo_has_no_mig_lines() -> None:
    node = demo_node("default", 2)
    assert node.nvml.mig == {} and not node.nvml.mig_capable


def test_demo_profile_option() -> None:
    args = parser().parse_args(["--demo", "--demo-profile", "cluster", "--demo-gpus", "8"])
    assert (args.demo_profile, args.demo_gpus) == ("cluster", 8)
    with pytest.raises(SystemExit):
        parser().parse_args(["--demo", "--demo-profile", "nope"])


@pytest.mark.parametrize(("slices", "compute", "mib", "name"), [
    (3, 3, 40_192, "3g.40gb"), (1, 1, 9_728, "1g.10gb"), (7, 7, 81_152, "7g.80gb"),
    (1, 1, 4_864, "1g.5gb"), (3, 1, 40_192, "1c.3g.40gb"), (None, None, None, "")])
def test_profile_names_are_nvidia_smis(slices: int | None, compute: int | None,
                                       mib: int | None, name: str) -> None:
    assert profile_name(slices, compute, mib) == name


def test_parent_only_calls_refuse_a_mig_handle_and_lost_parent_takes_its_instances() -> None:
    clock = ManualClock()
    node = demo_node("cluster", 2, clock)
    lib = node.nvml
    lib.nvmlInit()
    parent = lib.nvmlDeviceGetHandleByIndex(0)
    mig = lib.nvmlDeviceGetMigDeviceHandleByIndex(parent, 0)
    assert lib.nvmlDeviceGetUUID(mig).startswith("MIG-")
    for call in ("nvmlDeviceGetPowerUsage", "nvmlDeviceGetTemperature"):
        args = (mig, 0) if call.endswith("Temperature") else (mig,)
        with pytest.raises(lib.NVMLError) as err:
            getattr(lib, call)(*args)
        assert err.value.value == 2  # INVALID_ARGUMENT: not a parent handle
    with pytest.raises(lib.NVMLError) as err:
        lib.nvmlDeviceGetMigDeviceHandleByIndex(parent, 4)
    assert err.value.value == 6  # NOT_FOUND: an empty slot
    with pytest.raises(lib.NVMLError) as err:
        lib.nvmlDeviceGetGpuInstanceId(parent)
    assert err.value.value == 2
    lib.lose_gpu(0)
    with pytest.raises(lib.NVMLError) as err:
        lib.nvmlDeviceGetMemoryInfo(mig)
    assert err.value.value == 15  # GPU_IS_LOST
    lib.nvmlShutdown()


def test_lost_mig_gpu_is_down_without_instance_series(
        daemon: tuple[Daemon, ManualClock]) -> None:
    d, clock = daemon
    d.hw.nvml().lose_gpu(0)
    d.tick()
    clock.advance(d.config.interval_seconds)
    lines = _exposition(d, clock)
    assert next(line for line in lines if line.startswith('gpuwatchd_gpu_up{gpu="0"')).endswith(
        " 0.0")
    assert not [line for line in lines if line.startswith("gpuwatchd_gpu_mig_info{")
                and 'gpu="0"' in line]
