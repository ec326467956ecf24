"""Two Redfish resource trees, served by the fake client (unit) and the test server (integration).

``dell_legacy()``: shaped like an iDRAC9 4.x service: ``Chassis/System.Embedded.1/Thermal`` and
``Power`` (legacy schema), a second chassis without thermal resources, ``Vendor: Dell``.
``dmtf_modern()``: shaped like DMTF's public-rackmount1 mockup: ``ThermalSubsystem/Fans``,
``ThermalMetrics`` pointing at ``Sensors``, ``PowerSubsystem/PowerSupplies/{id}/Metrics``,
``EnvironmentMetrics``, ``$expand`` support, and a second chassis (a GPU sled) whose fans have
the same names as the main chassis' and whose temperatures are only in ``Sensors``.
Keys are paths without a trailing slash; tests change readings by editing the documents.

:func:`captured` loads the vendor-shaped trees of tests/data/redfish (iDRAC9 4.40 and 6.10,
iLO 4, iLO 5, a DMTF chassis with Sensors and a cooling unit); :func:`write_mockup` writes a
tree as the mockup directory sushy-tools' ``sushy-static`` serves.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

Tree = dict[str, dict[str, Any]]
V1 = "/redfish/v1"


def _ref(path: str) -> dict[str, str]:
    return {"@odata.id": path}


def _collection(path: str, members: list[str]) -> dict[str, Any]:
    return {"@odata.id": path, "Members": [_ref(m) for m in members],
            "Members@odata.count": len(members)}


def _ok(health: str = "OK", state: str = "Enabled") -> dict[str, str]:
    return {"State": state, "Health": health}


def _root(vendor: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    root = {"@odata.id": V1, "Id": "RootService", "RedfishVersion": "1.11.0", "Vendor": vendor,
            "Chassis": _ref(f"{V1}/Chassis"), "Managers": _ref(f"{V1}/Managers"),
            "SessionService": _ref(f"{V1}/SessionService"),
            "Links": {"Sessions": _ref(f"{V1}/SessionService/Sessions")}}
    root.update(extra or {})
    return root


def dell_legacy() -> Tree:
    c = f"{V1}/Chassis/System.Embedded.1"
    temps = [("System Board Inlet Temp", 21, {"UpperThresholdCritical": 47,
                                              "UpperThresholdNonCritical": 42,
                                              "LowerThresholdCritical": -7}),
             ("System Board Exhaust Temp", 38, {"UpperThresholdCritical": 75,
                                                "UpperThresholdNonCritical": 70}),
             ("CPU1 Temp", 45, {"UpperThresholdCritical": 96}),
             ("CPU2 Temp", None, {"UpperThresholdCritical": 96})]  # no reading
    fans = [(f"System Board Fan{n}{r}", rpm) for n, r, rpm in
            [(1, "A", 4680), (1, "B", 4560), (2, "A", 4800), (2, "B", 4680)]]
    thermal = {
        "@odata.id": f"{c}/Thermal", "Id": "Thermal",
        "Temperatures": [{"MemberId": f"iDRAC.Embedded.1#Temp{i}", "Name": name,
                          "ReadingCelsius": value, "Status": _ok(), **thr}
                         for i, (name, value, thr) in enumerate(temps)],
        "Fans": [{"MemberId": f"0x17||Fan.Embedded.{name[-2:]}", "FanName": name, "Name": name,
                  "Reading": rpm, "ReadingUnits": "RPM", "LowerThresholdCritical": 480,
                  "Status": _ok()} for name, rpm in fans]
        + [{"MemberId": "0x17||Fan.Embedded.6A", "Name": "System Board Fan6A",
            "Reading": None, "ReadingUnits": "RPM", "Status": _ok("OK", "Absent")}],
        "Redundancy": [{"MemberId": "0x17||Fan.Redundancy", "Name": "System Board Fan Redundancy",
                        "Mode": "N+m", "Status": _ok()}]}
    power = {
        "@odata.id": f"{c}/Power", "Id": "Power",
        "PowerControl": [{"MemberId": "PowerControl", "PowerConsumedWatts": 312}],
        "PowerSupplies": [
            {"MemberId": "PSU.Slot.1", "Name": "PS1 Status", "Status": _ok(),
             "PowerInputWatts": 170, "PowerOutputWatts": 155, "PowerCapacityWatts": 750,
             "LineInputVoltage": 230},
            {"MemberId": "PSU.Slot.2", "Name": "PS2 Status", "Status": _ok("Critical"),
             "PowerInputWatts": 0, "PowerOutputWatts": 0, "PowerCapacityWatts": 750,
             "LineInputVoltage": 0}]}
    return {
        V1: _root("Dell", {"Oem": {"Dell": {"ServiceTag": "TEST123"}}}),
        f"{V1}/Chassis": _collection(f"{V1}/Chassis", [c, f"{V1}/Chassis/Enclosure.Internal.0-1"]),
        c: {"@odata.id": c, "Id": "System.Embedded.1", "Thermal": _ref(f"{c}/Thermal"),
            "Power": _ref(f"{c}/Power")},
        f"{V1}/Chassis/Enclosure.Internal.0-1": {"Id": "Enclosure.Internal.0-1"},
        f"{c}/Thermal": thermal,
        f"{c}/Power": power,
        f"{V1}/Managers": _collection(f"{V1}/Managers", [f"{V1}/Managers/iDRAC.Embedded.1"]),
        f"{V1}/Managers/iDRAC.Embedded.1": {"Id": "iDRAC.Embedded.1",
                                            "FirmwareVersion": "4.40.00.00"},
        f"{V1}/SessionService": {"Sessions": _ref(f"{V1}/SessionService/Sessions")},
    }


def dmtf_modern() -> Tree:
    tree: Tree = {
        V1: _root("Contoso", {"ProtocolFeaturesSupported": {"ExpandQuery": {
            "ExpandAll": True, "Levels": True, "MaxLevels": 6, "Links": True,
            "NoLinks": True}}}),
        f"{V1}/Chassis": _collection(f"{V1}/Chassis", [f"{V1}/Chassis/1U",
                                                       f"{V1}/Chassis/GPUSled"]),
        f"{V1}/Managers": _collection(f"{V1}/Managers", [f"{V1}/Managers/BMC"]),
        f"{V1}/Managers/BMC": {"Id": "BMC", "FirmwareVersion": "1.45.455b66-rev4"},
        f"{V1}/SessionService": {"Sessions": _ref(f"{V1}/SessionService/Sessions")},
    }
    _modern_chassis(tree, "1U", fans=[6000, 5900, 6100, 6050], psus=True,
                    temps=[("IntakeTemp", "Chassis Intake Temp", 24.8, 35, 40),
                           ("ExhaustTemp", "Chassis Exhaust Temp", 41.0, 55, 60),
                           ("CPU1Temp", "CPU1 Temp", 52.0, 90, 95)])
    _modern_chassis(tree, "GPUSled", fans=[7200, 7150], psus=False, temps=[])
    sled = f"{V1}/Chassis/GPUSled"
    tree[sled]["Sensors"] = _ref(f"{sled}/Sensors")
    tree[f"{sled}/Sensors"] = _collection(f"{sled}/Sensors", [f"{sled}/Sensors/GPU1Temp",
                                                              f"{sled}/Sensors/SledPower"])
    tree[f"{sled}/Sensors/SledPower"] = {"@odata.id": f"{sled}/Sensors/SledPower",
                                         "Id": "SledPower", "ReadingType": "Power",
                                         "Reading": 510.0}
    tree[f"{sled}/Sensors/GPU1Temp"] = {
        "@odata.id": f"{sled}/Sensors/GPU1Temp", "Id": "GPU1Temp", "Name": "GPU1 Temp",
        "ReadingType": "Temperature", "Reading": 67.0,
        "Status": _ok(), "Thresholds": {"UpperCritical": {"Reading": 88}}}
    del tree[f"{sled}/ThermalSubsystem"]["ThermalMetrics"]
    return tree


def _modern_chassis(tree: Tree, cid: str, fans: list[int], psus: bool,
                    temps: list[tuple[str, str, float, float, float]]) -> None:
    c = f"{V1}/Chassis/{cid}"
    ts, ps = f"{c}/ThermalSubsystem", f"{c}/PowerSubsystem"
    doc: dict[str, Any] = {"@odata.id": c, "Id": cid, "ThermalSubsystem": _ref(ts)}
    tree[ts] = {"@odata.id": ts, "Fans": _ref(f"{ts}/Fans"),
                "ThermalMetrics": _ref(f"{ts}/ThermalMetrics"),
                "FanRedundancy": [{"MemberId": "0", "RedundancyType": "NPlusM",
                                   "Name": f"{cid} fan group", "Status": _ok()}]}
    tree[f"{ts}/Fans"] = _collection(f"{ts}/Fans", [f"{ts}/Fans/Bay{i + 1}"
                                                    for i in range(len(fans))])
    for i, rpm in enumerate(fans):
        tree[f"{ts}/Fans/Bay{i + 1}"] = {
            "@odata.id": f"{ts}/Fans/Bay{i + 1}", "Id": f"Bay{i + 1}", "Name": f"Fan {i + 1}",
            "SpeedPercent": {"Reading": round(rpm / 160), "SpeedRPM": rpm}, "Status": _ok()}
    readings = [{"DataSourceUri": f"{c}/Sensors/{sid}", "DeviceName": sid, "Reading": value}
                for sid, _, value, _, _ in temps]
    tree[f"{ts}/ThermalMetrics"] = {"@odata.id": f"{ts}/ThermalMetrics",
                                    "TemperatureReadingsCelsius": readings}
    for sid, name, value, caution, critical in temps:
        tree[f"{c}/Sensors/{sid}"] = {
            "@odata.id": f"{c}/Sensors/{sid}", "Id": sid, "Name": name,
            "ReadingType": "Temperature", "Reading": value, "Status": _ok(),
            "Thresholds": {"UpperCaution": {"Reading": caution},
                           "UpperCritical": {"Reading": critical}}}
    if psus:
        doc["PowerSubsystem"] = _ref(ps)
        doc["EnvironmentMetrics"] = _ref(f"{c}/EnvironmentMetrics")
        tree[ps] = {"@odata.id": ps, "PowerSupplies": _ref(f"{ps}/PowerSupplies")}
        tree[f"{ps}/PowerSupplies"] = _collection(f"{ps}/PowerSupplies",
                                                  [f"{ps}/PowerSupplies/Bay1",
                                                   f"{ps}/PowerSupplies/Bay2"])
        for bay, (status, line, watts) in enumerate(
                [(_ok(), "Normal", 420.0), (_ok("Critical"), "LossOfInput", 0.0)], start=1):
            psu = f"{ps}/PowerSupplies/Bay{bay}"
            tree[psu] = {"@odata.id": psu, "Id": f"Bay{bay}", "Name": f"Power Supply Bay {bay}",
                         "Status": status, "LineInputStatus": line, "PowerCapacityWatts": 1600,
                         "Metrics": _ref(f"{psu}/Metrics")}
            tree[f"{psu}/Metrics"] = {"InputPowerWatts": {"Reading": watts},
                                      "OutputPowerWatts": {"Reading": watts * 0.94}}
        tree[f"{c}/EnvironmentMetrics"] = {"PowerWatts": {"Reading": 374.0}}
    tree[c] = doc


DATA = Path(__file__).resolve().parents[1] / "data" / "redfish"
# tests/data/redfish/<name>.json, each with its vendor and firmware in its NOTE
CAPTURED = ("idrac9_legacy", "idrac9_modern", "ilo4", "ilo5", "dmtf_sensors")


def captured(name: str) -> Tree:
    """A fixture of tests/data/redfish (``{"NOTE": vendor and firmware, "tree": {path: doc}}``,
    the shape ``gpuwatchctl dump`` writes), keyed by path without a trailing slash."""
    doc = json.loads((DATA / f"{name}.json").read_text())
    return {path.rstrip("/") or path: body for path, body in doc["tree"].items()}


def write_mockup(tree: Tree, root: Path) -> Path:
    """The tree as a Redfish mockup directory (``<root>/Chassis/1/index.json`` for
    ``/redfish/v1/Chassis/1``), what sushy-tools' ``sushy-static --mockup-files`` serves."""
    for path, doc in tree.items():
        rel = path.removeprefix(V1).strip("/")
        where = root / rel if rel else root
        where.mkdir(parents=True, exist_ok=True)
        (where / "index.json").write_text(json.dumps(doc))
    return root
