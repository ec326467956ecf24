"""The Redfish collector and the redfish-dell driver against a third-party Redfish server:
sushy-tools' static emulator serving mockups in the shapes of iDRAC9 (legacy beside modern),
HPE iLO 4 and iLO 5, and a DMTF modern chassis with a Sensors collection
(tests/data/redfish). The readings must be the ones the in-process fake gives for the same
tree, with no duplicate series. Needs ``sushy-static`` (the dev extra): fails, never skips."""

# ruff: noqa: S105 - made-up test passwords
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gpuwatchd.clock import ManualClock
from gpuwatchd.collectors.chassis_redfish import ChassisRedfishCollector
from gpuwatchd.config import BmcConfig, RedfishDellConfig
from gpuwatchd.control.drivers.redfish_oem import (
    ALL,
    MFS,
    MFS_MAX,
    MFS_MIN,
    OFFSET,
    PATHS,
    REGISTRIES,
    RedfishDellDriver,
)
from gpuwatchd.links.redfish import RedfishLink
from gpuwatchd.links.redfish_write import RedfishWriteLink
from gpuwatchd.model import BmcReading, Collected
from tests.fakes.redfish import FakeRedfish
from tests.fakes.redfish_trees import CAPTURED, Tree, captured
from tests.integration.peers.sushy import SushyStatic, sushy_static
from tests.series import duplicates_in_families
from tests.unit.test_chassis_redfish import make

pytestmark = pytest.mark.peer
PASSWORD = "sushy-test-pw"


def bmc_config(peer: SushyStatic, tmp_path: Path) -> BmcConfig:
    secret = tmp_path / "pw"
    secret.write_text(PASSWORD)
    secret.chmod(0o600)
    return BmcConfig(name="idrac", protocol="redfish", host="127.0.0.1", port=peer.port,
                     username="root", password_file=str(secret),
                     ca_file=str(peer.certificate[0]), timeout_seconds=2.0,
                     redfish_auth="basic")  # sushy-static has no SessionService


def comparable(out: Collected) -> list[Any]:
    """The readings without the link counters (request counts differ: no $expand there)."""
    return [r for r in out.readings if not isinstance(r, BmcReading)] + [
        (r.up, r.identity, r.power) for r in out.readings if isinstance(r, BmcReading)]


def test_sushy_static_is_installed() -> None:
    assert Path(sushy_static()).exists()


@pytest.mark.parametrize("name", CAPTURED)
def test_a_third_party_server_gives_the_readings_the_fake_gives(name: str,
                                                                tmp_path: Path) -> None:
    with SushyStatic(captured(name), tmp_path) as peer:
        cfg = bmc_config(peer, tmp_path)
        collector = ChassisRedfishCollector(cfg, RedfishLink(cfg, ManualClock()))
        try:
            first, second = collector.collect(), collector.collect()
        finally:
            collector.close()
    bmc = next(r for r in second.readings if isinstance(r, BmcReading))
    assert bmc.up, bmc.error
    assert duplicates_in_families(second.families) == []
    expected = make(FakeRedfish(captured(name))).collect()
    assert comparable(first) == comparable(second) == comparable(expected)
    assert PASSWORD not in repr(second)


def idrac_with_attributes() -> Tree:
    """The iDRAC9 mockup plus its Dell attribute resource and attribute registry.

    NOTE(iDRAC9 6.10.30.00, PowerEdge R750): ``.../Oem/Dell/DellAttributes/System.Embedded.1``
    names ``ManagerAttributeRegistry.v1_0_0``; the registry index lists its JSON in
    ``Location[].Uri``; ``MinimumFanSpeed`` 255 ("not set") with limits 9-100."""
    tree = captured("idrac9_modern")
    registry = f"{REGISTRIES}/ManagerAttributeRegistry"
    uri = f"{registry}/ManagerAttributeRegistry.v1_0_0.json"
    tree[PATHS[0]] = {"@odata.id": PATHS[0], "Id": "System.Embedded.1",
                      "AttributeRegistry": "ManagerAttributeRegistry.v1_0_0",
                      "Attributes": {MFS: 255, MFS_MIN: 9, MFS_MAX: 100, OFFSET: "Off"}}
    tree[registry] = {"@odata.id": registry, "Id": "ManagerAttributeRegistry",
                      "Location": [{"Language": "en", "Uri": uri}]}
    tree[uri] = {"Id": "ManagerAttributeRegistry.v1_0_0", "RegistryEntries": {"Attributes": [
        {"AttributeName": OFFSET, "Type": "Enumeration",
         "Value": [{"ValueName": n, "ValueDisplayName": n}
                   for n in ("Off", "Low", "Medium", "High", "Max")]},
        {"AttributeName": MFS, "Type": "Integer", "LowerBound": 0, "UpperBound": 100}]}}
    return tree


def test_the_dell_driver_patches_a_third_party_server(tmp_path: Path) -> None:
    with SushyStatic(idrac_with_attributes(), tmp_path) as peer:
        cfg = bmc_config(peer, tmp_path)
        link = RedfishWriteLink(cfg, ManualClock())
        clock = ManualClock()
        driver = RedfishDellDriver(link, RedfishDellConfig(), "idrac", clock.monotonic)
        try:
            driver.take_control()
            assert driver.write({ALL: 0.42}).sent
            assert not driver.write({ALL: 0.421}).sent
            driver.release()
        finally:
            link.close()
        held = peer.get(PATHS[0])
        bodies = peer.bodies()
    # what it received: the floor, then on release the lower limit, never the 255 found
    assert bodies == [{"Attributes": {MFS: 42}}, {"Attributes": {MFS: 9}}]
    # sushy-static stores no PATCH (it answers 204): the resource still reads as found
    assert held is not None and held["Attributes"][MFS] == 255
