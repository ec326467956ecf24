"""Redfish documents -> typed chassis readings, for both schema generations. No I/O.

Legacy (deprecated in Redfish 2020.4 but what most iDRAC8/9, iLO and X11 BMCs serve):
``Chassis/{id}/Thermal`` (``Temperatures[]``, ``Fans[]``, ``Redundancy[]``) and
``Chassis/{id}/Power`` (``PowerSupplies[]``, ``PowerControl[]``). Modern (2020.4+):
``ThermalSubsystem`` (``FanRedundancy[]``), ``ThermalSubsystem/Fans/{id}`` (``SpeedPercent``),
``ThermalSubsystem/ThermalMetrics`` (``TemperatureReadingsCelsius[]``), ``Sensors/{id}``
(``Reading``, ``Thresholds``), ``PowerSubsystem/PowerSupplies/{id}`` and its ``/Metrics``,
``EnvironmentMetrics`` (``PowerWatts``).

Health maps to the sensor state: ``Status.Health`` OK/Warning/Critical; a resource whose
``Status.State`` is ``Absent`` is left out; a null reading is "no_reading".

Readings carry the resource's own ``Name``; the collector makes the names unique across the
BMC's chassis afterwards (gpuwatchd.collectors.chassis_common.unique_names).
"""

from __future__ import annotations

from typing import Any

from gpuwatchd.model import (
    ChassisTemperature,
    ChassisVoltage,
    FanReading,
    FanRedundancy,
    PsuReading,
    PsuRedundancy,
    SensorState,
    ThresholdName,
    Thresholds,
)

Doc = dict[str, Any]
Redundancy = FanRedundancy | PsuRedundancy
_HEALTH: dict[str, SensorState] = {"OK": "ok", "Warning": "warning", "Critical": "critical"}
_LEGACY_THRESHOLDS: dict[str, ThresholdName] = {
    "UpperThresholdNonCritical": "upper_non_critical", "UpperThresholdCritical": "upper_critical",
    "UpperThresholdFatal": "upper_non_recoverable",
    "LowerThresholdNonCritical": "lower_non_critical", "LowerThresholdCritical": "lower_critical",
    "LowerThresholdFatal": "lower_non_recoverable"}
_MODERN_THRESHOLDS: dict[str, ThresholdName] = {
    "UpperCaution": "upper_non_critical", "UpperCritical": "upper_critical",
    "UpperFatal": "upper_non_recoverable", "LowerCaution": "lower_non_critical",
    "LowerCritical": "lower_critical", "LowerFatal": "lower_non_recoverable"}
_AC_LOST = {"LossOfInput", "NoPower", "OutOfRange"}  # Redfish LineInputStatus values


def sub(doc: Doc, key: str) -> Doc:
    """``doc[key]`` when it is an object, else an empty one."""
    value = doc.get(key)
    return value if isinstance(value, dict) else {}


def odata_id(doc: Doc, key: str) -> str | None:
    """``doc[key]["@odata.id"]`` or None."""
    value = doc.get(key)
    return value.get("@odata.id") if isinstance(value, dict) else None


def members(doc: Doc) -> list[str]:
    """The member paths of a collection."""
    return [m["@odata.id"] for m in doc.get("Members", []) if isinstance(m, dict)
            and isinstance(m.get("@odata.id"), str)]


def absent(doc: Doc) -> bool:
    status = doc.get("Status")
    return isinstance(status, dict) and status.get("State") == "Absent"


def health(doc: Doc, value: float | None = None) -> SensorState:
    """The sensor state from ``Status.Health`` (no value: "no_reading")."""
    status = sub(doc, "Status")
    if value is None:
        return "no_reading"
    return _HEALTH.get(str(status.get("Health")), "ok")


def number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        else None


def by_threshold(value: float | None, thresholds: Thresholds) -> SensorState:
    """The state a reading has against its thresholds (when the BMC gives no health)."""
    if value is None:
        return "no_reading"
    t = dict(thresholds)
    if any(value >= t[k] for k in ("upper_critical", "upper_non_recoverable") if k in t) or \
            any(value <= t[k] for k in ("lower_critical", "lower_non_recoverable") if k in t):
        return "critical"
    if ("upper_non_critical" in t and value >= t["upper_non_critical"]) or \
            ("lower_non_critical" in t and value <= t["lower_non_critical"]):
        return "warning"
    return "ok"


