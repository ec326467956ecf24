"""Chassis collector over Redfish: fans, temperatures, PSUs and power of every chassis of a BMC.

Discovery (after login, and again after the BMC was unreachable): the Chassis collection;
per chassis every resource it publishes, modern (``ThermalSubsystem``, ``PowerSubsystem``,
``EnvironmentMetrics``, ``Sensors``) and legacy (``Thermal``, ``Power``) alike; the fan and PSU
member lists; the ``Sensors`` behind ``ThermalMetrics`` (names and thresholds) and those no
other resource reads (``DataSourceUri``: CPU, DIMM, ambient, battery temperatures, voltages,
currents, the board's power); the manager's firmware. Per tick only the readings are fetched
(legacy: 2 GETs per chassis; modern: one per fan and per kept sensor unless the service
supports ``$expand``, plus ThermalMetrics, each PSU and its Metrics). A sensor published twice
(the legacy Thermal beside Sensors, NOTE(iDRAC9 6.x, OpenBMC): same ``Name``) is exported once.

A resource answering 404 is absent (not asked again until the next discovery); one answering
500 or malformed JSON is missing from this tick only (``gpuwatchd_bmc_errors_total``); a BMC
that does not answer at all gives ``gpuwatchd_bmc_up 0`` and no readings.

Command-line equivalent: ``curl -su USER https://BMC/redfish/v1/Chassis/<id>/Thermal``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gpuwatchd.collectors import Scheduled, chassis_metrics
from gpuwatchd.collectors import redfish_read as rr
from gpuwatchd.collectors import redfish_sensors as rs
from gpuwatchd.collectors.chassis_common import cadence, link_counters
from gpuwatchd.collectors.chassis_energy import ChassisEnergyMeter
from gpuwatchd.collectors.redfish_tick import Tick, named
from gpuwatchd.errors import GpuwatchdError, Transient, Unsupported
from gpuwatchd.links.redfish import RedfishLink
from gpuwatchd.model import (
    BmcIdentity,
    BmcReading,
    Collected,
    PsuRedundancy,
)

if TYPE_CHECKING:
    from gpuwatchd.config import BmcConfig, Config
    from gpuwatchd.hardware import Hardware

log = logging.getLogger(__name__)

_VENDORS = {"dell": "Dell", "supermicro": "Supermicro", "hpe": "HPE", "hp": "HPE",
            "lenovo": "Lenovo"}


@dataclass
class _Plan:
    """What to read from one chassis every tick: every resource it publishes."""

    id: str
    thermal: str | None = None  # legacy
    power: str | None = None  # legacy
    subsystem: str | None = None  # modern ThermalSubsystem (fan redundancy)
    fans: str | None = None
    fan_members: list[str] = field(default_factory=list)
    metrics: str | None = None  # ThermalMetrics
    sensor_info: dict[str, rr.Doc] = field(default_factory=dict)
    sensors: str | None = None  # the Sensors collection
    sensor_members: list[str] = field(default_factory=list)  # those nothing else reads
    power_subsystem: str | None = None  # modern PowerSubsystem (PSU redundancy)
    psus: list[str] = field(default_factory=list)
    environment: str | None = None

    def empty(self) -> bool:
        return not (self.thermal or self.power or self.subsystem or self.sensor_members
                    or self.psus or self.environment)


class ChassisRedfishCollector:
    """Reads one BMC over a RedfishLink."""

    def __init__(self, bmc: BmcConfig, link: RedfishLink,
                 energy: ChassisEnergyMeter | None = None) -> None:
        self.name = f"chassis_redfish:{bmc.name}"
        self._energy = energy  # kWh from PowerConsumedWatts (issue 14)
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
        tick: Tick | None
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
        out = (bmc, *(named(tick) if tick is not None else ()),
               *(self._energy.observe(bmc) if self._energy else ()))
        return Collected(out, chassis_metrics.render(out))

    def _read(self) -> Tick:
        self._link.login()
        if self._plans is None:
            self._discover()
        tick = Tick()
        for plan in self._plans or []:
            self._modern(plan, tick)
            self._legacy(plan, tick)
        return tick

    def _fetch(self, path: str | None, tick: Tick | None = None,
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
        """Every resource the chassis publishes (a chassis with none, e.g. a drive
        enclosure, has no plan; one with only Sensors, e.g. a cooling unit, has one)."""
        doc = self._fetch(path)
        if doc is None:
            return None
        plan = _Plan(id=str(doc.get("Id") or path.rstrip("/").rsplit("/", 1)[-1]))
        plan.thermal, plan.power = rr.odata_id(doc, "Thermal"), rr.odata_id(doc, "Power")
        plan.environment = rr.odata_id(doc, "EnvironmentMetrics")
        plan.subsystem = rr.odata_id(doc, "ThermalSubsystem")
        ts = self._fetch(plan.subsystem) or {}
        plan.fans = rr.odata_id(ts, "Fans")
        plan.fan_members = rr.members(self._fetch(plan.fans) or {})
        plan.metrics = rr.odata_id(ts, "ThermalMetrics")
        metrics = self._fetch(plan.metrics)
        for uri in rs.data_sources([metrics]):
            if (info := self._fetch(uri)) is not None:
                plan.sensor_info[uri] = info
        plan.power_subsystem = rr.odata_id(doc, "PowerSubsystem")
        ps = self._fetch(plan.power_subsystem) or {}
        plan.psus = rr.members(self._fetch(rr.odata_id(ps, "PowerSupplies")) or {})
        psu_docs = [self._fetch(p) for p in plan.psus]
        covered = rs.data_sources(
            [metrics, self._fetch(plan.environment),
             *self._members(plan.fans, plan.fan_members, None),
             *(self._fetch(rr.odata_id(d, "Metrics")) for d in psu_docs if d is not None)])
        has_fans = bool(plan.fan_members) or bool(plan.thermal)
        plan.sensors = rr.odata_id(doc, "Sensors")
        plan.sensor_members = [
            str(d["@odata.id"]) for d in self._members(
                plan.sensors, rr.members(self._fetch(plan.sensors) or {}), None)
            if isinstance(d.get("@odata.id"), str) and d["@odata.id"] not in covered
            and rs.wanted(d, fans=not has_fans)]
        return None if plan.empty() else plan

    def _legacy(self, plan: _Plan, tick: Tick) -> None:
        thermal = self._fetch(plan.thermal, tick)
        if thermal is not None:
            sensors, groups = rr.legacy_thermal(thermal, self.bmc)
            tick.add_sensors(plan.id, "Thermal", sensors)
            if plan.subsystem is None:  # else ThermalSubsystem.FanRedundancy says it
                tick.redundancy += [(f"{plan.id} {gid}", g) for gid, g in groups]
        power = self._fetch(plan.power, tick)
        if power is not None:
            psus, volts, watts = rr.legacy_power(power, self.bmc)
            tick.add_psus(plan.id, "Power", psus)
            if plan.power_subsystem is None:  # else PowerSupplyRedundancy says it
                tick.redundancy += [(f"{plan.id} {gid}", g) for gid, g in rr.redundancy(
                    power.get("Redundancy", []), self.bmc, PsuRedundancy)]
            tick.add_sensors(plan.id, "Power", volts)
            tick.add_power(plan.id, watts)

    def _modern(self, plan: _Plan, tick: Tick) -> None:
        ts = self._fetch(plan.subsystem, tick)
        if ts is not None:
            tick.redundancy += [(f"{plan.id} {gid}", g)
                                for gid, g in rr.redundancy(ts.get("FanRedundancy", []), self.bmc)]
        for doc in self._members(plan.fans, plan.fan_members, tick):
            if (fan := rr.modern_fan(doc, self.bmc)) is not None:
                tick.add_sensors(plan.id, "Fans", [fan])
        metrics = self._fetch(plan.metrics, tick)
        if metrics is not None:
            tick.add_sensors(plan.id, "ThermalMetrics", rr.modern_temperatures(
                metrics, plan.sensor_info, self.bmc))
        keep = set(plan.sensor_members)
        for doc in self._members(plan.sensors, plan.sensor_members, tick):
            if doc.get("@odata.id") in keep and (r := rs.sensor(doc, self.bmc)) is not None:
                tick.add_sensors(plan.id, "Sensors", [r])
        ps = self._fetch(plan.power_subsystem, tick)
        if ps is not None:
            tick.redundancy += [(f"{plan.id} {gid}", g) for gid, g in rr.redundancy(
                ps.get("PowerSupplyRedundancy", []), self.bmc, PsuRedundancy)]
        for i, path in enumerate(plan.psus):
            psu = self._fetch(path, tick)
            if psu is not None:
                metrics_doc = self._fetch(rr.odata_id(psu, "Metrics"), tick)
                tick.add_psus(plan.id, "PowerSubsystem", [
                    (rr.stable_id(psu, i), rr.modern_psu(psu, metrics_doc, self.bmc))])
        environment = self._fetch(plan.environment, tick)
        if environment is not None:
            tick.add_power(plan.id, rr.environment_watts(environment))

    def _members(self, collection: str | None, paths: list[str],
                 tick: Tick | None) -> list[rr.Doc]:
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
        energy = ChassisEnergyMeter(hw.clock, config.energy.price_per_kwh, config.energy.currency)
        out.append(Scheduled(ChassisRedfishCollector(bmc, link, energy), interval, deadline))
    return out
