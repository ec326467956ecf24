"""The licence state model: one verdict per GPU, plus node-level problems.

GPU states (:class:`LicenceState`), in the order they are decided:

- ``unknown``: the probe failed (warning after ``unknown_warning_cycles`` probes in a row);
- ``not_applicable``: no licensing on this GPU (bare metal, hypervisor side): no series;
- licensed (the driver's ``featureState`` is non-zero, or a passthrough GPU with FeatureType 0
  or unset, which runs as "NVIDIA Virtual Applications"):
  ``expired`` when a VALID expiry has passed; ``expiring`` when the time left is below
  min(``expiring_seconds``, ``expiring_lease_ratio`` x lease); ``renewing_late`` when the
  expiry has not moved for ``renewing_late_lease_ratio`` x lease; else ``licensed``;
- unlicensed (``unlicensed_since`` is when it was first seen so): ``restricted`` when
  nvidia-smi says "Unlicensed (Restricted)", or it does not say and the grace period has
  passed; ``expired`` when the lease last seen has run out; ``unconfigured`` when the node has
  no token and no server, or FeatureType is wrong; else ``unlicensed_grace``.

The lease length is not published anywhere: it is observed as (expiry - time the expiry was
first seen or last moved forward). Seen for the first time at start-up, the estimate is
shorter than the real lease, which only makes ``expiring`` and ``renewing_late`` fire later,
never falsely. FlexNet-style clients renew once 15 % of the lease has elapsed (the reference's
"Renewal timing"), so in normal operation the time left never drops below 85 % of the lease.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from gpuwatchd.clock import span
from gpuwatchd.licence.griddconf import Problem
from gpuwatchd.licence.kinds import (
    VAPPS_PRODUCT,
    ExpiryStatus,
    FeatureCode,
    LicenceState,
    NodeProblem,
    Severity,
    VirtualizationMode,
)
from gpuwatchd.licence.node import NodeReport
from gpuwatchd.licence.probe import Feature, GpuProbe
from gpuwatchd.licence.smi_xml import SmiLicence

UNCONFIGURED_KINDS = frozenset({"missing", "unreadable", "no_server", "feature_type_invalid",
                                "feature_type_mismatch"})


@dataclass(frozen=True)
class Thresholds:
    """Defaults alert before NVIDIA's 20-minute grace ends: warning at 5, critical at 15."""

    grace_seconds: float = 1200.0
    unlicensed_warning_seconds: float = 300.0
    unlicensed_critical_seconds: float = 900.0
    expiring_seconds: float = 86400.0
    expiring_lease_ratio: float = 0.15
    renewing_late_lease_ratio: float = 0.5
    unknown_warning_cycles: int = 3
    gridd_down_critical_seconds: float = 60.0


@dataclass(frozen=True)
class Evidence:
    """What one probe cycle knows about one GPU."""

    probe: GpuProbe
    smi: SmiLicence | None = None
    smi_taken_wall: float | None = None
    conf_problems: tuple[Problem, ...] = ()
    feature_type: int | None = None


@dataclass(frozen=True)
class Assessment:
    """The verdict for one GPU, with the words an operator can act on."""

    state: LicenceState
    severity: Severity
    reason: str = ""
    mode: VirtualizationMode | None = None
    product: str = ""
    feature: FeatureCode | None = None
    driver_licensed: bool | None = None  # what NVML says (featureState != 0)
    expiry_status: ExpiryStatus | None = None
    expiry_timestamp_seconds: float | None = None
    unlicensed_since: float | None = None
    last_renewal: float | None = None
    lease_seconds: float | None = None
    restricted_inferred: bool = False


