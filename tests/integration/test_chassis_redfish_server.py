"""The Redfish chassis collector, through the real DMTF redfish library, against an HTTPS
Redfish service started by the test on 127.0.0.1 (tests/integration/peers/redfish_server.py).
"""

# ruff: noqa: S106 - made-up test passwords, asserted never to leak
from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gpuwatchd.clock import ManualClock, SystemClock
from gpuwatchd.collectors.chassis_redfish import ChassisRedfishCollector, build
from gpuwatchd.collectors.runner import CollectorRunner
from gpuwatchd.config import BmcConfig, loads
from gpuwatchd.errors import Refused
from gpuwatchd.hardware import Hardware
from gpuwatchd.links.redfish import RedfishLink
from gpuwatchd.model import BmcReading, ChassisTemperature, Collected, FanReading, PsuReading
from tests.fakes.redfish_trees import V1, dell_legacy, dmtf_modern
from tests.integration.peers.redfish_server import SESSIONS, RedfishServer, make_certificate
from tests.series import duplicates_in_families

CERT: dict[str, tuple[Path, Path]] = {}


@pytest.fixture
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if "cert" not in CERT:
        CERT["cert"] = make_certificate(tmp_path_factory.mktemp("tls"))
    return CERT["cert"]


@pytest.fixture
def dell(certificate: tuple[Path, Path]) -> Iterator[RedfishServer]:
    with RedfishServer(dell_legacy(), certificate) as server:
        yield server


@pytest.fixture
def modern(certificate: tuple[Path, Path]) -> Iterator[RedfishServer]:
    with RedfishServer(dmtf_modern(), certificate) as server:
        yield server


def config(server: RedfishServer, tmp_path: Path, password: str | None = None,
           **kw: Any) -> BmcConfig:
    secret = tmp_path / f"pw-{len(list(tmp_path.iterdir()))}"
    secret.write_text(password if password is not None else server.password)
    secret.chmod(0o600)
    fields: dict[str, Any] = {"name": "rf", "protocol": "redfish", "host": "127.0.0.1",
                              "port": server.port, "username": server.username,
                              "password_file": str(secret), "ca_file": str(server.certificate[0])
                              if server.certificate else None, "timeout_seconds": 1.0,
                              "max_requests_per_second": 500}
    fields.update(kw)
    return BmcConfig(**fields)


def collector(cfg: BmcConfig, clock: Any = None) -> ChassisRedfishCollector:
    return ChassisRedfishCollector(cfg, RedfishLink(cfg, clock or SystemClock()))


def of(out: Collected, kind: type) -> list[Any]:
    return [r for r in out.readings if isinstance(r, kind)]


def test_dell_legacy_tree_over_https_with_a_session(dell: RedfishServer, tmp_path: Path) -> None:
    c = collector(config(dell, tmp_path))
    out = c.collect()
    bmc = of(out, BmcReading)[0]
    assert (bmc.up, bmc.vendor, bmc.firmware, bmc.power_watts) == (True, "Dell", "4.40.00.00",
                                                                   312.0)
    assert {f.name: f.rpm for f in of(out, FanReading)}["System Board Fan2A"] == 4800
    assert {p.name: p.up for p in of(out, PsuReading)} == {"PS1": True, "PS2": False}
    assert all(kind == "session" for m, p, kind in dell.requests if m == "GET" and p != V1)
    assert duplicates_in_families(out.families) == []
    c.close()
    assert dell.deleted == [f"{SESSIONS}/1"] and not dell.tokens, "logged out on stop"


def test_modern_tree_several_chassis_and_expand(modern: RedfishServer, tmp_path: Path) -> None:
    c = collector(config(modern, tmp_path))
    out = c.collect()
    assert len(of(out, FanReading)) == 6
    temps = {t.name: t.celsius for t in of(out, ChassisTemperature)}
    assert temps["Chassis Intake Temp"] == 24.8 and temps["GPU1 Temp"] == 67.0
    modern.tree[f"{V1}/Chassis/GPUSled/Sensors/GPU1Temp"]["Reading"] = 81.5
    fans_before = modern.gets(f"{V1}/Chassis/1U/ThermalSubsystem/Fans/Bay1")
    out = c.collect()
    assert {t.name: t.celsius for t in of(out, ChassisTemperature)}["GPU1 Temp"] == 81.5
    assert modern.gets(f"{V1}/Chassis/1U/ThermalSubsystem/Fans/Bay1") == fans_before, \
        "fans come from one $expand GET per collection"
    assert duplicates_in_families(out.families) == []
    c.close()


def test_basic_auth_when_configured_or_without_session_service(
        dell: RedfishServer, tmp_path: Path) -> None:
    out = collector(config(dell, tmp_path, redfish_auth="basic")).collect()
    assert of(out, BmcReading)[0].up
    dell.session_service = False
    dell.requests.clear()
    out = collector(config(dell, tmp_path)).collect()
    assert of(out, BmcReading)[0].up
    assert {kind for m, p, kind in dell.requests if m == "GET" and p != V1} == {"basic"}


