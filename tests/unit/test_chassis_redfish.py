"""The Redfish link and collector over FakeRedfish, for both schema generations."""

# ruff: noqa: S105, S106 - made-up test passwords, asserted never to leak
from __future__ import annotations

import logging
from typing import Any

import pytest

from gpuwatchd.clock import ManualClock
from gpuwatchd.collectors import chassis_metrics
from gpuwatchd.collectors.chassis_redfish import ChassisRedfishCollector
from gpuwatchd.config import BmcConfig
from gpuwatchd.errors import Refused, Transient, Unsupported
from gpuwatchd.links.credentials import Secret
from gpuwatchd.links.redfish import RedfishLink
from gpuwatchd.model import BmcReading, ChassisTemperature, Collected, FanReading, PsuReading
from tests.fakes.redfish import FakeRedfish, timeout_error
from tests.fakes.redfish_trees import V1, dell_legacy, dmtf_modern

PASSWORD = "calvin"


def make(svc: FakeRedfish, password: str = PASSWORD, clock: ManualClock | None = None,
         sleeps: list[float] | None = None, **kw: Any) -> ChassisRedfishCollector:
    fields: dict[str, Any] = {"name": "idrac", "protocol": "redfish", "host": "192.0.2.20",
                              "username": "root", "password_file": "/x"}
    fields.update(kw)
    cfg = BmcConfig(**fields)
    link = RedfishLink(cfg, clock or ManualClock(), client_factory=svc.factory,
                       password=lambda: Secret(password),
                       sleep=(sleeps.append if sleeps is not None else lambda s: None))
    return ChassisRedfishCollector(cfg, link)


def readings(out: Collected, kind: type) -> list[Any]:
    return [r for r in out.readings if isinstance(r, kind)]


