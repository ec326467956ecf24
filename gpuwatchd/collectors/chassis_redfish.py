"""Chassis collector over Redfish: fans, temperatures, PSUs and power of every chassis of a BMC.

Discovery (after login, and again after the BMC was unreachable): the Chassis collection;
per chassis the modern resources when present (``ThermalSubsystem``, ``PowerSubsystem``,
``EnvironmentMetrics``), else the legacy ``Thermal`` and ``Power``; the fan and PSU member
lists; the ``Sensors`` behind ``ThermalMetrics`` (names and thresholds); the manager's
firmware. Per tick only the readings are fetched (legacy: 2 GETs per chassis; modern: one per
fan unless the service supports ``$expand``, plus ThermalMetrics, each PSU and its Metrics).

A resource answering 404 is absent (not asked again until the next discovery); one answering
500 or malformed JSON is missing from this tick only (``gpuwatchd_bmc_errors_total``); a BMC
that does not answer at all gives ``gpuwatchd_bmc_up 0`` and no readings.

Command-line equivalent: ``curl -su USER https://BMC/redfish/v1/Chassis/<id>/Thermal``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from gpuwatchd.collectors import Scheduled, chassis_metrics
from gpuwatchd.collectors import redfish_read as rr
from gpuwatchd.collectors.chassis_common import cadence, link_counters, unique_names
from gpuwatchd.errors import GpuwatchdError, Transient, Unsupported
from gpuwatchd.links.redfish import RedfishLink
from gpuwatchd.model import (
    BmcIdentity,
    BmcReading,
    ChassisPower,
    ChassisTemperature,
    Collected,
    FanReading,
    FanRedundancy,
    PsuReading,
)

if TYPE_CHECKING:
    from gpuwatchd.config import BmcConfig, Config
    from gpuwatchd.hardware import Hardware

log = logging.getLogger(__name__)

_VENDORS = {"dell": "Dell", "supermicro": "Supermicro", "hpe": "HPE", "hp": "HPE",
            "lenovo": "Lenovo"}


@dataclass
class _Plan:
    """What to read from one chassis every tick."""

    id: str
    thermal: str | None = None  # legacy
    power: str | None = None  # legacy
    subsystem: str | None = None  # modern ThermalSubsystem (fan redundancy)
    fans: str | None = None
    fan_members: list[str] = field(default_factory=list)
    metrics: str | None = None  # ThermalMetrics
    sensor_info: dict[str, rr.Doc] = field(default_factory=dict)
    temperature_sensors: list[str] = field(default_factory=list)  # without ThermalMetrics
    psus: list[str] = field(default_factory=list)
    environment: str | None = None


@dataclass
class _Tick:
    """One tick's readings, under the names the BMC gave them, with the chassis of each."""

    sensors: list[tuple[str, ChassisTemperature | FanReading]] = field(default_factory=list)
    psus: list[PsuReading] = field(default_factory=list)
    power: list[ChassisPower] = field(default_factory=list)
    redundancy: list[FanRedundancy] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def add_sensors(self, chassis: str,
                    sensors: Sequence[ChassisTemperature | FanReading]) -> None:
        self.sensors += [(chassis, s) for s in sensors]


