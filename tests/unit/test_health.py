"""Hardware conditions (gpuwatchd.health.conditions) and the events between two Snapshots."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from gpuwatchd.config.schema import HealthConfig
from gpuwatchd.health import conditions, events
from gpuwatchd.health.events import MESSAGE_IDS, Memory
from gpuwatchd.model import (
    CONDITION_KINDS,
    BmcIdentity,
    BmcReading,
    ChassisTemperature,
    ChassisVoltage,
    Collected,
    CollectorResult,
    ControlReading,
    FanControlReading,
    FanReading,
    FanRedundancy,
    GpuFast,
    GpuReading,
    GpuSlow,
    LicenceReading,
    NvmlReading,
    PsuReading,
    Snapshot,
    XidCount,
    ZoneMode,
    ZoneReading,
)
from gpuwatchd.status.sections import hardware
from gpuwatchd.status.text import Style

FAN_THRESHOLDS = (("lower_critical", 360.0), ("lower_non_critical", 600.0))
BMC = BmcReading("idrac", "ipmi", True, BmcIdentity("Dell", "2.83"))
WALL = 1_700_000_000.0
ALERTS_FILE = Path(__file__).resolve().parents[2] / "monitoring" / "alerts.yaml"


def snapshot(*readings: object, seq: int = 1, control: ControlReading | None = None,
             config: HealthConfig | None = None) -> Snapshot:
    res = CollectorResult("chassis", True, 0.01, WALL, 100.0, 10.0,
                          collected=Collected(readings=readings))
    snap = Snapshot(seq, WALL, 100.0, (res,), control)
    return replace(snap, health=conditions.evaluate(snap, config or HealthConfig()))


def kinds(snap: Snapshot) -> list[tuple[str, str]]:
    return [(c.kind, c.source) for c in snap.health]


def fan(rpm: float | None, state: str = "ok", name: str = "Fan1A") -> FanReading:
    return FanReading("idrac", name, rpm, state=state, thresholds_rpm=FAN_THRESHOLDS)  # type: ignore[arg-type]


# --- conditions ---------------------------------------------------------------------------

@pytest.mark.parametrize(("psu", "kind"), [
    (PsuReading("idrac", "PS1", present=True), None),
    (PsuReading("idrac", "PS1", present=False), "psu_absent"),
    (PsuReading("idrac", "PS1", present=True, failed=True), "psu_failed"),
    (PsuReading("idrac", "PS1", present=True, ac_lost=True), "psu_failed"),
    (PsuReading("idrac", "PS1", present=True, predictive_failure=True),
     "psu_predictive_failure"),
])
def test_a_psu_has_at_most_one_condition(psu: PsuReading, kind: str | None) -> None:
    found = conditions.psu(psu)
    assert (found.kind if found else None) == kind
    if found:
        assert (found.bmc, found.sensor, found.source) == ("idrac", "PS1", "BMC idrac PSU PS1")


@pytest.mark.parametrize(("reading", "kind", "message"), [
    (fan(7920.0), None, ""),
    (fan(0.0), "fan_failed", "0 rpm"),
    (fan(120.0), "fan_failed", "120 rpm, below its lower critical 360 rpm"),  # coasting
    (fan(7920.0, "critical"), "fan_failed", "critical"),
    (fan(480.0, "warning"), "sensor_warning", "warning, 480 rpm"),
    (fan(None, "no_reading"), "sensor_no_reading", "no reading"),
])
def test_a_failed_fan_is_0_rpm_below_lower_critical_or_critical(
        reading: FanReading, kind: str | None, message: str) -> None:
    found = conditions.sensor(reading)
    assert (found.kind if found else None) == kind
    assert (found.message if found else "") == message


def test_a_temperature_over_its_upper_critical_threshold_is_critical() -> None:
    limits = (("upper_non_critical", 42.0), ("upper_critical", 47.0))
    hot = ChassisTemperature("idrac", "Inlet Temp", 48.0, "ok", limits)
    found = conditions.sensor(hot)
    assert found is not None and found.kind == "sensor_critical"
    assert found.message == "ok, 48 C (upper critical 47 C)"
    assert conditions.sensor(replace(hot, celsius=30.0)) is None
    volt = ChassisVoltage("idrac", "12V", 9.0, "critical")
    assert conditions.sensor(volt).kind == "sensor_critical"  # type: ignore[union-attr]


def test_redundancy_psu_and_fan() -> None:
    ok = PsuReading("idrac", "PS1", present=True)
    bad = PsuReading("idrac", "PS2", present=True, failed=True)
    assert [c.kind for c in conditions.psu_redundancy([ok, bad])] == ["psu_redundancy_lost"]
    assert conditions.psu_redundancy([ok, replace(bad, failed=False)]) == []
    assert conditions.psu_redundancy([bad]) == []  # a single-PSU chassis has none to lose
    group = FanRedundancy("idrac", "Fan Redundancy", False)
    assert conditions.fan_redundancy(group).kind == "fan_redundancy_lost"  # type: ignore[union-attr]
    assert conditions.fan_redundancy(replace(group, redundant=True)) is None


def gpu(**slow: object) -> GpuReading:
    return GpuReading(0, "GPU-a", "Tesla P40", True, fast=GpuFast(clock_events=0x1),
                      slow=GpuSlow(**slow))  # type: ignore[arg-type]


def test_gpu_conditions() -> None:
    assert conditions.gpu_conditions(gpu()) == []
    lost = GpuReading(0, "GPU-a", "Tesla P40", False, error="gpu_is_lost")
    assert [(c.kind, c.message) for c in conditions.gpu_conditions(lost)] == [
        ("gpu_lost", "gpu_is_lost")]
    assert [c.kind for c in conditions.gpu_conditions(gpu(ecc_uncorrected_errors_total=2))] == [
        "gpu_ecc_uncorrected"]
    assert [c.kind for c in conditions.gpu_conditions(gpu(remap_pending=True))] == [
        "gpu_remap_pending"]
    assert [c.kind for c in conditions.gpu_conditions(
        gpu(remap_pending=True, remap_failed=True))] == ["gpu_remap_failed"]
    hot = replace(gpu(), fast=GpuFast(clock_events=0x40 | 0x1))
    (found,) = conditions.gpu_conditions(hot)
    assert (found.kind, found.message, found.gpu) == ("gpu_thermal_slowdown",
                                                      "clocks cut: hw_thermal", 0)
    power = replace(gpu(), fast=GpuFast(clock_events=0x4))  # sw_power_cap is not thermal
    assert conditions.gpu_conditions(power) == []


def test_xids_count_within_the_window() -> None:
    nvml = NvmlReading(True, xids=(XidCount(0, "GPU-a", 79, 1, WALL - 60),
                                   XidCount(1, "GPU-b", 13, 2, WALL - 3600)))
    snap = snapshot(nvml)
    assert kinds(snap) == [("gpu_xid", "GPU 0")]
    assert snap.health[0].message == "XID 79"
    longer = snapshot(nvml, config=HealthConfig(xid_window_seconds=7200))
    assert kinds(longer) == [("gpu_xid", "GPU 0"), ("gpu_xid", "GPU 1")]


def test_ignored_conditions_are_listed_but_not_counted() -> None:
    snap = snapshot(BMC, fan(480.0, "warning"), PsuReading("idrac", "PS2", present=False),
                    config=HealthConfig(ignore=("psu_absent", "sensor_warning")))
    assert [(c.kind, c.counted) for c in snap.health] == [("psu_absent", False),
                                                          ("sensor_warning", False)]
    section = hardware.build(snap, 100.0)
    assert isinstance(section.data, dict) and section.data["status"] == "ok"
    assert section.reasons == ()  # the daemon's own health is not the hardware's


def test_every_condition_kind_has_an_alert_rule_or_is_ignored_by_default() -> None:
    """The defaults match the alert rules: a kind counts by default iff a rule fires on it."""
    rules = {rule["alert"] for group in yaml.safe_load(ALERTS_FILE.read_text())["groups"]
             for rule in group["rules"]}
    assert set(conditions.ALERTS) == set(CONDITION_KINDS)
    for kind, alert in conditions.ALERTS.items():
        assert alert is None or alert in rules, (kind, alert)
    unalerted = {kind for kind, alert in conditions.ALERTS.items() if alert is None}
    assert unalerted == set(HealthConfig().ignore)


def test_every_condition_kind_has_a_message_id_and_the_ids_are_unique() -> None:
    assert set(CONDITION_KINDS) <= set(MESSAGE_IDS)
    ids = list(MESSAGE_IDS.values())
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


def test_the_hardware_section_renders_each_condition_with_its_source() -> None:
    snap = snapshot(BMC, fan(0.0), PsuReading("idrac", "PS2", present=True, failed=True),
                    PsuReading("idrac", "PS1", present=True))
    section = hardware.build(snap, 100.0)
    lines = hardware.render(section.data, Style(False))
    assert lines == ["hardware  faulty",
                     "  - critical  BMC idrac PSU PS2: failed  [psu_failed]",
                     "  - warning  BMC idrac PSUs: 1 of 2 power supplies working  "
                     "[psu_redundancy_lost]",
                     "  - critical  BMC idrac fan Fan1A: 0 rpm  [fan_failed]"]
    assert hardware.faulty({"hardware": section.data})
    assert not hardware.faulty({"hardware": {"status": "ok", "conditions": []}})
    assert not hardware.faulty({})  # an older daemon: no verdict, no change in exit code


# --- events ------------------------------------------------------------------------------

def run(*snaps: Snapshot) -> list[list[events.Event]]:
    memory, out = Memory(), []
    for snap in snaps:
        found, memory = events.diff(memory, snap)
        out.append(list(found))
    return out


def test_one_event_per_change_and_none_while_nothing_changes() -> None:
    ok, broken = fan(7920.0), fan(0.0)
    ticks = run(snapshot(BMC, ok), snapshot(BMC, broken), snapshot(BMC, broken),
                snapshot(BMC, fan(120.0)), snapshot(BMC, ok), snapshot(BMC, ok))
    assert [len(t) for t in ticks] == [0, 1, 0, 0, 1, 0]
    raised, cleared = ticks[1][0], ticks[4][0]
    assert (raised.kind, raised.severity, raised.message) == (
        "fan_failed", "critical", "BMC idrac fan Fan1A: 0 rpm")
    assert dict(raised.fields) == {"CONDITION": "fan_failed", "BMC": "idrac", "SENSOR": "Fan1A"}
    assert raised.message_id == MESSAGE_IDS["fan_failed"]
    assert (cleared.kind, cleared.severity, cleared.fault) == ("condition_cleared", "info",
                                                               "critical")
    assert cleared.message == ("BMC idrac fan Fan1A: recovered (was fan_failed: 120 rpm, "
                               "below its lower critical 360 rpm)")  # its last words


def test_a_change_of_condition_on_one_subject_is_one_event() -> None:
    psu = PsuReading("idrac", "PS1", present=True)
    ticks = run(snapshot(BMC, replace(psu, predictive_failure=True)),
                snapshot(BMC, replace(psu, failed=True, predictive_failure=True)))
    assert [e.kind for e in ticks[1]] == ["psu_failed"]
    assert ticks[1][0].message.endswith("(was psu_predictive_failure: predicts its own failure)")


def test_a_bmc_that_stops_answering_does_not_recover_its_faults() -> None:
    down = replace(BMC, up=False, error="no reply")
    ticks = run(snapshot(BMC, fan(0.0)), snapshot(down), snapshot(BMC, fan(0.0)),
                snapshot(BMC, fan(7920.0)))
    assert [[e.kind for e in t] for t in ticks] == [["fan_failed"], [], [],
                                                    ["condition_cleared"]]


def test_zone_mode_and_licence_state_changes() -> None:
    driver = FanControlReading("dell", "idrac", True, "")

    def zone(mode: ZoneMode, reason: str = "") -> ControlReading:
        return ControlReading((ZoneReading("gpu", mode, reason, 75.0, 85.0, "", None, None,
                                           0.15, 1.0),), driver)

    def lic(state: str, severity: str = "ok") -> LicenceReading:
        return LicenceReading(0, "GPU-a", "vgpu", state, severity)

    ticks = run(snapshot(lic("licensed"), control=zone(ZoneMode.CONTROL)),
                snapshot(lic("licensed"), control=zone(ZoneMode.CONTROL)),
                snapshot(lic("expired", "critical"),
                         control=zone(ZoneMode.FAILSAFE, "stale_input")))
    assert [len(t) for t in ticks] == [2, 0, 2]
    mode, licence = ticks[2]
    assert (mode.kind, mode.severity, mode.message) == (
        "zone_mode", "warning", "fan zone gpu: control -> failsafe (stale_input)")
    assert dict(mode.fields) == {"ZONE": "gpu", "MODE": "failsafe"}
    assert (licence.kind, licence.severity) == ("licence_state", "critical")
    assert licence.message == "GPU 0 vGPU licence: licensed -> expired"


def test_ignored_kinds_make_no_event() -> None:
    ticks = run(snapshot(BMC, fan(7920.0)), snapshot(BMC, fan(480.0, "warning")),
                snapshot(BMC, fan(7920.0)))
    assert ticks == [[], [], []]  # sensor_warning is ignored by default
    cfg = HealthConfig(ignore=())
    ticks = run(snapshot(BMC, fan(7920.0), config=cfg),
                snapshot(BMC, fan(480.0, "warning"), config=cfg))
    assert [e.kind for e in ticks[1]] == ["sensor_warning"]
