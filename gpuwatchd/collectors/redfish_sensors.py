"""Redfish ``Sensors`` members -> typed chassis readings, in their own units. No I/O.

``Chassis/{id}/Sensors/{sid}`` (Sensor.v1_x, Redfish 2019.4+) is where a modern chassis
publishes every numeric sensor: the ones ThermalMetrics, the Fans, the PSU Metrics and
EnvironmentMetrics point at (their ``DataSourceUri``), and the many that nothing else names
(CPU, DIMM, ambient and battery temperatures, voltages, currents, the board's power
consumption). ``ReadingType`` says what a sensor measures, ``ReadingUnits`` (UCUM) its unit:
``Cel``, ``V``, ``A``, ``W``, ``RPM``/``{rev}/min``, ``%``. A reading in a unit not listed here
is left out rather than exported under the wrong one.

NOTE(iDRAC9 6.10 / OpenBMC bmcweb 2.14): both publish the legacy ``Thermal``/``Power`` beside
``Sensors`` with the same ``Name`` per sensor, which is how the collector keeps one series per
sensor (gpuwatchd.collectors.chassis_redfish). Command-line equivalent:
``curl -su USER 'https://BMC/redfish/v1/Chassis/<id>/Sensors?$expand=.($levels=1)'``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from gpuwatchd.collectors.redfish_read import (
    Doc,
    by_threshold,
    health,
    modern_thresholds,
    number,
    sub,
)
from gpuwatchd.model import (
    ChassisCurrent,
    ChassisPowerSensor,
    ChassisSensor,
    ChassisTemperature,
    ChassisVoltage,
    FanReading,
    Thresholds,
)

# ReadingType -> (reading class, ReadingUnits -> factor to the class' unit; "" = not given)
SCALES: dict[str, dict[str, float]] = {
    "Temperature": {"Cel": 1.0, "": 1.0},
    "Voltage": {"V": 1.0, "mV": 0.001, "": 1.0},
    "Current": {"A": 1.0, "mA": 0.001, "": 1.0},
    "Power": {"W": 1.0, "kW": 1000.0, "mW": 0.001, "": 1.0},
    "Rotational": {"RPM": 1.0, "{rev}/min": 1.0, "": 1.0},
    "Percent": {"%": 0.01, "": 0.01},
}
EXPORTED = frozenset(SCALES)
FAN_TYPES = frozenset({"Rotational", "Percent"})  # fans: from the Fans when a chassis has them
# what other resources read from a sensor (its URI is then not read again from Sensors)
COVERED_KEYS = ("SpeedPercent", "InputPowerWatts", "OutputPowerWatts", "PowerWatts")


def reading_type(doc: Doc) -> str:
    return str(doc.get("ReadingType") or "")


def is_fan(doc: Doc) -> bool:
    """A fan speed sensor: rotational (not a pump's), or a percent sensor of a fan."""
    kind, context = reading_type(doc), doc.get("PhysicalContext")
    return (kind == "Rotational" and context in (None, "", "Fan")) or \
        (kind == "Percent" and context == "Fan")


def wanted(doc: Doc, fans: bool) -> bool:
    """Whether a sensor becomes a reading (fan sensors only for a chassis without Fans)."""
    kind = reading_type(doc)
    if kind not in EXPORTED or (doc.get("Status") or {}).get("State") == "Absent":
        return False
    return fans and is_fan(doc) if kind in FAN_TYPES else True


def sensor(doc: Doc, bmc: str) -> ChassisSensor | None:
    """One ``Sensors/{sid}`` document as a reading in its own unit, None when not one we
    export (humidity, energy, an absent sensor, a unit not in SCALES)."""
    kind = reading_type(doc)
    scales = SCALES.get(kind)
    unit = str(doc.get("ReadingUnits") or "")
    if scales is None or unit not in scales or not wanted(doc, fans=True):
        return None
    factor = scales[unit]
    raw = number(doc.get("Reading"))
    value = raw * factor if raw is not None else None
    thresholds: Thresholds = tuple((k, v * factor) for k, v in modern_thresholds(doc))
    state = health(doc, value) if sub(doc, "Status").get("Health") else \
        by_threshold(value, thresholds)
    name = _name(doc)
    if kind == "Temperature":
        return ChassisTemperature(bmc, name, value, state, thresholds)
    if kind == "Voltage":
        return ChassisVoltage(bmc, name, value, state, thresholds)
    if kind == "Current":
        return ChassisCurrent(bmc, name, value, state, thresholds)
    if kind == "Power":
        return ChassisPowerSensor(bmc, name, value, state, thresholds)
    if not is_fan(doc):
        return None
    if kind == "Rotational":
        return FanReading(bmc, name, value, None, state, thresholds)
    return FanReading(bmc, name, None, value, state)


def data_sources(docs: Iterable[Doc | None]) -> set[str]:
    """The sensor URIs other resources already read (``DataSourceUri`` under COVERED_KEYS
    and in ThermalMetrics' ``TemperatureReadingsCelsius``)."""
    out: set[str] = set()
    for doc in docs:
        if doc is None:
            continue
        for key in COVERED_KEYS:
            out |= set(_uris([sub(doc, key)]))
        out |= set(_uris(doc.get("TemperatureReadingsCelsius") or []))
    return out


def _uris(items: Iterable[Any]) -> Iterator[str]:
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("DataSourceUri"), str):
            yield str(item["DataSourceUri"])


def _name(doc: Doc) -> str:
    for key in ("Name", "Id"):
        if isinstance(doc.get(key), str) and doc[key].strip():
            return str(doc[key]).strip()
    return str(doc.get("@odata.id", "")).rstrip("/").rsplit("/", 1)[-1]
