"""The demo node's simulated iDRAC through the real link and collector, and its status section."""

from __future__ import annotations

import json
from dataclasses import replace

from gpuwatchd.clock import ManualClock
from gpuwatchd.config import FanControlConfig
from gpuwatchd.daemon.cli import _demo_config
from gpuwatchd.daemon.service import Daemon
from gpuwatchd.model import (
    BmcIdentity,
    BmcReading,
    ChassisTemperature,
    Collected,
    FanReading,
    PsuReading,
)
from gpuwatchd.sim.node import SimNode
from gpuwatchd.status.sections.bmcs import build
from gpuwatchd.status.table import render


def run_demo(ticks: int = 3, node: SimNode | None = None) -> tuple[Daemon, SimNode, ManualClock]:
    clock = ManualClock()
    node = node or SimNode(clock=clock)
    # fan control off: these tests are about the iDRAC's sensors (the fan tests: test_fan_*)
    config = replace(_demo_config(), fan_control=FanControlConfig())
    daemon = Daemon(config, node.hardware())
    daemon._build(daemon.config)
    for _ in range(ticks):
        daemon.tick()
        clock.advance(daemon.config.interval_seconds)
    return daemon, node, node.clock  # type: ignore[return-value]


def test_demo_bmc_has_eight_dual_rotor_fans_temperatures_and_a_failed_psu() -> None:
    daemon, node, _ = run_demo()
    try:
        snap = daemon.snapshot
        fans = snap.readings(FanReading)
        assert len(fans) == 16 and fans[0].name == "Fan1A" and fans[1].name == "Fan1B"
        assert fans[0].rpm == round(node.fan_rpm(0) / 120) * 120  # 120 rpm per raw count
        assert fans[1].rpm < fans[0].rpm  # the second rotor turns slower
        temps = {t.name: t for t in snap.readings(ChassisTemperature)}
        assert set(temps) == {"Inlet Temp", "Exhaust Temp", "Temp 3.1", "Temp 3.2"}
        assert temps["Inlet Temp"].celsius == round(node.inlet_celsius())
        exhaust, inlet = temps["Exhaust Temp"].celsius, temps["Inlet Temp"].celsius
        assert exhaust is not None and inlet is not None and exhaust > inlet
        psus = {p.name: p for p in snap.readings(PsuReading)}
        assert psus["PS1"].up and not psus["PS2"].up and psus["PS2"].failed
        bmc = snap.readings(BmcReading)[0]
        assert bmc.up and bmc.vendor == "Dell" and bmc.power_watts
        assert temps["Exhaust Temp"].input_id == "bmc:idrac:Exhaust Temp"
    finally:
        daemon._close_hardware()


def test_slower_fans_show_up_and_warm_the_exhaust() -> None:
    clock = ManualClock()
    node = SimNode(clock=clock)
    daemon, _, _ = run_demo(node=node)
    try:
        before = {t.name: t.celsius for t in daemon.snapshot.readings(ChassisTemperature)}
        node.set_duty(0.2)
        for _ in range(30):
            daemon.tick()
            clock.advance(1.0)
        fans = daemon.snapshot.readings(FanReading)
        assert all(f.rpm is not None and f.rpm < 6000 for f in fans)
        after = {t.name: t.celsius for t in daemon.snapshot.readings(ChassisTemperature)}
        assert after["Exhaust Temp"] > before["Exhaust Temp"]  # type: ignore[operator]
    finally:
        daemon._close_hardware()


def test_status_shows_fans_and_psus_and_a_failed_psu_does_not_degrade() -> None:
    daemon, _, clock = run_demo()
    try:
        doc = json.loads(json.dumps(daemon.status()))
        assert doc["health"] == {"status": "healthy", "reasons": []}
        bmc = doc["bmcs"][0]
        assert (bmc["name"], bmc["up"], len(bmc["fans"]), len(bmc["psus"])) == (
            "idrac", True, 16, 2)
        text = render(doc, clock.time())
        assert "BMC idrac  ipmi  up  Dell 2.83" in text
        assert "PS2  failed, AC lost" in text
        assert any(line.startswith("Fan8B") and "rpm" in line for line in text.splitlines())
    finally:
        daemon._close_hardware()


def test_an_unreachable_bmc_degrades_the_status() -> None:
    daemon, _, _ = run_demo(ticks=1)
    try:
        snap = daemon.snapshot
        down = BmcReading("idrac", "ipmi", False, BmcIdentity("Dell", "2.83"),
                          error="BMC idrac: no reply")
        results = tuple(
            replace(res, collected=Collected(readings=(down,)))
            if res.name.startswith("chassis_ipmi") else res for res in snap.results)
        snap = replace(snap, results=results)
        section = build(snap, snap.taken_mono)
        rows, reasons = section.data, section.reasons
        assert isinstance(rows, list)
        assert rows is not None and rows[0]["up"] is False and rows[0]["fans"] == []
        assert reasons == ("BMC idrac down: BMC idrac: no reply",)
    finally:
        daemon._close_hardware()


def test_hardware_peers_are_typed_by_bmc_name() -> None:
    """Hardware.ipmi_connector(name) is the node's BMC of that name; no peer: the library."""
    node = SimNode(clock=ManualClock())
    hw = node.hardware()
    assert hw.ipmi_connector("idrac") == node.bmcs["idrac"].connector
    assert hw.ipmi_connector("other") is None and hw.redfish_client_factory("idrac") is None
    plain = SimNode(clock=ManualClock(), bmc=None).hardware()
    assert plain.ipmi_connector("idrac") is not None  # the sensor-only demo iDRAC
