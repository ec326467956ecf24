"""The hardware conditions of a Snapshot: pure functions of its typed readings.

One source of truth for ``gpuwatchctl status``'s hardware verdict (the ``hardware`` section)
and for the journal events (gpuwatchd.health.events); the same conditions have alert rules in
monitoring/alerts.yaml (the rule named in each function's docstring). A sensor or a PSU has at
most one condition at a time (the worst), so one change is one event.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace

from gpuwatchd.collectors.gpu_read import CLOCK_EVENTS
from gpuwatchd.config.schema import HealthConfig
from gpuwatchd.model import (
    ChassisSensor,
    ChassisTemperature,
    ConditionKind,
    FanReading,
    FanRedundancy,
    GpuReading,
    HealthCondition,
    NvmlReading,
    PsuReading,
    Severity,
    Snapshot,
    XidCount,
    threshold,
)

# The alert rule of monitoring/alerts.yaml that fires on each kind (None: no rule, and the
# kind is in health.ignore by default). tests/unit/test_health.py checks both ways.
ALERTS: dict[ConditionKind, str | None] = {
    "psu_absent": "GpuwatchdPsuFailed", "psu_failed": "GpuwatchdPsuFailed",
    "psu_predictive_failure": "GpuwatchdPsuPredictiveFailure",
    "psu_redundancy_lost": "GpuwatchdPsuRedundancyLost", "fan_failed": "GpuwatchdFanFailed",
    "fan_redundancy_lost": "GpuwatchdFanRedundancyLost",
    "sensor_critical": "GpuwatchdBmcSensorCritical",
    "sensor_no_reading": "GpuwatchdBmcSensorNoReading", "sensor_warning": None,
    "gpu_lost": "GpuwatchdGpuLost", "gpu_xid": "GpuwatchdGpuXidErrors",
    "gpu_ecc_uncorrected": "GpuwatchdGpuEccUncorrected",
    "gpu_remap_failed": "GpuwatchdGpuRemapFailed", "gpu_remap_pending": "GpuwatchdGpuRemapPending",
    "gpu_thermal_slowdown": "GpuwatchdGpuThermalSlowdown",
}
# nvmlClocksEventReasonSwThermalSlowdown | HwThermalSlowdown: the GPU cut its clocks for heat
THERMAL_CLOCK_EVENTS = CLOCK_EVENTS["sw_thermal"] | CLOCK_EVENTS["hw_thermal"]


def evaluate(snapshot: Snapshot, config: HealthConfig) -> tuple[HealthCondition, ...]:
    """Every condition of ``snapshot``'s readings, ``counted`` unless ``config.ignore``s it.

    A BMC that is down publishes no sensor readings, so it has no conditions here (the
    daemon's ``health`` says it is down; the events keep its last state).
    """
    found: list[HealthCondition] = []
    psus = snapshot.readings(PsuReading)
    found += (c for p in psus if (c := psu(p)) is not None)
    found += psu_redundancy(psus)
    found += (c for s in _chassis_sensors(snapshot) if (c := sensor(s)) is not None)
    found += (c for g in snapshot.readings(FanRedundancy) if (c := fan_redundancy(g)) is not None)
    for gpu in snapshot.readings(GpuReading):
        found += gpu_conditions(gpu)
    horizon = snapshot.taken_wall - config.xid_window_seconds
    for nvml in snapshot.readings(NvmlReading):
        found += xids(nvml.xids, horizon)
    ignored = set(config.ignore)
    return tuple(replace(c, counted=False) if c.kind in ignored else c for c in found)


def _chassis_sensors(snapshot: Snapshot) -> Iterator[ChassisSensor]:
    for res in snapshot.results:
        yield from (r for r in res.collected.readings if isinstance(r, ChassisSensor))


def psu(p: PsuReading) -> HealthCondition | None:
    """Absent, failed or AC lost (GpuwatchdPsuFailed: gpuwatchd_psu_up == 0), else predictive
    failure (GpuwatchdPsuPredictiveFailure)."""
    if not p.present:
        return _psu(p, "psu_absent", "critical", "not present")
    if p.failed or p.ac_lost:
        causes = [word for word, on in (("failed", p.failed), ("AC lost", p.ac_lost)) if on]
        return _psu(p, "psu_failed", "critical", ", ".join(causes))
    if p.predictive_failure:
        return _psu(p, "psu_predictive_failure", "warning", "predicts its own failure")
    return None


def _psu(p: PsuReading, kind: ConditionKind, severity: Severity,
         message: str) -> HealthCondition:
    return HealthCondition(kind, severity, f"BMC {p.bmc} PSU {p.name}", message, bmc=p.bmc,
                           sensor=p.name)


def psu_redundancy(psus: Iterable[PsuReading]) -> list[HealthCondition]:
    """A BMC with two or more PSUs and fewer than two up (GpuwatchdPsuRedundancyLost)."""
    by_bmc: dict[str, list[PsuReading]] = {}
    for p in psus:
        by_bmc.setdefault(p.bmc, []).append(p)
    out = []
    for bmc, group in by_bmc.items():
        up = sum(1 for p in group if p.up)
        if len(group) >= 2 and up < 2:
            out.append(HealthCondition("psu_redundancy_lost", "warning", f"BMC {bmc} PSUs",
                                       f"{up} of {len(group)} power supplies working",
                                       bmc=bmc, sensor="PSU redundancy"))
    return out


def fan_redundancy(g: FanRedundancy) -> HealthCondition | None:
    """A fan redundancy group that is not fully redundant (GpuwatchdFanRedundancyLost)."""
    if g.redundant:
        return None
    return HealthCondition("fan_redundancy_lost", "warning", f"BMC {g.bmc} {g.group}",
                           "redundancy lost", bmc=g.bmc, sensor=g.group)


def fan_failed(f: FanReading) -> str:
    """Why ``f`` counts as failed ("" if it does not): 0 rpm, under the BMC's lower critical
    threshold (a rotor coasting at 120 rpm), or a critical state (GpuwatchdFanFailed)."""
    low = threshold(f.thresholds_rpm, "lower_critical")
    if f.rpm is not None and f.rpm <= 0:
        return "0 rpm"
    if f.rpm is not None and low is not None and f.rpm < low:
        return f"{f.rpm:.0f} rpm, below its lower critical {low:.0f} rpm"
    return "critical" if f.state == "critical" else ""


def sensor(s: ChassisSensor) -> HealthCondition | None:
    """The worst of: a failed fan, a critical sensor or a temperature at or over its upper
    critical threshold (GpuwatchdBmcSensorCritical, GpuwatchdChassisTemperatureCritical), a
    sensor with no reading (GpuwatchdBmcSensorNoReading), a warning state."""
    if isinstance(s, FanReading) and (why := fan_failed(s)):
        return _sensor(s, "fan_failed", "critical", why)
    hot = isinstance(s, ChassisTemperature) and _over_upper_critical(s)
    if s.state == "critical" or hot:
        return _sensor(s, "sensor_critical", "critical", _reading(s))
    if s.state == "no_reading":
        return _sensor(s, "sensor_no_reading", "warning", "no reading")
    if s.state == "warning":
        return _sensor(s, "sensor_warning", "warning", _reading(s))
    return None


def _sensor(s: ChassisSensor, kind: ConditionKind, severity: Severity,
            message: str) -> HealthCondition:
    word = "fan" if isinstance(s, FanReading) else "sensor"
    return HealthCondition(kind, severity, f"BMC {s.bmc} {word} {s.name}", message,
                           bmc=s.bmc, sensor=s.name)


def _over_upper_critical(t: ChassisTemperature) -> bool:
    limit = t.upper_critical_celsius
    return t.celsius is not None and limit is not None and t.celsius >= limit


def _reading(s: ChassisSensor) -> str:
    if isinstance(s, FanReading):
        return f"{s.state}, {s.rpm:.0f} rpm" if s.rpm is not None else s.state
    if isinstance(s, ChassisTemperature) and s.celsius is not None:
        limit = s.upper_critical_celsius
        over = f" (upper critical {limit:g} C)" if limit is not None else ""
        return f"{s.state}, {s.celsius:.0f} C{over}"
    return s.state


def gpu_conditions(g: GpuReading) -> list[HealthCondition]:
    """Lost (GpuwatchdGpuLost), uncorrectable ECC errors (GpuwatchdGpuEccUncorrected), a
    failed or pending row remap (GpuwatchdGpuRemapFailed/Pending), thermal slowdown
    (GpuwatchdGpuThermalSlowdown)."""
    if not g.up:
        return [_gpu(g, "gpu_lost", "critical", g.error or "not answering")]
    out = []
    slow = g.slow
    if slow is not None and (slow.ecc_uncorrected_errors_total or 0) > 0:
        out.append(_gpu(g, "gpu_ecc_uncorrected", "critical",
                        f"{slow.ecc_uncorrected_errors_total} uncorrectable ECC errors"))
    if slow is not None and slow.remap_failed:
        out.append(_gpu(g, "gpu_remap_failed", "critical", "row remapping failed"))
    elif slow is not None and slow.remap_pending:
        out.append(_gpu(g, "gpu_remap_pending", "warning", "row remap pending: reset the GPU"))
    events = g.fast.clock_events if g.fast is not None else None
    if events is not None and events & THERMAL_CLOCK_EVENTS:
        names = [n for n, bit in CLOCK_EVENTS.items() if bit & THERMAL_CLOCK_EVENTS & events]
        out.append(_gpu(g, "gpu_thermal_slowdown", "warning", f"clocks cut: {', '.join(names)}"))
    return out


def _gpu(g: GpuReading, kind: ConditionKind, severity: Severity,
         message: str) -> HealthCondition:
    return HealthCondition(kind, severity, f"GPU {g.index}", message, gpu=g.index, uuid=g.uuid)


def xids(counts: Iterable[XidCount], horizon_wall: float) -> list[HealthCondition]:
    """One condition per GPU with an XID reported after ``horizon_wall``
    (GpuwatchdGpuXidErrors)."""
    recent: dict[tuple[int, str], list[int]] = {}
    for x in counts:
        if x.count > 0 and x.last_timestamp_seconds > horizon_wall:
            recent.setdefault((x.gpu, x.uuid), []).append(x.xid)
    return [HealthCondition("gpu_xid", "warning", f"GPU {gpu}",
                            "XID " + ", ".join(map(str, sorted(codes))), gpu=gpu, uuid=uuid)
            for (gpu, uuid), codes in sorted(recent.items())]
