"""The redfish-dell driver: PATCHes counted as sent, the duty shown as held, limits kept on
release, offset steps from the iDRAC's attribute registry."""

from __future__ import annotations

from typing import Any

from gpuwatchd.clock import ManualClock
from gpuwatchd.config import RedfishDellConfig
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
from gpuwatchd.control.factory import Built
from gpuwatchd.control.loop import FanController
from gpuwatchd.daemon.cli import _demo_config
from gpuwatchd.errors import Unsupported
from tests.unit.test_fan_controller import gpu_snapshot

REGISTRY = f"{REGISTRIES}/ManagerAttributeRegistry"
REGISTRY_JSON = f"{REGISTRY}/ManagerAttributeRegistry.v1_0_0.json"


class FakeIdrac:
    """The attribute resource, and the attribute registry where given.

    NOTE(iDRAC9 4.40.00.00, PowerEdge R740xd): ``MinimumFanSpeed`` reads 255 ("not set")
    while ``MFSMinimumLimit``/``MFSMaximumLimit`` say 9-100; the resource names its registry
    (``"AttributeRegistry": "ManagerAttributeRegistry.v1_0_0"``), served at
    ``/redfish/v1/Registries/ManagerAttributeRegistry`` with a ``Location[].Uri`` to the JSON.
    """

    def __init__(self, attrs: dict[str, Any], offsets: list[str] | None = None) -> None:
        self.attrs = attrs
        self.patches: list[dict[str, Any]] = []
        self.docs: dict[str, dict[str, Any]] = {}
        if offsets is not None:
            self.docs[REGISTRY] = {"Id": "ManagerAttributeRegistry", "Location": [
                {"Language": "en", "Uri": REGISTRY_JSON}]}
            self.docs[REGISTRY_JSON] = {"Id": "ManagerAttributeRegistry.v1_0_0",
                                        "RegistryEntries": {"Attributes": [
                {"AttributeName": OFFSET, "Type": "Enumeration",
                 "Value": [{"ValueDisplayName": n, "ValueName": n} for n in offsets]},
                {"AttributeName": MFS, "Type": "Integer", "LowerBound": 0,
                 "UpperBound": 100}]}}

    def get(self, path: str) -> dict[str, Any]:
        if path == PATHS[0]:
            return {"AttributeRegistry": "ManagerAttributeRegistry.v1_0_0",
                    "Attributes": dict(self.attrs)}
        if path in self.docs:
            return self.docs[path]
        raise Unsupported(f"{path}: HTTP 404")

    def patch(self, path: str, body: dict[str, Any]) -> None:
        self.patches.append(dict(body["Attributes"]))
        self.attrs.update(body["Attributes"])


def test_writes_total_counts_patches_sent_and_the_duty_is_the_one_held() -> None:
    idrac = FakeIdrac({OFFSET: "Off"}, offsets=["Off", "Low", "Medium", "High", "Max"])
    driver = RedfishDellDriver(idrac, RedfishDellConfig(attribute="offset"), "idrac",
                               ManualClock().monotonic)
    ctl = FanController(_demo_config(), lambda: Built(driver, []), ManualClock())
    try:
        duties, control = set(), None
        for t in range(25):  # 25 s of a zone whose duty moves every tick
            step = ctl.step(gpu_snapshot(100.0 + t))
            control = step.driver
            duties |= {z.duty for z in step.zones if z.duty is not None}
        assert control is not None and len(duties) > 1
        assert control.writes == len(idrac.patches) >= 1
        held = driver.duty_of(idrac.attrs[OFFSET])
        assert dict(control.channels) == {str(ALL): held}
    finally:
        ctl.release()


def test_release_never_writes_a_minimum_outside_the_published_limits() -> None:
    idrac = FakeIdrac({MFS: 255, MFS_MIN: 9, MFS_MAX: 100})
    driver = RedfishDellDriver(idrac, RedfishDellConfig(), "idrac", ManualClock().monotonic)
    driver.take_control()
    written = driver.write({ALL: 0.4})
    assert written.sent and dict(written.duties) == {ALL: 0.4}
    assert not driver.write({ALL: 0.401}).sent  # the same 40 %: nothing sent
    driver.release()
    assert idrac.patches == [{MFS: 40}, {MFS: 9}]
    assert all(MFS not in p or 9 <= p[MFS] <= 100 for p in idrac.patches)


def test_offset_steps_come_from_the_registry_the_idrac_serves() -> None:
    idrac = FakeIdrac({OFFSET: "Off"}, offsets=["Off", "Low", "High"])  # no Medium, no Max
    driver = RedfishDellDriver(idrac, RedfishDellConfig(attribute="offset"), "idrac",
                               ManualClock().monotonic)
    driver.take_control()
    assert [driver.value_for(d) for d in (0.0, 0.2, 0.3, 0.6, 0.9)] == \
        ["Off", "Low", "High", "High", "High"]
    plain = RedfishDellDriver(FakeIdrac({OFFSET: "Off"}), RedfishDellConfig(attribute="offset"),
                              "idrac", ManualClock().monotonic)
    plain.take_control()  # no registry: the R730 steps
    assert plain.value_for(0.3) == "Medium"