class ChassisRedfishCollector:
    """Reads one BMC over a RedfishLink."""

    def __init__(self, bmc: BmcConfig, link: RedfishLink) -> None:
        self.name = f"chassis_redfish:{bmc.name}"
        self.bmc = bmc.name
        self._link = link
        self._plans: list[_Plan] | None = None
        self._absent: set[str] = set()
        self._identity: BmcIdentity | None = None
        self._expand: dict[str, str] | None = None
        self._up: bool | None = None

    @property
    def link(self) -> RedfishLink:
        return self._link

    def collect(self) -> Collected:
        """One tick; a BMC that does not answer is reported, not raised."""
        tick: _Tick | None
        try:
            tick = self._read()
            error = "; ".join(tick.problems)
        except GpuwatchdError as exc:
            tick, error = None, str(exc)
            self._plans = None  # discover again once it answers
        if (tick is not None) != self._up:
            if tick is None:
                log.warning("%s", error, extra={"BMC": self.bmc})
            else:
                log.info("%s: reading %d chassis over Redfish", self._link.name,
                         len(self._plans or []), extra={"BMC": self.bmc})
        self._up = tick is not None
        bmc = BmcReading(self.bmc, "redfish", tick is not None, self._identity,
                         tuple(tick.power) if tick is not None else (), error,
                         link_counters(self._link))
        out = (bmc, *(_named(tick) if tick is not None else ()))
        return Collected(out, chassis_metrics.render(out))

    def _read(self) -> _Tick:
        self._link.login()
        if self._plans is None:
            self._discover()
        tick = _Tick()
        for plan in self._plans or []:
            if plan.thermal or plan.power:
                self._legacy(plan, tick)
            else:
                self._modern(plan, tick)
        return tick

    def _fetch(self, path: str | None, tick: _Tick | None = None,
               expand: bool = False) -> rr.Doc | None:
        """GET a resource; None if absent (remembered) or failing this tick only."""
        if path is None or path in self._absent:
            return None
        try:
            return self._link.get(path, self._expand if expand else None)
        except Unsupported as exc:
            log.info("%s", exc, extra={"BMC": self.bmc})
            self._absent.add(path)
        except Transient as exc:
            if not self._link.connected or tick is None:
                raise  # the BMC stopped answering: the whole tick is lost
            tick.problems.append(str(exc))
        return None

    def _discover(self) -> None:
        root = self._link.root
        self._absent.clear()
        self._expand = _expand_query(root)
        chassis = self._fetch(rr.odata_id(root, "Chassis") or "/redfish/v1/Chassis") or {}
        plans = [plan for path in rr.members(chassis) if (plan := self._plan(path))]
        self._identity = BmcIdentity(_vendor(root), self._firmware(root))
        self._plans = plans
        log.info("%s: %d chassis (%s)", self._link.name, len(plans),
                 ", ".join(f"{p.id}: {'legacy' if p.thermal or p.power else 'modern'}"
                           for p in plans), extra={"BMC": self.bmc})

    def _plan(self, path: str) -> _Plan | None:
        found = self._fetch(path)
        if found is None:
            return None
        doc = found
        plan = _Plan(id=str(doc.get("Id") or path.rstrip("/").rsplit("/", 1)[-1]))
        subsystem = rr.odata_id(doc, "ThermalSubsystem")
        power_subsystem = rr.odata_id(doc, "PowerSubsystem")
        if subsystem is None and power_subsystem is None:
            plan.thermal, plan.power = rr.odata_id(doc, "Thermal"), rr.odata_id(doc, "Power")
            return plan if plan.thermal or plan.power else None
        plan.environment = rr.odata_id(doc, "EnvironmentMetrics")
        ts = self._fetch(subsystem) or {}
        plan.subsystem = subsystem
        plan.fans = rr.odata_id(ts, "Fans")
        plan.fan_members = rr.members(self._fetch(plan.fans) or {})
        plan.metrics = rr.odata_id(ts, "ThermalMetrics")
        metrics = self._fetch(plan.metrics) or {}
        for item in metrics.get("TemperatureReadingsCelsius", []):
            uri = item.get("DataSourceUri") if isinstance(item, dict) else None
            if isinstance(uri, str) and (info := self._fetch(uri)) is not None:
                plan.sensor_info[uri] = info
        if plan.metrics is None:  # temperatures only as Sensors: keep their paths
            collection = rr.odata_id(doc, "Sensors")
            paths = rr.members(self._fetch(collection) or {})
            plan.temperature_sensors = [
                str(d["@odata.id"]) for d in self._members(collection, paths, None)
                if d.get("ReadingType") == "Temperature" and "@odata.id" in d]
        ps = self._fetch(power_subsystem) or {}
        plan.psus = rr.members(self._fetch(rr.odata_id(ps, "PowerSupplies")) or {})
        return plan

    def _legacy(self, plan: _Plan, tick: _Tick) -> None:
        thermal = self._fetch(plan.thermal, tick)
        if thermal is not None:
            sensors, groups = rr.legacy_thermal(thermal, self.bmc)
            tick.add_sensors(plan.id, sensors)
            tick.redundancy += groups
        power = self._fetch(plan.power, tick)
        if power is not None:
            psus, watts = rr.legacy_power(power, self.bmc)
            tick.psus += psus
            if watts is not None:
                tick.power.append(ChassisPower(plan.id, watts))

    def _modern(self, plan: _Plan, tick: _Tick) -> None:
        ts = self._fetch(plan.subsystem, tick)
        if ts is not None:
            tick.redundancy += rr.redundancy(ts.get("FanRedundancy", []), self.bmc)
        for doc in self._members(plan.fans, plan.fan_members, tick):
            if (fan := rr.modern_fan(doc, self.bmc)) is not None:
                tick.add_sensors(plan.id, [fan])
        metrics = self._fetch(plan.metrics, tick)
        if metrics is not None:
            tick.add_sensors(plan.id, rr.modern_temperatures(metrics, plan.sensor_info,
                                                             self.bmc))
        for path in plan.temperature_sensors:
            found = self._fetch(path, tick)
            if found is not None and (sensor := rr.modern_sensor(found, self.bmc)) is not None:
                tick.add_sensors(plan.id, [sensor])
        for path in plan.psus:
            psu = self._fetch(path, tick)
            if psu is not None:
                metrics_doc = self._fetch(rr.odata_id(psu, "Metrics"), tick)
                tick.psus.append(rr.modern_psu(psu, metrics_doc, self.bmc))
        environment = self._fetch(plan.environment, tick)
        if environment is not None and (watts := rr.environment_watts(environment)) is not None:
            tick.power.append(ChassisPower(plan.id, watts))

    def _members(self, collection: str | None, paths: list[str],
                 tick: _Tick | None) -> list[rr.Doc]:
        """Member documents: one expanded GET when the service supports $expand."""
        if self._expand is not None and collection is not None:
            doc = self._fetch(collection, tick, expand=True)
            expanded = [m for m in (doc or {}).get("Members", []) if isinstance(m, dict)
                        and len(m) > 1]
            if expanded:
                return expanded
        return [d for p in paths if (d := self._fetch(p, tick)) is not None]

    def _firmware(self, root: rr.Doc) -> str:
        managers = self._fetch(rr.odata_id(root, "Managers")) or {}
        for path in rr.members(managers)[:1]:
            doc = self._fetch(path) or {}
            return str(doc.get("FirmwareVersion") or "")
        return ""

    def close(self) -> None:
        self._link.close()