class GpuTracker:
    """Memory for one GPU across probes (owned by the collector, one per UUID)."""

    def __init__(self) -> None:
        self._forget()
        self.failures = 0
        self.seen_licensing = False  # a probe has shown licensing on this GPU

    def applies(self, probe: GpuProbe) -> bool:
        """Licensing applies: the probe says so, or it failed on a vGPU guest GPU or on one
        seen with licensing before (a lost bare-metal GPU is the GPU collector's business)."""
        return bool(probe.supported) or (probe.supported is None and (
            self.seen_licensing or probe.mode is VirtualizationMode.VGPU))

    def _forget(self) -> None:
        self.unlicensed_since: float | None = None
        self.expiry: float | None = None
        self.advanced_at: float | None = None
        self.lease: float | None = None
        self.last_renewal: float | None = None

    def assess(self, ev: Evidence, now: float, th: Thresholds) -> Assessment:
        """One verdict; updates the memory."""
        probe = ev.probe
        if probe.supported is None and not self.applies(probe):
            return Assessment(LicenceState.NOT_APPLICABLE, Severity.OK, mode=probe.mode,
                              reason=f"not known to have licensing; probe failed: {probe.error}")
        if probe.supported is None:
            self.failures += 1
            severity = (Severity.WARNING if self.failures >= th.unknown_warning_cycles
                        else Severity.OK)
            return Assessment(LicenceState.UNKNOWN, severity, f"probe failed: {probe.error}",
                              probe.mode, unlicensed_since=self.unlicensed_since)
        self.failures = 0
        self.seen_licensing = bool(probe.supported)
        feature = probe.chosen(ev.feature_type)
        if not probe.supported or feature is None:
            self._forget()  # nothing to track
            return Assessment(LicenceState.NOT_APPLICABLE, Severity.OK, mode=probe.mode)
        vapps = is_vapps(probe, feature, ev.feature_type)
        if feature.licensed or vapps:
            return self._licensed(ev, feature, now, th, vapps)
        return self._unlicensed(ev, feature, now, th)

    def _licensed(self, ev: Evidence, feature: Feature, now: float, th: Thresholds,
                  vapps: bool) -> Assessment:
        self.unlicensed_since = None
        self._track_expiry(feature, now)
        base = self._base(ev, feature, licensed=feature.licensed)
        if vapps:
            return replace(base, product=VAPPS_PRODUCT, state=LicenceState.LICENSED,
                           severity=Severity.OK, reason="passthrough without a vWS/vCS "
                              "licence: runs as NVIDIA Virtual Applications (FeatureType 0)")
        if self.expiry is None:
            return replace(base, state=LicenceState.LICENSED, severity=Severity.OK)
        left = self.expiry - now
        lease = self.lease or 0.0
        if left <= 0:
            return replace(base, state=LicenceState.EXPIRED, severity=Severity.CRITICAL,
                              reason=f"the lease expired {span(-left)} ago and the driver "
                                     "still reports it: nvidia-gridd did not renew")
        if left < min(th.expiring_seconds, th.expiring_lease_ratio * lease):
            return replace(base, state=LicenceState.EXPIRING, severity=Severity.CRITICAL,
                              reason=f"expires in {span(left)} (lease ~{span(lease)}): "
                                     "nvidia-gridd is not renewing; check the licence server")
        stalled = now - (self.advanced_at or now)
        if lease and stalled > th.renewing_late_lease_ratio * lease:
            return replace(base, state=LicenceState.RENEWING_LATE,
                              severity=Severity.WARNING,
                              reason=f"the expiry has not moved for {span(stalled)} (lease "
                                     f"~{span(lease)}); renewals are due after 15 %")
        return replace(base, state=LicenceState.LICENSED, severity=Severity.OK)

    def _unlicensed(self, ev: Evidence, feature: Feature, now: float,
                    th: Thresholds) -> Assessment:
        if self.unlicensed_since is None:
            self.unlicensed_since = now
        elapsed = now - self.unlicensed_since
        fresh = (ev.smi is not None and ev.smi_taken_wall is not None
                 and ev.smi_taken_wall >= self.unlicensed_since)
        restricted = ev.smi.restricted if fresh and ev.smi is not None else None
        inferred = restricted is None and elapsed >= th.grace_seconds
        base = self._base(ev, feature, licensed=False)
        if restricted or inferred:
            how = "past the grace period, " if inferred else ""
            return replace(base, state=LicenceState.RESTRICTED, severity=Severity.CRITICAL,
                              restricted_inferred=inferred,
                              reason=f"unlicensed for {span(elapsed)}, {how}restricted "
                                     "(performance reduced): nvidia-gridd must acquire a licence")
        grace_left = max(0.0, th.grace_seconds - elapsed)
        severity = (Severity.CRITICAL if elapsed >= th.unlicensed_critical_seconds else
                    Severity.WARNING if elapsed >= th.unlicensed_warning_seconds else Severity.OK)
        if self.expiry is not None and self.expiry <= now:
            return replace(base, state=LicenceState.EXPIRED, severity=Severity.CRITICAL,
                              reason=f"the lease expired {span(now - self.expiry)} ago; "
                                     f"restricted in {span(grace_left)} unless renewed")
        blockers = [p.message for p in ev.conf_problems
                    if p.kind in UNCONFIGURED_KINDS and p.severity >= Severity.WARNING]
        if blockers:
            return replace(base, state=LicenceState.UNCONFIGURED,
                              severity=max(severity, Severity.WARNING),
                              reason="; ".join(blockers))
        return replace(base, state=LicenceState.UNLICENSED_GRACE, severity=severity,
                          reason=f"unlicensed for {span(elapsed)}; restricted in "
                                 f"{span(grace_left)}: check nvidia-gridd and the licence server")

    def _base(self, ev: Evidence, feature: Feature, licensed: bool) -> Assessment:
        """The facts; the caller fills in state, severity and reason."""
        return Assessment(LicenceState.UNKNOWN, Severity.OK, mode=ev.probe.mode,
                          product=feature.product, feature=feature.code,
                          driver_licensed=licensed, expiry_status=feature.expiry_status,
                          expiry_timestamp_seconds=feature.expiry_timestamp_seconds,
                          unlicensed_since=self.unlicensed_since, last_renewal=self.last_renewal,
                          lease_seconds=self.lease)

    def _track_expiry(self, feature: Feature, now: float) -> None:
        """Follow the VALID expiry: first sight, renewals (it moves forward), replacements."""
        stamp = (feature.expiry_timestamp_seconds
                 if feature.expiry_status is ExpiryStatus.VALID else None)
        if stamp is None:
            self.expiry = self.advanced_at = self.lease = None
            return
        if self.expiry is not None and stamp > self.expiry + 1.0:
            self.last_renewal = now  # renewed (or re-acquired): a real observation
        if self.expiry is None or abs(stamp - self.expiry) > 1.0:
            self.expiry, self.advanced_at, self.lease = stamp, now, max(0.0, stamp - now)