def legacy_thresholds(doc: Doc) -> Thresholds:
    """The legacy threshold keys; an upper threshold of 0 is "none" (NOTE(HPE iLO 4 2.70):
    ``"UpperThresholdFatal": 0`` on every CPU and DIMM temperature)."""
    return tuple((name, v) for key, name in _LEGACY_THRESHOLDS.items()
                 if (v := number(doc.get(key))) is not None
                 and not (v == 0 and name.startswith("upper")))


def modern_thresholds(doc: Doc) -> Thresholds:
    t = sub(doc, "Thresholds")
    return tuple((name, v) for key, name in _MODERN_THRESHOLDS.items()
                 if (v := number(sub(t, key).get("Reading"))) is not None)


def legacy_thermal(doc: Doc, bmc: str) -> tuple[list[ChassisTemperature | FanReading],
                                                list[tuple[str, Redundancy]]]:
    """``Chassis/{id}/Thermal``: temperatures, fans (RPM or percent), fan redundancy.

    NOTE(HPE iLO 4 2.x, Thermal.v1_0): fans are ``FanName`` + ``CurrentReading`` with
    ``Units: "Percent"`` (no ``Name``, ``Reading`` or ``ReadingUnits``); temperatures carry
    ``CurrentReading`` + ``Units: "Celsius"`` beside (2.50+) or instead of ``ReadingCelsius``.
    """
    out: list[ChassisTemperature | FanReading] = []
    for t in doc.get("Temperatures", []):
        if isinstance(t, dict) and not absent(t):
            value = number(t.get("ReadingCelsius"))
            if value is None and str(t.get("Units", "Celsius")) == "Celsius":
                value = number(t.get("CurrentReading"))
            out.append(ChassisTemperature(bmc, _name(t), value, health(t, value),
                                          legacy_thresholds(t)))
    for f in doc.get("Fans", []):
        if isinstance(f, dict) and not absent(f):
            value = number(f.get("Reading"))
            if value is None:
                value = number(f.get("CurrentReading"))
            units = f.get("ReadingUnits") or f.get("Units") or "RPM"
            percent = str(units).lower() == "percent"
            rpm, ratio = (None, value / 100.0 if value is not None else None) if percent \
                else (value, None)
            out.append(FanReading(bmc, _name(f, "FanName"), rpm, ratio, health(f, value),
                                  () if percent else legacy_thresholds(f)))
    return out, redundancy(doc.get("Redundancy", []), bmc)


def redundancy(groups: Any, bmc: str, kind: type[Redundancy] = FanRedundancy
               ) -> list[tuple[str, Redundancy]]:
    """Redundancy groups as (stable id, reading with the group's own name or ""): fully
    redundant when the group's health is OK. An ``Absent`` or ``Disabled`` group (redundancy
    not configured, e.g. a chassis populated N+0) is not a group in effect: left out, not
    reported as lost. The collector names the unnamed ones (Redundancy.v1_4 RedundantGroup,
    what ``ThermalSubsystem.FanRedundancy[]`` holds, has no ``Name`` or ``MemberId``)."""
    out: list[tuple[str, Redundancy]] = []
    for i, g in enumerate(groups if isinstance(groups, list) else []):
        if isinstance(g, dict) and not absent(g) and sub(g, "Status").get("State") != "Disabled":
            status = sub(g, "Status")
            out.append((stable_id(g, i), kind(bmc, str(g.get("Name") or "").strip(),
                                              status.get("Health") == "OK")))
    return out


def stable_id(doc: Doc, index: int) -> str:
    """What identifies a member whatever the list order: ``MemberId``, ``Id``, the last part
    of ``@odata.id`` (iLO 5: ``.../Power/#PowerSupplies/1``), HPE's ``Oem.Hp(e).BayNumber``
    (NOTE(iLO 4 2.70): its PowerSupplies have none of the others), else its position."""
    for key in ("MemberId", "Id"):
        if isinstance(doc.get(key), (str, int)) and str(doc[key]).strip():
            return str(doc[key]).strip()
    path = doc.get("@odata.id")
    if isinstance(path, str) and path.strip("/#"):
        return path.rstrip("/").rsplit("/", 1)[-1]
    oem = sub(doc, "Oem")
    bay = (sub(oem, "Hpe") or sub(oem, "Hp")).get("BayNumber")
    return str(bay) if isinstance(bay, int) else str(index + 1)


