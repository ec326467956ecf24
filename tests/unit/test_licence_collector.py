"""The licence collector end to end over fakes: NVML, commands, journal, files, clock."""

from __future__ import annotations

import os
from pathlib import Path

import pynvml
import pytest

from gpuwatchd import config as cfgmod
from gpuwatchd.clock import ManualClock
from gpuwatchd.collectors.licence import LicenceCollector, build
from gpuwatchd.collectors.registry import REGISTRY
from gpuwatchd.hardware import Hardware
from gpuwatchd.licence.journal import QueueLineSource
from gpuwatchd.licence.sources import LicenceSources
from gpuwatchd.links.nvml import NvmlSession
from gpuwatchd.model import (
    Collected,
    LicenceNodeReading,
    LicenceReading,
    VgpuInstanceLicenceReading,
)
from tests.fakes.licence_nvml import FakeFeature, FakeInstance, FakeLicenceGpu, FakeLicenceNvml
from tests.fakes.licence_runner import FakeRunner

UUID = "GPU-7f1e9c44-1b2d-4a55-8e0c-3d6b9a2f1e77"  # as in the r535 nvidia-smi samples
HOUR = 3600.0


class Node:
    """A fake vGPU guest: one GPU, gridd, gridd.conf, one token, the clock."""

    def __init__(self, tmp: Path, yaml: str = "", gpus: list[FakeLicenceGpu] | None = None,
                 remediate: bool = False) -> None:
        self.clock = ManualClock(start_wall=1_750_000_000.0)
        self.root = str(tmp)
        os.makedirs(tmp / "etc/nvidia/ClientConfigToken")
        self.conf = tmp / "etc/nvidia/gridd.conf"
        self.conf.write_text("ServerAddress=\nFeatureType=1\n")
        self.token = tmp / "etc/nvidia/ClientConfigToken/client_configuration_token_1.tok"
        self.token.write_bytes(b"jws")
        self.token.chmod(0o744)
        os.utime(self.token, (self.clock.time() - HOUR, self.clock.time() - HOUR))
        self.expiry = self.clock.time() + 24 * HOUR
        self.feature = FakeFeature(code=1, expiry=self.expiry)
        self.gpus = gpus or [FakeLicenceGpu(UUID, bus_id="00000000:02:01.0",
                                            features=[self.feature])]
        self.nvml = FakeLicenceNvml(self.gpus)
        self.runner = FakeRunner()
        self.runner.set_unit(since_us=int((self.clock.monotonic() - 2 * HOUR) * 1e6))
        self.lines = QueueLineSource()
        switch = str(remediate).lower()
        text = f"licence: {{remediation: {{state_file: null, restart_gridd: {switch}}}{yaml}}}\n"
        self.config = cfgmod.loads(text)
        self.sources = LicenceSources(runner=self.runner, journal=lambda _clock: self.lines,
                                      root=self.root, adjtimex=lambda: True)
        self.collector = LicenceCollector(NvmlSession(self.nvml).lease(), self.clock,
                                          self.config.licence, self.sources)

    def collect(self, advance: float = 0.0) -> Collected:
        self.clock.advance(advance)
        return self.collector.collect()


