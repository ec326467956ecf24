"""The demo's vGPU guest (sim/licence.py) and the licence part of `gpuwatchctl status`."""

from __future__ import annotations

import re

from gpuwatchd.clock import ManualClock
from gpuwatchd.collectors.licence import build
from gpuwatchd.daemon.cli import _demo_config
from gpuwatchd.licence.gridd import classify
from gpuwatchd.licence.probe import LicenceProbe
from gpuwatchd.licence.smi_xml import parse
from gpuwatchd.links.nvml import NvmlSession
from gpuwatchd.model import (
    Collected,
    CollectorResult,
    GpuReading,
    LicenceNodeReading,
    LicenceReading,
    Snapshot,
    VgpuInstanceLicenceReading,
)
from gpuwatchd.sim.licence import GuestScenario, events_between, state_at
from gpuwatchd.sim.node import SimNode
from gpuwatchd.status.sections import licence as view
from gpuwatchd.status.text import Style

S = GuestScenario()


def test_scenario_timeline() -> None:
    assert state_at(S, 0).licensed and state_at(S, 0).expiry == 300
    assert state_at(S, 100).expiry == 90 + 300  # renewed at 45 and 90
    assert state_at(S, 400).expiry == 435  # the outage stopped renewals at 135
    lapsed = state_at(S, 500)
    assert (lapsed.licensed, lapsed.unlicensed_since, lapsed.restricted) == (False, 435, False)
    assert state_at(S, 555).restricted
    back = state_at(S, 600)
    assert back.licensed and back.expiry == 900
    assert state_at(S, 720 + 100).expiry == 720 + 90 + 300  # the next cycle


def test_scenario_journal_lines_in_order_and_classified() -> None:
    events = events_between(S, -1, 720)
    times = [t for t, _ in events]
    assert times == sorted(times)
    kinds = [classify(line) for _, line in events]
    assert kinds[:4] == ["started", "started", "acquiring", "acquired"]
    assert "renew_failed" in kinds and "expired" in kinds and "not_found" in kinds
    assert kinds[-2:] == ["acquiring", "acquired"]
    assert events_between(S, 720, 720) == []
    again = [classify(line) for _, line in events_between(S, 720, 1440)]
    assert "started" not in again and again[-1] == "acquired"


def test_sim_node_answers_the_licence_calls() -> None:
    clock = ManualClock()
    node = SimNode(clock=clock)
    link = NvmlSession(node.nvml).lease()
    link.init()
    handle = link.call("nvmlDeviceGetHandleByIndex", 0)
    probe = LicenceProbe(link).probe(handle, node.nvml.uuid(0))
    feature = probe.chosen()
    assert probe.mode is not None and probe.mode.label == "vgpu"
    assert feature is not None and feature.licensed
    assert feature.product == "NVIDIA RTX Virtual Workstation"
    assert feature.expiry_timestamp_seconds == clock.time() + 300
    clock.advance(500)
    report = parse(node.licence.run(("nvidia-smi", "-q", "-x"), 5).stdout, clock.time())
    section = report.lookup(node.nvml.uuid(1))
    assert section is not None and (section.licensed, section.restricted) == (False, False)
    plain = SimNode(clock=clock, vgpu_guest=False)
    bare = NvmlSession(plain.nvml).lease()
    bare.init()
    h = bare.call("nvmlDeviceGetHandleByIndex", 0)
    assert LicenceProbe(bare).probe(h, "x").supported is False
    assert plain.hardware().licence is None


def test_demo_collector_goes_round_the_cycle() -> None:
    clock = ManualClock()
    node = SimNode(clock=clock)
    (scheduled,) = build(_demo_config(), node.hardware())
    seen = []
    try:
        for _ in range(0, 780, 5):
            out = scheduled.collector.collect()
            state = next(r for r in out.readings if isinstance(r, LicenceReading)).state
            if not seen or seen[-1] != state:
                seen.append(state)
            clock.advance(5)
    finally:
        scheduled.collector.close()
    assert seen == ["licensed", "renewing_late", "expiring", "expired", "restricted", "licensed"]


def snapshot(readings: tuple[object, ...], taken_wall: float = 1_750_000_000.0) -> Snapshot:
    result = CollectorResult("licence", True, 0.01, taken_wall, 100.0, 200.0,
                             collected=Collected(readings=readings))
    return Snapshot(1, taken_wall, 100.0, (result,))


def test_section_is_null_without_licensing() -> None:
    section = view.build(snapshot((LicenceNodeReading(applicable=False),)), 100.0)
    assert (section.data, section.reasons) == (None, ())


def test_status_lines_per_gpu() -> None:
    now = 1_750_000_000.0
    readings = (
        GpuReading(0, "GPU-a", "Tesla P40", True),
        LicenceReading(0, "GPU-a", "vgpu", "licensed", "ok", "NVIDIA Virtual Compute Server",
                       "compute", "valid", expiry_timestamp_seconds=now + 23 * 3600 + 41 * 60),
        LicenceReading(1, "GPU-b", "vgpu", "unlicensed_grace", "warning",
                       "NVIDIA Virtual Compute Server", "compute", "valid",
                       unlicensed_since_timestamp_seconds=now - 372,
                       reason="unlicensed for 6m12s; restricted in 13m48s"),
        LicenceNodeReading(True, "active", "1 token (0744)", ("clock_unsynced",), "warning",
                           ("the clock is not synchronised",), False),
        VgpuInstanceLicenceReading(0, "GPU-a", "vgpu-1", "vm-7", "GRID A100-4C", "licensed"),
    )
    section = view.build(snapshot(readings, now), 110.0)  # 10 s after the snapshot
    data, reasons = section.data, section.reasons
    assert isinstance(data, dict)
    assert data["gpus"][0]["expires_in_seconds"] == 23 * 3600 + 41 * 60 - 10
    assert reasons == ("GPU 1 licence unlicensed_grace: unlicensed for 6m12s; restricted in "
                       "13m48s", "licence: the clock is not synchronised")
    text = "\n".join(view.render(data, Style(color=False)))
    first = re.search(r"GPU 0 .*", text)
    assert first is not None
    assert 'Tesla P40 [vgpu]  LICENSED  "NVIDIA Virtual Compute Server"' in first.group(0)
    assert ("expires 2025-06-16 14:47 UTC (in 23h40m) · gridd active · 1 token (0744)"
            in text)
    assert "unlicensed since 2025-06-15 15:00 UTC (6m22s ago)" in text
    assert "! the clock is not synchronised" in text
    assert "vGPU vgpu-1 on GPU 0 (VM vm-7, GRID A100-4C)  LICENSED" in text
