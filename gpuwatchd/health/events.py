"""Journal events: what changed between two ticks, as a pure diff of the Snapshots' readings.

Every change of a hardware condition (gpuwatchd.health.conditions: a PSU, a fan, a BMC
sensor's state, a redundancy group, a GPU lost, XIDs, ECC, remap, thermal slowdown), of a fan
zone's mode and of a GPU's licence state is one :class:`Event`, logged once when it happens
(never on every tick) with a stable ``MESSAGE_ID`` per kind (:data:`MESSAGE_IDS`, the
catalogue in docs/events.md), a priority from its severity and structured fields (``BMC=``,
``SENSOR=``, ``GPU=``, ...). Command-line equivalent:
``journalctl -u gpuwatchd MESSAGE_ID=49d7de67b07c4ad8b4e7f9c6a521b3ed`` (a PSU failed).

:func:`diff` carries a :class:`Memory` from tick to tick. A subject that is not observed on a
tick (its BMC is down or its data stale, a GPU no longer listed) keeps its last state: a BMC
that stops answering does not "recover" its failed PSU. A condition kind listed in the
``health.ignore`` config key makes no event either (by default ``sensor_warning``: a fan
spinning down to 0 rpm is one "fan_failed" line, not a warning first).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from gpuwatchd.model import (
    BmcReading,
    ConditionKind,
    GpuReading,
    HealthCondition,
    LicenceReading,
    NvmlReading,
    Severity,
    Snapshot,
)

EventKind = ConditionKind | Literal["condition_cleared", "zone_mode", "licence_state"]
# One 128-bit id per kind, as systemd's catalog uses (made once with uuid.uuid4().hex; never
# change one: journalctl MESSAGE_ID= filters and packaging/gpuwatchd.catalog name them).
MESSAGE_IDS: dict[EventKind, str] = {
    "psu_absent": "b55a1732c6054a2498e6e022a6e97611",
    "psu_failed": "49d7de67b07c4ad8b4e7f9c6a521b3ed",
    "psu_predictive_failure": "26b0793850e243e68420d9a9152eb0a4",
    "psu_redundancy_lost": "6b77bf1be5f34c438a9dd9475a460c6b",
    "fan_failed": "f7cd193888464239ae7d7592103d2537",
    "fan_redundancy_lost": "10eff5a7de3c49a3b50b8af74ac3be41",
    "sensor_critical": "4d4d75ac774c431ebff4b8242dbcec8e",
    "sensor_no_reading": "398f8b91e9c8489296cc47a3e77fe925",
    "sensor_warning": "21ad74f2b24b4d08bbe6d1df934a3043",
    "gpu_lost": "14a52bbe2c1e44a08dca3bfa32a69eb4",
    "gpu_xid": "55cccf0bdba74788ad14dcc9e56a8942",
    "gpu_ecc_uncorrected": "7998c3c1735d44a795b881571737ec6d",
    "gpu_remap_failed": "2be1b41bc27443d5b76860f596bb34dc",
    "gpu_remap_pending": "60e6ec5175a945389424278e57f4b6f0",
    "gpu_thermal_slowdown": "f218e11f3c75490a8edc582d2c214111",
    "condition_cleared": "f4409490cc234958ba0dea0aa28a9ad2",
    "zone_mode": "9b5cbe953e4741f08ad0272577c75203",
    "licence_state": "be5a836b8faa482bb4b9394527289e0c",
}
# A PSU's and a sensor's conditions exclude each other (conditions.psu, conditions.sensor):
# one facet, so "warning -> failed" is one event, not a clear and a raise.
FACETS: dict[ConditionKind, str] = {
    "psu_absent": "psu", "psu_failed": "psu", "psu_predictive_failure": "psu",
    "fan_failed": "sensor", "sensor_critical": "sensor", "sensor_no_reading": "sensor",
    "sensor_warning": "sensor", "gpu_remap_failed": "gpu_remap", "gpu_remap_pending": "gpu_remap"}
Key = tuple[str, str, str, int | None, str]  # (facet, bmc, sensor, gpu, uuid)


@dataclass(frozen=True)
class Event:
    """One change: its kind (and so its MESSAGE_ID), severity, one line, and fields."""

    kind: EventKind
    severity: Severity
    message: str
    fields: tuple[tuple[str, str], ...] = ()
    fault: Severity | None = None  # a recovery: the severity of the fault that ended

    @property
    def weight(self) -> Severity:
        """What decides whether it is notified: its severity, or a recovery's fault's."""
        return self.fault or self.severity

    @property
    def message_id(self) -> str:
        return MESSAGE_IDS[self.kind]


@dataclass(frozen=True)
class Memory:
    """The last known state of every subject (what the next tick is compared with)."""

    conditions: dict[Key, HealthCondition] = field(default_factory=dict)
    zones: dict[str, str] = field(default_factory=dict)  # zone -> mode
    licences: dict[str, str] = field(default_factory=dict)  # GPU uuid -> licence state


def diff(memory: Memory, snapshot: Snapshot) -> tuple[tuple[Event, ...], Memory]:
    """The events of ``snapshot`` against ``memory``, and the memory for the next tick."""
    events, conditions = _conditions(memory.conditions, snapshot)
    zone_events, zones = _zones(memory.zones, snapshot)
    licence_events, licences = _licences(memory.licences, snapshot)
    return (*events, *zone_events, *licence_events), Memory(conditions, zones, licences)


def key(c: HealthCondition) -> Key:
    return (FACETS.get(c.kind, c.kind), c.bmc, c.sensor, c.gpu, c.uuid)


def _conditions(before: dict[Key, HealthCondition], snapshot: Snapshot
                ) -> tuple[list[Event], dict[Key, HealthCondition]]:
    now = {key(c): c for c in snapshot.health if c.counted}  # health.ignore: no event either
    seen = _Observed(snapshot)
    events = []
    for k, c in now.items():
        old = before.get(k)
        if old is None or old.kind != c.kind:
            was = f" (was {old.kind}: {old.message})" if old is not None else ""
            events.append(Event(c.kind, c.severity, f"{c.source}: {c.message}{was}",
                                _fields(c)))
    after = dict(now)
    for k, old in before.items():
        if k in now:
            continue
        if seen.observes(old):
            events.append(Event("condition_cleared", "info",
                                f"{old.source}: recovered (was {old.kind}: {old.message})",
                                _fields(old), fault=old.severity))
        else:
            after[k] = old  # not seen this tick: keep its state, say nothing
    return events, after


def _fields(c: HealthCondition) -> tuple[tuple[str, str], ...]:
    pairs = [("CONDITION", c.kind), ("BMC", c.bmc), ("SENSOR", c.sensor),
             ("GPU", "" if c.gpu is None else str(c.gpu)), ("GPU_UUID", c.uuid)]
    return tuple((name, value) for name, value in pairs if value)


class _Observed:
    """Which subjects ``snapshot`` has fresh readings of (a clear needs a fresh reading)."""

    def __init__(self, snapshot: Snapshot) -> None:
        now = snapshot.taken_mono
        self.bmcs = {r.bmc for res in snapshot.results if not res.is_stale(now)
                     for r in res.collected.readings if isinstance(r, BmcReading) and r.up}
        gpus = snapshot.readings(GpuReading)
        self.gpus = {g.uuid for g in gpus}
        self.up_gpus = {g.uuid for g in gpus if g.up}
        self.nvml = any(n.up for n in snapshot.readings(NvmlReading))

    def observes(self, c: HealthCondition) -> bool:
        if c.bmc:
            return c.bmc in self.bmcs
        if c.kind == "gpu_lost":
            return c.uuid in self.gpus
        if c.kind == "gpu_xid":
            return self.nvml
        return c.uuid in self.up_gpus


def _zones(before: dict[str, str], snapshot: Snapshot) -> tuple[list[Event], dict[str, str]]:
    if snapshot.control is None:
        return [], before
    events, after = [], dict(before)
    for z in snapshot.control.zones:
        old = before.get(z.zone)
        if old != z.mode:
            why = f" ({z.reason})" if z.reason else ""
            line = f"fan zone {z.zone}: {old or 'start'} -> {z.mode}{why}"
            events.append(Event("zone_mode", "warning" if z.mode == "failsafe" else "info",
                                line, (("ZONE", z.zone), ("MODE", str(z.mode)))))
        after[z.zone] = z.mode
    return events, after


def _licences(before: dict[str, str], snapshot: Snapshot) -> tuple[list[Event], dict[str, str]]:
    events, after = [], dict(before)
    for lic in snapshot.readings(LicenceReading):
        old = before.get(lic.uuid)
        if old != lic.state:
            why = f": {lic.reason}" if lic.reason else ""
            events.append(Event(
                "licence_state", _severity(lic.severity),
                f"GPU {lic.index} vGPU licence: {old or 'start'} -> {lic.state}{why}",
                (("GPU", str(lic.index)), ("GPU_UUID", lic.uuid), ("LICENCE_STATE", lic.state))))
        after[lic.uuid] = lic.state
    return events, after


def _severity(text: str) -> Severity:
    return "critical" if text == "critical" else "warning" if text == "warning" else "info"