def samples(collected: Collected, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    for family in collected.families:
        if family.name == name:
            return {s.labels: s.value for s in family.samples}
    return {}


def one_hot(collected: Collected, name: str, key: str) -> str:
    hot = [dict(labels)[key] for labels, value in samples(collected, name).items() if value == 1]
    assert len(hot) == 1, hot
    return hot[0]


def reading(collected: Collected, kind: type) -> list:
    return [r for r in collected.readings if isinstance(r, kind)]


def test_licensed_guest_metrics_and_readings(tmp_path: Path) -> None:
    node = Node(tmp_path)
    node.lines.push("License acquired successfully. (Info: x; NVIDIA Virtual Compute Server)")
    out = node.collect()
    assert one_hot(out, "gpuwatchd_vgpu_licence_state", "state") == "licensed"
    lb = (("gpu", "0"), ("uuid", UUID))
    assert samples(out, "gpuwatchd_vgpu_licence_expiry_timestamp_seconds") == {lb: node.expiry}
    assert one_hot(out, "gpuwatchd_vgpu_licence_expiry_status", "status") == "valid"
    info = samples(out, "gpuwatchd_vgpu_licence_info")
    assert (*lb, ("product", "NVIDIA Virtual Compute Server"), ("feature", "vgpu")) in info
    assert samples(out, "gpuwatchd_vgpu_licence_unlicensed_since_timestamp_seconds") == {}
    assert samples(out, "gpuwatchd_gridd_up") == {(): 1.0}
    assert one_hot(out, "gpuwatchd_gridd_unit_state", "state") == "active"
    assert samples(out, "gpuwatchd_gridd_events_total")[(("kind", "acquired"),)] == 1
    assert samples(out, "gpuwatchd_licence_token_files") == {(): 1.0}
    assert samples(out, "gpuwatchd_time_synchronized") == {(): 1.0}
    assert not any(samples(out, "gpuwatchd_licence_node_problem").values())
    assert samples(out, "gpuwatchd_licence_remediation_enabled") == {(): 0.0}
    assert node.runner.count("nvidia-smi") == 0  # licensed: no reason to run it
    (gpu,) = reading(out, LicenceReading)
    assert (gpu.state, gpu.severity, gpu.mode, gpu.feature) == ("licensed", "ok", "vgpu", "vgpu")
    (nr,) = reading(out, LicenceNodeReading)
    assert (nr.applicable, nr.gridd_state, nr.token_summary) == (True, "active", "1 token (0744)")
    assert nr.last_event == "acquired"


def test_bare_metal_has_no_licence_series_and_no_node_checks(tmp_path: Path) -> None:
    gpus = [FakeLicenceGpu("GPU-bare", mode=0,
                           features_error=pynvml.NVML_ERROR_NOT_SUPPORTED)]
    node = Node(tmp_path, gpus=gpus)
    out = node.collect()
    names = {f.name for f in out.families}
    assert names == {"gpuwatchd_vgpu_virtualization_mode", "gpuwatchd_vgpu_licence_supported",
                     "gpuwatchd_licence_remediation_enabled"}
    assert node.runner.calls == []  # no systemctl, no nvidia-smi
    assert reading(out, LicenceReading) == []
    (nr,) = reading(out, LicenceNodeReading)
    assert not nr.applicable
    node.nvml.lost.add(0)  # a lost bare-metal GPU is not a licence problem
    out = node.collect(60)
    assert reading(out, LicenceReading) == []
    assert node.runner.calls == []


def test_enabled_true_runs_node_checks_without_gpus(tmp_path: Path) -> None:
    node = Node(tmp_path, yaml=", enabled: true", gpus=[])
    node.nvml.init_error = pynvml.NVML_ERROR_LIBRARY_NOT_FOUND
    out = node.collect()
    assert samples(out, "gpuwatchd_gridd_up") == {(): 1.0}
    assert not any(samples(out, "gpuwatchd_licence_config_problem").values())
    node.conf.unlink()
    out = node.collect(60)
    assert samples(out, "gpuwatchd_licence_config_problem")[(("problem", "missing"),)] == 1


def test_expiry_to_grace_to_restricted_to_renewed(tmp_path: Path) -> None:
    node = Node(tmp_path)
    node.runner.set_smi("r535-unlicensed-unrestricted.xml")
    node.collect()
    node.feature.state = 0  # the lease is lost
    out = node.collect(60)
    assert one_hot(out, "gpuwatchd_vgpu_licence_state", "state") == "unlicensed_grace"
    since = node.clock.time()
    lb = (("gpu", "0"), ("uuid", UUID))
    assert samples(out, "gpuwatchd_vgpu_licence_unlicensed_since_timestamp_seconds") == {
        lb: since}
    assert node.runner.count("nvidia-smi") == 1  # asked at once on the change
    node.runner.set_smi("r535-unlicensed-restricted.xml")
    out = node.collect(60)
    assert node.runner.count("nvidia-smi") == 1  # rate-limited: 5 min
    assert one_hot(out, "gpuwatchd_vgpu_licence_state", "state") == "unlicensed_grace"
    out = node.collect(300)
    assert node.runner.count("nvidia-smi") == 2
    assert one_hot(out, "gpuwatchd_vgpu_licence_state", "state") == "restricted"
    (gpu,) = reading(out, LicenceReading)
    assert gpu.severity == "critical" and "restricted" in gpu.reason
    node.feature.state = 1
    node.feature.expiry = node.clock.time() + 24 * HOUR
    out = node.collect(60)
    assert one_hot(out, "gpuwatchd_vgpu_licence_state", "state") == "licensed"
    assert samples(out, "gpuwatchd_vgpu_licence_last_renewal_timestamp_seconds") == {
        lb: node.clock.time()}


def test_unconfigured_node_explains_itself(tmp_path: Path) -> None:
    node = Node(tmp_path)
    node.gpus[0].name = "NVIDIA A40-8Q"  # a Q-series (vWS) vGPU: a vCS licence cannot work
    node.token.unlink()
    node.conf.write_text("FeatureType=4\n")
    node.feature.state = 0
    out = node.collect()
    assert one_hot(out, "gpuwatchd_vgpu_licence_state", "state") == "unconfigured"
    problems = samples(out, "gpuwatchd_licence_config_problem")
    assert problems[(("problem", "feature_type_mismatch"),)] == 1
    assert samples(out, "gpuwatchd_licence_token_problem")[(("problem", "empty"),)] == 1
    node_problems = samples(out, "gpuwatchd_licence_node_problem")
    assert node_problems[(("problem", "token_problem"),)] == 1
    assert node_problems[(("problem", "config_problem"),)] == 1
    (gpu,) = reading(out, LicenceReading)
    assert "FeatureType=4" in gpu.reason
    (nr,) = reading(out, LicenceNodeReading)
    assert nr.severity == "warning"
    assert nr.token_summary.startswith("no ")


def test_gridd_down_and_remediation(tmp_path: Path) -> None:
    node = Node(tmp_path, remediate=True)
    node.feature.state = 0
    node.runner.set_unit("failed")
    out = node.collect()
    assert samples(out, "gpuwatchd_gridd_up") == {(): 0.0}
    assert node.runner.count("systemctl", "restart") == 1
    restarts = samples(out, "gpuwatchd_licence_remediation_restarts_total")
    assert restarts[(("reason", "unit_down"),)] == 1
    node.collect(60)
    assert node.runner.count("systemctl", "restart") == 1  # 30 minutes apart at least
    (nr,) = reading(node.collect(60), LicenceNodeReading)
    assert "gridd_down" in nr.problems and nr.severity == "critical"


def test_remediation_never_while_licensed(tmp_path: Path) -> None:
    node = Node(tmp_path, remediate=True)
    node.runner.set_unit("failed")  # gridd died but the lease is still held
    out = node.collect()
    assert node.runner.count("systemctl", "restart") == 0
    assert samples(out, "gpuwatchd_licence_remediation_suppressed_total")[
        (("guard", "licensed"),)] == 1


def test_host_reports_instances_not_a_guest_state(tmp_path: Path) -> None:
    host = FakeLicenceGpu("GPU-host", mode=3, instances=[
        FakeInstance("vgpu-1", state=5, expiry=1_750_100_000.0),
        FakeInstance("vgpu-2", state=2, licensed=0)])
    node = Node(tmp_path, gpus=[host])
    out = node.collect()
    assert samples(out, "gpuwatchd_vgpu_licence_state") == {}
    assert node.runner.calls == []  # gridd is a guest daemon: not checked on a host
    states = samples(out, "gpuwatchd_vgpu_instance_licence_state")
    hot = {dict(k)["vgpu_uuid"]: dict(k)["state"] for k, v in states.items() if v == 1}
    assert hot == {"vgpu-1": "licensed", "vgpu-2": "unlicensed_unrestricted"}
    assert len(reading(out, VgpuInstanceLicenceReading)) == 2


def test_lost_gpu_is_unknown_then_reinitialised(tmp_path: Path) -> None:
    node = Node(tmp_path)
    node.collect()
    node.nvml.lost.add(0)
    out = node.collect(60)
    assert one_hot(out, "gpuwatchd_vgpu_licence_state", "state") == "unknown"
    node.nvml.lost.clear()
    inits = node.nvml.calls.count("nvmlInit")
    out = node.collect(60)
    assert node.nvml.calls.count("nvmlInit") == inits + 1
    assert one_hot(out, "gpuwatchd_vgpu_licence_state", "state") == "licensed"


def test_registry_and_factory(tmp_path: Path) -> None:
    assert "licence" in REGISTRY
    hw = Hardware(clock=ManualClock(), nvml=lambda: FakeLicenceNvml([]),
                  licence=LicenceSources(runner=FakeRunner()))
    (scheduled,) = build(cfgmod.loads("licence: {interval_seconds: 30}\n"), hw)
    assert (scheduled.interval_seconds, scheduled.deadline_seconds) == (30.0, 20.0)
    assert scheduled.collector.name == "licence"
    scheduled.collector.close()
    assert build(cfgmod.loads("licence: {enabled: false}\n"), hw) == []


@pytest.mark.parametrize(("text", "message"), [
    ("licence: {unlicensed_critical_seconds: 1200}\n", "must be below grace_seconds"),
    ("licence: {remediation: {restart_gridd: true, unlicensed_seconds: 1500}}\n", "too late"),
    ("licence: {remediation: {restart: true}}\n", "did you mean 'restart_gridd'"),
    ("licence: {token_dir: relative/path}\n", "absolute path"),
])
def test_config_errors(text: str, message: str) -> None:
    with pytest.raises(cfgmod.ConfigError, match=message):
        cfgmod.loads(text, "gpuwatchd.yaml")
