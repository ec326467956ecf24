"""One Redfish tick's readings before naming, and their stable names. No I/O.

The collector (gpuwatchd.collectors.chassis_redfish) adds what each resource of each chassis
gave; a sensor a chassis publishes twice (the legacy Thermal beside Sensors, a PSU in both
Power and PowerSubsystem; NOTE(iDRAC9 6.x, OpenBMC): the same ``Name``) is kept once, from the
first source read. :func:`named` then makes the names unique across the BMC's chassis
(gpuwatchd.collectors.chassis_common.unique_names).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from gpuwatchd.collectors import redfish_read as rr
from gpuwatchd.collectors.chassis_common import unique_names
from gpuwatchd.model import ChassisPower, ChassisSensor, FanRedundancy, PsuReading, PsuRedundancy


@dataclass
class Tick:
    """One tick's readings, under the names the BMC gave them, with the chassis of each.

    A chassis that publishes a sensor twice (the legacy Thermal beside Sensors, a PSU in both
    Power and PowerSubsystem) gives it once: the first source read keeps the name.
    """

    sensors: list[tuple[str, ChassisSensor]] = field(default_factory=list)
    psus: list[tuple[str, PsuReading]] = field(default_factory=list)  # (stable id, reading)
    power: list[ChassisPower] = field(default_factory=list)
    redundancy: list[tuple[str, rr.Redundancy]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    _seen: dict[tuple[str, type, str], str] = field(default_factory=dict)
    _psu_at: dict[tuple[str, str], int] = field(default_factory=dict)  # (chassis, name)

    def _new(self, chassis: str, source: str, kind: type, name: str) -> bool:
        """True unless another source of the same chassis gave this name already."""
        first = self._seen.setdefault((chassis, kind, name), source)
        return first == source

    def add_sensors(self, chassis: str, source: str, sensors: Sequence[ChassisSensor]) -> None:
        self.sensors += [(chassis, s) for s in sensors
                         if self._new(chassis, source, type(s), s.name)]

    def add_psus(self, chassis: str, source: str,
                 psus: Sequence[tuple[str, PsuReading]]) -> None:
        """PSUs; one a second resource also lists gets the watts the first did not give
        (iDRAC9: output watts only in the legacy Power, input in PowerSubsystem Metrics)."""
        for sid, p in psus:
            if self._new(chassis, source, PsuReading, p.name):
                self._psu_at[(chassis, p.name)] = len(self.psus)
                self.psus.append((sid, p))
                continue
            at = self._psu_at[(chassis, p.name)]
            first_sid, first = self.psus[at]
            self.psus[at] = (first_sid, replace(
                first, input_watts=_first(first.input_watts, p.input_watts),
                output_watts=_first(first.output_watts, p.output_watts),
                capacity_watts=_first(first.capacity_watts, p.capacity_watts)))

    def add_power(self, chassis: str, watts: float | None) -> None:
        if watts is not None and all(p.chassis != chassis for p in self.power):
            self.power.append(ChassisPower(chassis, watts))


def named(tick: Tick) -> list[object]:
    """The tick's readings, named uniquely across the BMC's chassis: sensors by chassis id,
    PSUs by their stable id ("PS1"; iLO 5's "HpeServerPowerSupply" twice: by MemberId),
    unnamed fan redundancy groups "Fan Redundancy" by chassis and member id."""
    names = unique_names([(s.name, chassis) for chassis, s in tick.sensors])
    out: list[object] = [replace(s, name=n)
                         for n, (_, s) in zip(names, tick.sensors, strict=True)]
    psu_names = unique_names([(p.name, sid) for sid, p in tick.psus])
    out += [replace(p, name=n) for n, (_, p) in zip(psu_names, tick.psus, strict=True)]
    for kind, unnamed in ((FanRedundancy, "Fan Redundancy"), (PsuRedundancy, "PSU Redundancy")):
        found = [(gid, g) for gid, g in tick.redundancy if isinstance(g, kind)]
        groups = unique_names([(g.group or unnamed, gid) for gid, g in found])
        out += [replace(g, group=n) for n, (_, g) in zip(groups, found, strict=True)]
    return out


def _first(value: float | None, other: float | None) -> float | None:
    return value if value is not None else other