def _named(tick: _Tick) -> list[object]:
    """The tick's readings, named uniquely across the BMC's chassis: sensors by chassis id,
    PSUs by position ("PS1", or "Power Supply 1"/"Power Supply 2" where names repeat)."""
    names = unique_names([(s.name, chassis) for chassis, s in tick.sensors])
    out: list[object] = [replace(s, name=n)
                         for n, (_, s) in zip(names, tick.sensors, strict=True)]
    psu_names = unique_names([(p.name, str(i + 1)) for i, p in enumerate(tick.psus)])
    out += [replace(p, name=n) for n, p in zip(psu_names, tick.psus, strict=True)]
    return out + tick.redundancy


def _vendor(root: rr.Doc) -> str:
    """ServiceRoot ``Vendor`` (Redfish 1.5+), else the ``Oem`` key, else 'unknown'."""
    names = [str(root.get("Vendor") or "")]
    if isinstance(root.get("Oem"), dict):
        names += list(root["Oem"])
    for name in names:
        first = name.lower().replace(",", " ").replace(".", " ").split()[:1]
        if first and first[0] in _VENDORS:
            return _VENDORS[first[0]]
    return names[0] or "unknown"


def _expand_query(root: rr.Doc) -> dict[str, str] | None:
    """``$expand=.($levels=1)`` when ProtocolFeaturesSupported.ExpandQuery allows it."""
    features = root.get("ProtocolFeaturesSupported")
    expand = features.get("ExpandQuery") if isinstance(features, dict) else None
    if isinstance(expand, dict) and expand.get("NoLinks") and expand.get("Levels"):
        return {"$expand": ".($levels=1)"}
    return None


def build(config: Config, hw: Hardware) -> Sequence[Scheduled]:
    """The registry factory: one collector per Redfish BMC in ``bmcs``."""
    out = []
    for bmc in config.bmcs:
        if bmc.protocol != "redfish":
            continue
        factory = hw.redfish_client_factory(bmc.name)  # a simulated service, if any
        interval, deadline, effective = cadence(config, bmc)
        link = RedfishLink(effective, hw.clock, client_factory=factory)
        out.append(Scheduled(ChassisRedfishCollector(bmc, link), interval, deadline))
    return out