def series(out: Collected, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {s.labels: s.value for f in out.families if f.name == name for s in f.samples}


def test_legacy_dell_tree() -> None:
    svc = FakeRedfish(dell_legacy())
    out = make(svc).collect()
    bmc = readings(out, BmcReading)[0]
    assert (bmc.up, bmc.vendor, bmc.firmware, bmc.power_watts) == (
        True, "Dell", "4.40.00.00", 312.0)
    fans = {f.name: f.rpm for f in readings(out, FanReading)}
    assert fans == {"System Board Fan1A": 4680, "System Board Fan1B": 4560,
                    "System Board Fan2A": 4800, "System Board Fan2B": 4680}  # 6A is Absent
    temps = {t.name: (t.celsius, t.state) for t in readings(out, ChassisTemperature)}
    assert temps["System Board Exhaust Temp"] == (38, "ok")
    assert temps["CPU2 Temp"] == (None, "no_reading")
    psus = {p.name: p for p in readings(out, PsuReading)}
    assert psus["PS1"].up and psus["PS1"].input_watts == 170 and psus["PS1"].capacity_watts == 750
    assert not psus["PS2"].up and psus["PS2"].failed and psus["PS2"].ac_lost
    assert series(out, "gpuwatchd_temperature_threshold_celsius")[
        (("bmc", "idrac"), ("sensor", "System Board Inlet Temp"),
         ("threshold", "upper_critical"))] == 47
    assert series(out, "gpuwatchd_fan_redundancy_ok") == {
        (("bmc", "idrac"), ("group", "System Board Fan Redundancy")): 1.0}
    assert series(out, "gpuwatchd_psu_power_watts")[
        (("bmc", "idrac"), ("psu", "PS1"), ("direction", "output"))] == 155


def test_modern_tree_with_two_chassis_and_expand() -> None:
    svc = FakeRedfish(dmtf_modern())
    c = make(svc)
    out = c.collect()
    bmc = readings(out, BmcReading)[0]
    assert (bmc.vendor, bmc.firmware, bmc.power_watts) == ("Contoso", "1.45.455b66-rev4", 374.0)
    fans = {f.name: (f.rpm, f.ratio) for f in readings(out, FanReading)}
    assert fans["Fan 1 1U"] == (6000, pytest.approx(0.38))  # same names in both chassis
    assert fans["Fan 2 GPUSled"][0] == 7150 and len(fans) == 6
    temps = {t.name: t for t in readings(out, ChassisTemperature)}
    assert temps["Chassis Exhaust Temp"].celsius == 41.0
    assert temps["Chassis Exhaust Temp"].upper_critical_celsius == 60
    assert temps["GPU1 Temp"].celsius == 67.0 and temps["GPU1 Temp"].input_id == \
        "bmc:idrac:GPU1 Temp"
    psus = {p.name: p for p in readings(out, PsuReading)}
    assert psus["Power Supply Bay 1"].input_watts == 420.0
    assert psus["Power Supply Bay 2"].ac_lost and not psus["Power Supply Bay 2"].up
    svc.requests.clear()
    svc.tree[f"{V1}/Chassis/1U/ThermalSubsystem/Fans/Bay1"]["SpeedPercent"]["SpeedRPM"] = 9100
    out = c.collect()
    assert {f.name: f.rpm for f in readings(out, FanReading)}["Fan 1 1U"] == 9100
    fan_gets = [p for p, _ in svc.requests if "/Fans" in p]
    assert len(fan_gets) == 2, "one expanded GET per fan collection, not one per fan"


@pytest.mark.parametrize("tree", [dell_legacy, dmtf_modern])
def test_the_families_are_rendered_from_the_readings(tree: Any) -> None:
    out = make(FakeRedfish(tree())).collect()
    assert out.families == chassis_metrics.render(out.readings)
    temps = [t for t in readings(out, ChassisTemperature) if t.thresholds_celsius]
    assert temps, "temperatures carry their thresholds"
    assert all(dict(t.thresholds_celsius).get("upper_critical") == t.upper_critical_celsius
               for t in temps)


def test_thresholds_give_modern_temperatures_their_state() -> None:
    tree = dmtf_modern()
    tree[f"{V1}/Chassis/1U/ThermalSubsystem/ThermalMetrics"]["TemperatureReadingsCelsius"][1][
        "Reading"] = 57.0
    out = make(FakeRedfish(tree)).collect()
    states = {t.name: t.state for t in readings(out, ChassisTemperature)}
    assert states["Chassis Exhaust Temp"] == "warning" and states["CPU1 Temp"] == "ok"


def test_optional_resource_404_is_absent_and_not_asked_again() -> None:
    svc = FakeRedfish(dmtf_modern())
    env = f"{V1}/Chassis/1U/EnvironmentMetrics"
    metrics = f"{V1}/Chassis/1U/PowerSubsystem/PowerSupplies/Bay1/Metrics"
    svc.status[env] = svc.status[metrics] = 404
    c = make(svc)
    out = c.collect()
    assert readings(out, BmcReading)[0].up
    assert series(out, "gpuwatchd_chassis_power_watts") == {}
    assert readings(out, PsuReading)[0].input_watts is None
    c.collect()
    assert sum(1 for p, _ in svc.requests if p == env) == 1


def test_a_500_loses_one_resource_for_one_tick_not_the_bmc() -> None:
    svc = FakeRedfish(dell_legacy())
    power = f"{V1}/Chassis/System.Embedded.1/Power"
    svc.status[power] = 500
    c = make(svc)
    out = c.collect()
    bmc = readings(out, BmcReading)[0]
    assert bmc.up and "HTTP 500" in bmc.error and readings(out, PsuReading) == []
    assert readings(out, FanReading)
    assert series(out, "gpuwatchd_bmc_errors_total")[(("bmc", "idrac"), ("error", "http_500"))]
    del svc.status[power]
    assert readings(c.collect(), PsuReading)


def test_malformed_json_is_transient_and_named() -> None:
    svc = FakeRedfish(dell_legacy())
    svc.malformed.add(f"{V1}/Chassis/System.Embedded.1/Thermal")
    out = make(svc).collect()
    bmc = readings(out, BmcReading)[0]
    assert bmc.up and "malformed JSON" in bmc.error and readings(out, FanReading) == []


def test_session_expiry_logs_in_again_once() -> None:
    svc = FakeRedfish(dell_legacy())
    c = make(svc)
    c.collect()
    svc.expired = True
    out = c.collect()
    assert readings(out, BmcReading)[0].up and svc.sessions == 2
    assert c.link.sessions_opened == 2


def test_no_session_service_falls_back_to_basic_auth() -> None:
    svc = FakeRedfish(dell_legacy())
    svc.session_service = False
    c = make(svc)
    assert readings(c.collect(), BmcReading)[0].up and svc.sessions == 0
    c.close()
    assert svc.logouts == 0


def test_close_logs_the_session_out() -> None:
    svc = FakeRedfish(dell_legacy())
    c = make(svc)
    c.collect()
    c.close()
    assert svc.logouts == 1


def test_wrong_password_refused_with_backoff_and_no_secret(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    clock = ManualClock()
    svc = FakeRedfish(dell_legacy())
    c = make(svc, password="Wr0ng-Secret", clock=clock)
    out = c.collect()
    bmc = readings(out, BmcReading)[0]
    assert not bmc.up and "wrong user name or password" in bmc.error
    assert "BMC idrac (192.0.2.20)" in bmc.error
    assert "Wr0ng-Secret" not in caplog.text + bmc.error + repr(out.families)
    logins = len(svc.clients)
    clock.advance(30)
    assert "next attempt" in readings(c.collect(), BmcReading)[0].error
    assert len(svc.clients) == logins, "no login attempt during the backoff (lockouts)"
    assert all("password" not in kwargs for kwargs in svc.clients)


def test_timeout_is_transient_and_the_bmc_down() -> None:
    svc = FakeRedfish(dell_legacy())
    link = make(svc).link
    link.login()
    svc.raise_on_get = timeout_error()
    with pytest.raises(Transient, match="no answer within 2 s"):
        link.get(f"{V1}/Chassis")
    assert not link.connected


def test_status_codes_map_to_errors() -> None:
    svc = FakeRedfish(dell_legacy())
    link = make(svc).link
    for status, error in ((403, Refused), (404, Unsupported), (503, Transient)):
        svc.status[f"{V1}/Chassis"] = status
        with pytest.raises(error, match=f"HTTP {status}"):
            link.get(f"{V1}/Chassis")


def test_tls_verified_by_default_ca_file_or_explicitly_off(
        caplog: pytest.LogCaptureFixture) -> None:
    svc = FakeRedfish(dell_legacy())
    make(svc).link.login()
    make(svc, ca_file="/etc/gpuwatchd/idrac-ca.pem").link.login()
    caplog.set_level(logging.WARNING)
    make(svc, tls_verify=False).link.login()
    cafiles = [k["cafile"] for k in svc.clients]
    assert cafiles[0] and cafiles[1] == "/etc/gpuwatchd/idrac-ca.pem" and cafiles[2] is None
    assert "TLS certificate verification is off" in caplog.text
    assert all(k["max_retry"] == 0 and k["timeout"] == 2.0 for k in svc.clients)


def test_requests_are_paced() -> None:
    sleeps: list[float] = []
    svc = FakeRedfish(dmtf_modern())
    c = make(svc, sleeps=sleeps, max_requests_per_second=5)
    c.collect()  # discovery + a tick: far more than 5 requests at once
    assert sleeps and all(0 < s <= 0.2 + 1e-9 for s in sleeps)
    assert len(svc.requests) - 5 <= len(sleeps) <= len(svc.requests)


def test_legacy_fans_in_percent_are_ratios_not_rpm() -> None:
    tree = dell_legacy()
    fan = tree[f"{V1}/Chassis/System.Embedded.1/Thermal"]["Fans"][0]
    fan.update({"Reading": 35, "ReadingUnits": "Percent"})
    out = make(FakeRedfish(tree)).collect()
    reading = next(f for f in readings(out, FanReading) if f.name == "System Board Fan1A")
    assert (reading.rpm, reading.ratio) == (None, 0.35)
    assert series(out, "gpuwatchd_fan_speed_ratio") == {
        (("bmc", "idrac"), ("fan", "System Board Fan1A")): 0.35}