def is_vapps(probe: GpuProbe, feature: Feature, feature_type: int | None) -> bool:
    """Passthrough, no licence, FeatureType 0 or unset: NVIDIA Virtual Applications (example.py
    prints it as Licensed; vApps is enforced by the EULA, not by the driver)."""
    return (probe.mode is VirtualizationMode.PASSTHROUGH and not feature.licensed
            and not feature_type)


@dataclass(frozen=True)
class NodeFinding:
    """A node-level problem with its severity and words for the operator."""

    problem: NodeProblem
    severity: Severity
    message: str


def node_findings(report: NodeReport, conf_problems: tuple[Problem, ...], now: float,
                  th: Thresholds, all_licensed: bool = False) -> tuple[NodeFinding, ...]:
    """Node problems; call only where some GPU's licence is held by this OS.

    gridd.conf and token findings are lint: a warning when a setting cannot work, and only
    informational (severity OK: still in the status and the metrics, never "degraded") when
    ``all_licensed``, as every GPU holding a licence shows that the setup works."""
    out: list[NodeFinding] = []
    unit = report.unit
    if unit.installed and unit.up is False:
        down = now - (report.down_since if report.down_since is not None else now)
        severity = (Severity.CRITICAL if down >= th.gridd_down_critical_seconds
                    else Severity.WARNING)
        out.append(NodeFinding(NodeProblem.GRIDD_DOWN, severity,
                               f"nvidia-gridd is {unit.label} (for {span(down)}): "
                               "systemctl status nvidia-gridd"))
    elif unit.known and not unit.installed:
        out.append(NodeFinding(NodeProblem.GRIDD_DOWN, Severity.WARNING,
                               "nvidia-gridd.service is not installed (a GRID driver ships it; "
                               "a driver container may run gridd instead)"))
    token_problems = [p for p in report.tokens.problems
                      if not (report.legacy_server and p.kind in ("missing", "empty"))]
    if token_problems:
        out.append(NodeFinding(NodeProblem.TOKEN_PROBLEM, _lint_severity(token_problems,
                                                                         all_licensed),
                               "; ".join(p.message for p in token_problems)))
    if conf_problems:
        out.append(NodeFinding(NodeProblem.CONFIG_PROBLEM, _lint_severity(conf_problems,
                                                                          all_licensed),
                               "; ".join(p.message for p in conf_problems)))
    if report.sync.synchronized is False:
        out.append(NodeFinding(NodeProblem.CLOCK_UNSYNCED, Severity.WARNING,
                               "the clock is not synchronised (timedatectl: NTPSynchronized=no); "
                               "licence leases are wall-clock times"))
    return tuple(out)


def _lint_severity(problems: Sequence[Problem], all_licensed: bool) -> Severity:
    """The worst finding, capped at informational (OK) while every GPU is licensed."""
    worst = max((p.severity for p in problems), default=Severity.OK)
    return Severity.OK if all_licensed else worst
