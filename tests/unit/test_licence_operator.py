"""The GPU operator's layout (issue 15): gridd runs in the driver container, the token comes
from a ConfigMap mounted into gpuwatchd's pod, there is no systemd in the pod. A licensed
node must read healthy; checks that cannot be made there are not applicable, not failures."""

from __future__ import annotations

import os
from pathlib import Path

from gpuwatchd.collectors.licence import LicenceCollector
from gpuwatchd.errors import NotInstalled
from gpuwatchd.licence.commands import CommandResult
from gpuwatchd.model import Collected, CollectorResult, LicenceNodeReading, Snapshot
from gpuwatchd.status.document import DaemonInfo, build_status
from gpuwatchd.status.sections import licence as licence_section
from gpuwatchd.status.table import render
from tests.unit.test_licence_collector import HOUR, Node, reading, samples


def operator_node(tmp: Path, *, systemctl: bool = False) -> Node:
    """No gridd.conf and no token beside it; the token in /licence (the ConfigMap mount)."""
    node = Node(tmp, yaml=", gridd_conf: /run/nvidia/driver/etc/nvidia/gridd.conf, "
                          "token_dir: /licence")
    node.token.unlink()
    node.conf.unlink()
    mount = tmp / "licence"
    mount.mkdir()
    token = mount / "client_configuration_token.tok"
    token.write_bytes(b"jws")
    token.chmod(0o644)
    os.utime(token, (node.clock.time() - HOUR, node.clock.time() - HOUR))
    if systemctl:  # a host systemd answers, but gridd is not a unit there
        node.runner.set("systemctl", "show", CommandResult(
            (), 0, "LoadState=not-found\nActiveState=inactive\nSubState=dead\n"))
    else:
        node.runner.set("systemctl", "show", NotInstalled("systemctl: not installed"))
    node.runner.set("timedatectl", "show", NotInstalled("timedatectl: not installed"))
    node.collector = LicenceCollector(node.collector._link, node.clock, node.config.licence,
                                      node.sources)
    return node


def _node_reading(out: Collected) -> LicenceNodeReading:
    (nr,) = reading(out, LicenceNodeReading)
    return nr


def test_licensed_operator_node_is_healthy(tmp_path: Path) -> None:
    node = operator_node(tmp_path)
    out = node.collect()
    nr = _node_reading(out)
    assert (nr.severity, nr.gridd_state, nr.problems) == ("ok", "not_visible", ())
    assert nr.token_summary == "1 token (0644)"  # noqa: S105 - from the ConfigMap mount
    assert samples(out, "gpuwatchd_licence_token_files") == {(): 1.0}
    # gridd's unit cannot be seen: absent (not applicable), not 0
    assert samples(out, "gpuwatchd_gridd_up") == {}
    assert samples(out, "gpuwatchd_gridd_unit_state") == {}
    assert not any(samples(out, "gpuwatchd_licence_config_problem").values())
    assert not any(samples(out, "gpuwatchd_licence_node_problem").values())
    doc = licence_section.build(node_snapshot(out), 0.0)
    assert doc.reasons == ()  # nothing for the health: "healthy"


def test_unlicensed_operator_node_is_not_blamed_on_a_gridd_conf_it_cannot_see(
        tmp_path: Path) -> None:
    node = operator_node(tmp_path)
    node.feature.state = 0
    nr = _node_reading(node.collect())
    assert "config_problem" not in nr.problems
    assert nr.gridd_state == "not_visible"


def test_gridd_conf_found_under_the_operators_driver_root(tmp_path: Path) -> None:
    node = operator_node(tmp_path)
    conf = tmp_path / "run/nvidia/driver/etc/nvidia/gridd.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text("ServerAddress=\nFeatureType=1\n")
    node.collector = LicenceCollector(node.collector._link, node.clock, node.config.licence,
                                      node.sources)
    (nr,) = reading(node.collect(), LicenceNodeReading)
    assert (nr.severity, nr.problems) == ("ok", ())


def test_a_host_without_the_gridd_unit_still_warns(tmp_path: Path) -> None:
    """Where systemd answers (a host), a missing nvidia-gridd.service is still a finding."""
    node = operator_node(tmp_path, systemctl=True)
    node.feature.state = 0
    nr = _node_reading(node.collect())
    assert "gridd_down" in nr.problems and nr.gridd_state == "not_found"


def node_snapshot(out: Collected) -> Snapshot:
    result = CollectorResult("licence", ok=True, duration_seconds=0.01, updated_wall=1.0,
                             updated_mono=0.0, stale_after_seconds=120.0, collected=out)
    return Snapshot(seq=1, taken_wall=1.75e9, taken_mono=0.0, results=(result,))


def test_licence_only_profile_prints_no_gpus_line(tmp_path: Path) -> None:
    """gpus.enabled: false (dcgm-exporter reads the GPUs): no "GPUs none found" above the
    licence rows; with a GPU collector that found none, the line stays."""
    node = operator_node(tmp_path)
    snap = node_snapshot(node.collect())
    info = DaemonInfo(version="0", pid=1, started_wall=1.0, config_path=None,
                      interval_seconds=2.0, state="running", ticks=1, last_tick_mono=0.0)
    doc = build_status(snap, info, 0.0)
    assert doc["gpus"] is None
    text = render(doc, 1.75e9)
    assert "none found" not in text and "LICENSED" in text
    gpu = CollectorResult("gpu", ok=True, duration_seconds=0.01, updated_wall=1.0,
                          updated_mono=0.0, stale_after_seconds=10.0)
    with_gpu = Snapshot(seq=1, taken_wall=1.75e9, taken_mono=0.0, results=(gpu, *snap.results))
    assert "GPUs    none found" in render(build_status(with_gpu, info, 0.0), 1.75e9)
