"""Pure helpers of the controller: stepping the zones together, combining their duties per
fan channel, checking the zones' channels against the driver's, what the Snapshot says about
the BMC the fans hang off (reachable, fan sensors reporting, fan speeds), and the readings
each zone publishes."""

from __future__ import annotations

from gpuwatchd.config.fan_drivers import Channel
from gpuwatchd.control.revert import RpmWatch
from gpuwatchd.control.state import FailsafeReason, ZoneMode, ZoneReading
from gpuwatchd.control.zones import Fault, ZoneController, ZoneStep
from gpuwatchd.model import BmcReading, FanReading, Snapshot


def plan_zones(zones: list[ZoneController], snapshot: Snapshot, now: float, *, blocked: str,
               fault: Fault | None, entry: float | None) -> list[ZoneStep]:
    """Step every zone. Zones share the BMC's fan mode, so they move together: when one goes
    to failsafe every zone in control follows, and none leaves failsafe before all can."""
    assessments = [z.observe(snapshot, now) for z in zones]
    leave_ok = all(z.ready_to_leave(a, now, fault) for z, a in zip(zones, assessments,
                                                                   strict=True))
    steps = [z.step(a, now, blocked=blocked, driver_fault=fault, entry_duty=entry,
                    leave_ok=leave_ok) for z, a in zip(zones, assessments, strict=True)]
    cause = next((st for st in steps if st.mode is ZoneMode.FAILSAFE), None)
    if cause is None:
        return steps
    zone = zones[steps.index(cause)]
    reason = zone.last_fault.reason if zone.last_fault is not None else \
        FailsafeReason.STALE_INPUT
    linked = Fault(reason, f"zone {zone.name} is in failsafe ({cause.reason})")
    for i, (z, st) in enumerate(zip(zones, steps, strict=True)):
        if st.mode is ZoneMode.CONTROL:
            steps[i] = z.step(assessments[i], now, driver_fault=linked)
    return steps


def _target_results(snapshot: Snapshot, target: str) -> list[tuple[bool, BmcReading]]:
    out = []
    for res in snapshot.results:
        for r in res.collected.readings:
            if isinstance(r, BmcReading) and r.bmc == target:
                out.append((res.is_stale(snapshot.taken_mono), r))
    return out


def driver_fault(snapshot: Snapshot, target: str, connected: bool) -> Fault | None:
    """A fault of the BMC as the chassis collector sees it (None where it does not read it):
    not answering, stale, or answering with fan sensors that do not report (a BMC that is
    starting after a cold reset: no writes until its fans report again)."""
    for stale, bmc in _target_results(snapshot, target):
        if stale:
            return Fault(FailsafeReason.BMC_UNREACHABLE, f"BMC {target}: chassis data stale")
        if not bmc.up:
            return Fault(FailsafeReason.BMC_UNREACHABLE,
                         f"BMC {target} not answering: {bmc.error}")
        fans = [f for f in snapshot.readings(FanReading) if f.bmc == target]
        if fans and not any(f.rpm is not None or f.ratio is not None for f in fans):
            return Fault(FailsafeReason.BMC_UNREACHABLE,
                         f"BMC {target}: fan sensors not reporting (starting after a reset?)")
    return None


def fan_rpm(snapshot: Snapshot, target: str) -> float | None:
    """The mean speed of the BMC's fans that report one (None if none does)."""
    rpms = [f.rpm for f in snapshot.readings(FanReading) if f.bmc == target and f.rpm]
    return sum(rpms) / len(rpms) if rpms else None


def entry_duty(snapshot: Snapshot, target: str, watch: RpmWatch) -> float | None:
    """The duty the fans run at now, where the BMC says (percent-reporting fans) or the
    calibration curve tells it from the rpm; None when unknown (entry is then max_duty)."""
    ratios = [f.ratio for f in snapshot.readings(FanReading)
              if f.bmc == target and f.ratio is not None]
    if ratios:
        return sum(ratios) / len(ratios)
    rpm = fan_rpm(snapshot, target)
    return watch.duty_for_rpm(rpm) if rpm is not None else None


def combine(zones: list[ZoneController], steps: list[ZoneStep],
            channels: tuple[Channel, ...]) -> dict[Channel, float]:
    """Per channel, the max duty of the zones in control that drive it; channels no zone
    names get the highest duty asked for (never left lower than any zone wants)."""
    out: dict[Channel, float] = {}
    for zone, st in zip(zones, steps, strict=True):
        if st.mode is not ZoneMode.CONTROL or st.duty is None:
            continue
        names = channels if zone.cfg.fans == "all" else zone.cfg.channels
        for ch in names:
            out[ch] = max(out.get(ch, 0.0), st.duty)
    top = max(out.values(), default=1.0)
    return {ch: out.get(ch, top) for ch in channels}


def channel_problems(zones: list[ZoneController], driver: str,
                     channels: tuple[Channel, ...]) -> list[str]:
    """Per zone that names a fan channel the driver does not have, why it cannot run."""
    known = set(channels)
    problems = []
    for zone in zones:
        if zone.cfg.fans == "all":
            continue
        unknown = [str(ch) for ch in zone.cfg.channels if ch not in known]
        if unknown:
            problems.append(f"zone {zone.name}: {', '.join(unknown)} not among the {driver} "
                            f"channels ({', '.join(sorted(map(str, known)))})")
    return problems


def zone_reading(zone: ZoneController, st: ZoneStep) -> ZoneReading:
    """What the zone publishes for this tick."""
    terms = st.terms
    return ZoneReading(
        zone=zone.name, mode=st.mode, reason=st.reason,
        setpoint_celsius=zone.cfg.setpoint_celsius, ceiling_celsius=zone.cfg.ceiling_celsius,
        input_id=st.controlling.id if st.controlling is not None else "",
        input_celsius=st.controlling.celsius if st.controlling is not None else None,
        duty=st.duty, min_duty=zone.min_duty, max_duty=zone.cfg.max_duty,
        p=terms.p if terms else None, i=terms.i if terms else None,
        d=terms.d if terms else None, f=terms.f if terms else None, tuned=zone.tuned is not None,
        failsafe_entries=tuple(sorted(zone.entries.items())))