def legacy_power(doc: Doc, bmc: str) -> tuple[list[tuple[str, PsuReading]],
                                              list[ChassisVoltage], float | None]:
    """``Chassis/{id}/Power``: power supplies (with their stable ids), the voltage sensors
    (``Voltages[]``) and the chassis' consumed watts."""
    psus = []
    for i, p in enumerate(doc.get("PowerSupplies", [])):
        if not isinstance(p, dict):
            continue
        voltage = number(p.get("LineInputVoltage"))
        output = number(p.get("PowerOutputWatts"))
        psus.append((stable_id(p, i), _psu(
            p, bmc, ac_lost=voltage == 0.0, input_watts=number(p.get("PowerInputWatts")),
            output_watts=output if output is not None
            else number(p.get("LastPowerOutputWatts")))))
    volts = []
    for v in doc.get("Voltages", []):
        if isinstance(v, dict) and not absent(v):
            value = number(v.get("ReadingVolts"))
            volts.append(ChassisVoltage(bmc, _name(v), value, health(v, value),
                                        legacy_thresholds(v)))
    control = doc.get("PowerControl") or [{}]
    watts = number(control[0].get("PowerConsumedWatts")) if isinstance(control[0], dict) \
        else None
    return psus, volts, watts


def modern_fan(doc: Doc, bmc: str) -> FanReading | None:
    """``ThermalSubsystem/Fans/{id}``: ``SpeedPercent.SpeedRPM`` and ``.Reading`` (%)."""
    if absent(doc):
        return None
    speed = sub(doc, "SpeedPercent")
    rpm, percent = number(speed.get("SpeedRPM")), number(speed.get("Reading"))
    value = rpm if rpm is not None else percent
    return FanReading(bmc, _name(doc), rpm, percent / 100.0 if percent is not None else None,
                      health(doc, value))


def modern_temperatures(metrics: Doc, sensors: dict[str, Doc], bmc: str
                        ) -> list[ChassisTemperature]:
    """``ThermalMetrics.TemperatureReadingsCelsius[]``, named and thresholded from the
    ``Sensors/{id}`` resource each one's ``DataSourceUri`` points at (read at discovery)."""
    out = []
    for item in metrics.get("TemperatureReadingsCelsius", []):
        if not isinstance(item, dict):
            continue
        uri = str(item.get("DataSourceUri", ""))
        info = sensors.get(uri, {})
        name = info.get("Name") or item.get("DeviceName") or uri.rsplit("/", 1)[-1] or "Temp"
        value = number(item.get("Reading"))
        thresholds = modern_thresholds(info)
        out.append(ChassisTemperature(bmc, str(name), value, by_threshold(value, thresholds),
                                      thresholds))
    return out


def modern_psu(doc: Doc, metrics: Doc | None, bmc: str) -> PsuReading:
    """``PowerSupplies/{id}`` (status, ``LineInputStatus``, capacity) + its ``/Metrics``."""
    m = metrics or {}

    def reading(key: str) -> float | None:
        return number(m[key].get("Reading")) if isinstance(m.get(key), dict) else None
    return _psu(doc, bmc, ac_lost=doc.get("LineInputStatus") in _AC_LOST,
                input_watts=reading("InputPowerWatts"), output_watts=reading("OutputPowerWatts"))


def _psu(doc: Doc, bmc: str, *, ac_lost: bool, input_watts: float | None,
         output_watts: float | None) -> PsuReading:
    status = sub(doc, "Status")
    name = _name(doc).removesuffix(" Status")
    return PsuReading(bmc, name, present=status.get("State") != "Absent",
                      failed=status.get("Health") == "Critical",
                      predictive_failure=status.get("Health") == "Warning", ac_lost=ac_lost,
                      input_watts=input_watts, output_watts=output_watts,
                      capacity_watts=number(doc.get("PowerCapacityWatts")))


def environment_watts(doc: Doc) -> float | None:
    """``EnvironmentMetrics.PowerWatts.Reading``."""
    power = doc.get("PowerWatts")
    return number(power.get("Reading")) if isinstance(power, dict) else None


def _name(doc: Doc, alt: str = "") -> str:
    for key in ("Name", alt, "MemberId", "Id"):
        if key and isinstance(doc.get(key), str) and doc[key].strip():
            return str(doc[key]).strip()
    return ""