def test_tls_is_verified_unless_explicitly_off(dell: RedfishServer, tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    out = collector(config(dell, tmp_path, ca_file=None)).collect()
    bmc = of(out, BmcReading)[0]
    assert not bmc.up and "TLS certificate not trusted" in bmc.error and "ca_file" in bmc.error
    assert not dell.tokens, "no credentials sent to an unverified server"
    caplog.set_level(logging.WARNING)
    out = collector(config(dell, tmp_path, ca_file=None, tls_verify=False)).collect()
    assert of(out, BmcReading)[0].up
    assert "TLS certificate verification is off" in caplog.text


def test_wrong_password_clear_error_no_secret(dell: RedfishServer, tmp_path: Path,
                                              caplog: pytest.LogCaptureFixture,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.DEBUG)
    c = collector(config(dell, tmp_path, password="Wr0ng-Redfish-Pw"))
    out = c.collect()
    bmc = of(out, BmcReading)[0]
    assert not bmc.up and f"BMC rf (127.0.0.1:{dell.port})" in bmc.error
    assert "wrong user name or password" in bmc.error
    with pytest.raises(Refused) as info:
        RedfishLink(config(dell, tmp_path, password="Wr0ng-Redfish-Pw"), SystemClock()).login()
    captured = capsys.readouterr()
    for text in (caplog.text, captured.out, captured.err, bmc.error, str(info.value),
                 repr(out.families)):
        assert "Wr0ng-Redfish-Pw" not in text and dell.password not in text


def test_401_on_a_resource_and_session_expiry(dell: RedfishServer, tmp_path: Path) -> None:
    c = collector(config(dell, tmp_path))
    assert of(c.collect(), BmcReading)[0].up
    dell.expire_sessions()  # every token now answers 401: the link logs in again, once
    out = c.collect()
    assert of(out, BmcReading)[0].up and c.link.sessions_opened == 2
    dell.status[f"{V1}/Chassis/System.Embedded.1/Power"] = 401
    out = c.collect()
    bmc = of(out, BmcReading)[0]
    assert not bmc.up and "HTTP 401" in bmc.error


def test_404_optional_500_and_malformed_json(modern: RedfishServer, tmp_path: Path) -> None:
    env = f"{V1}/Chassis/1U/EnvironmentMetrics"
    thermal_metrics = f"{V1}/Chassis/1U/ThermalSubsystem/ThermalMetrics"
    modern.status[env] = 404
    c = collector(config(modern, tmp_path))
    out = c.collect()
    assert of(out, BmcReading)[0].up and of(out, BmcReading)[0].power_watts is None
    modern.status[f"{V1}/Chassis/1U/PowerSubsystem/PowerSupplies/Bay2"] = 500
    modern.malformed.add(thermal_metrics)
    out = c.collect()
    bmc = of(out, BmcReading)[0]
    assert bmc.up and "HTTP 500" in bmc.error and "malformed JSON" in bmc.error
    assert [p.name for p in of(out, PsuReading)] == ["Power Supply Bay 1"]
    assert "Chassis Intake Temp" not in {t.name for t in of(out, ChassisTemperature)}
    assert modern.gets(env) == 1, "an absent resource is not asked for again"


def test_slow_responses_within_and_beyond_the_timeout(dell: RedfishServer,
                                                      tmp_path: Path) -> None:
    thermal = f"{V1}/Chassis/System.Embedded.1/Thermal"
    cfg = loads(f"""
interval_seconds: 2
gpus: {{enabled: false}}
bmcs:
  - {{name: rf, protocol: redfish, host: 127.0.0.1, port: {dell.port}, username: root,
     password_file: {config(dell, tmp_path).password_file}, ca_file: {dell.certificate[0]},
     timeout_seconds: 0.5}}
""")
    scheduled = build(cfg, Hardware(clock=SystemClock()))[0]
    runner = CollectorRunner(scheduled, SystemClock())
    try:
        runner.start_if_due()
        assert runner.finish().collected.readings[0].up  # type: ignore[attr-defined]
        dell.delay[thermal] = 0.2  # slow but within the timeout
        runner._next_due = float("-inf")
        runner.start_if_due()
        assert runner.finish().collected.readings[0].up  # type: ignore[attr-defined]
        dell.delay[thermal] = 3.0  # a BMC that stops answering mid-tick
        runner._next_due = float("-inf")
        started = time.monotonic()
        runner.start_if_due()
        result = runner.finish()
        assert time.monotonic() - started < scheduled.deadline_seconds + 0.2
        bmc = result.collected.readings[0]
        assert isinstance(bmc, BmcReading) and not bmc.up and "no answer within 0.5 s" in bmc.error
    finally:
        dell.delay.clear()
        runner.close()


def test_a_dead_service_backs_off(dell: RedfishServer, tmp_path: Path) -> None:
    clock = ManualClock()
    c = collector(config(dell, tmp_path), clock)
    assert of(c.collect(), BmcReading)[0].up
    dell.stop()
    assert not of(c.collect(), BmcReading)[0].up
    assert not of(c.collect(), BmcReading)[0].up  # the login fails: backoff starts
    requests = len(dell.requests)
    error = of(c.collect(), BmcReading)[0].error
    assert "next attempt" in error and len(dell.requests) == requests
