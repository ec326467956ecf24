"""The licence state model: every state, the grace timeline, expiry and renewal tracking."""

from __future__ import annotations

import pytest

from gpuwatchd.licence.gridd import UnitState
from gpuwatchd.licence.griddconf import GriddConf, Problem
from gpuwatchd.licence.kinds import (
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
from gpuwatchd.licence.state import Evidence, GpuTracker, Thresholds, node_findings, span
from gpuwatchd.licence.timesync import SyncState
from gpuwatchd.licence.tokens import TokenFile, TokenReport

T0 = 1_750_000_000.0
DAY = 86400.0
TH = Thresholds()
S = LicenceState


def probe(licensed: bool = True, expiry: float | None = None,
          status: ExpiryStatus | None = ExpiryStatus.VALID,
          mode: VirtualizationMode | None = VirtualizationMode.VGPU) -> GpuProbe:
    stamp = expiry if status is ExpiryStatus.VALID else None
    if status is ExpiryStatus.VALID and expiry is None:
        status = ExpiryStatus.NOT_AVAILABLE
    feature = Feature(FeatureCode.COMPUTE, licensed, "NVIDIA Virtual Compute Server", True,
                      status, stamp)
    return GpuProbe(mode, supported=True, version=4, features=(feature,))


def ev(p: GpuProbe, **kw: object) -> Evidence:
    return Evidence(p, **kw)  # type: ignore[arg-type]


def test_not_applicable_and_unknown() -> None:
    tracker = GpuTracker()
    none = tracker.assess(ev(GpuProbe(VirtualizationMode.NONE, supported=False)), T0, TH)
    assert (none.state, none.severity) == (S.NOT_APPLICABLE, Severity.OK)
    lost = ev(GpuProbe(None, supported=None, error="gpu_is_lost"))
    assert tracker.assess(lost, T0, TH).state is S.NOT_APPLICABLE  # never seen with licensing
    failing = ev(GpuProbe(VirtualizationMode.VGPU, supported=None, error="no_permission"))
    severities = [tracker.assess(failing, T0 + i, TH).severity for i in range(4)]
    assert tracker.assess(failing, T0, TH).state is S.UNKNOWN
    assert severities == [Severity.OK, Severity.OK, Severity.WARNING, Severity.WARNING]
    tracker.assess(ev(probe()), T0, TH)
    assert tracker.assess(failing, T0, TH).severity is Severity.OK  # the count restarted
    assert tracker.assess(lost, T0, TH).state is S.UNKNOWN  # now known to have licensing


@pytest.mark.parametrize("status", [ExpiryStatus.PERMANENT, ExpiryStatus.NOT_APPLICABLE,
                                    ExpiryStatus.NOT_AVAILABLE, ExpiryStatus.INVALID])
def test_licensed_without_a_date(status: ExpiryStatus) -> None:
    a = GpuTracker().assess(ev(probe(status=status)), T0, TH)
    assert (a.state, a.severity, a.expiry_status) == (S.LICENSED, Severity.OK, status)
    assert a.expiry_timestamp_seconds is None


def test_licensed_valid_expiry_then_expiring_then_expired() -> None:
    """A 24 h lease first seen at T0 that nobody renews."""
    tracker = GpuTracker()
    p = ev(probe(expiry=T0 + DAY))
    a = tracker.assess(p, T0, TH)
    assert a.state is S.LICENSED and a.lease_seconds == DAY
    assert tracker.assess(p, T0 + 0.49 * DAY, TH).state is S.LICENSED
    late = tracker.assess(p, T0 + 0.51 * DAY, TH)
    assert (late.state, late.severity) == (S.RENEWING_LATE, Severity.WARNING)
    expiring = tracker.assess(p, T0 + 0.86 * DAY, TH)  # < 15 % of the lease left
    assert (expiring.state, expiring.severity) == (S.EXPIRING, Severity.CRITICAL)
    assert "expires in" in expiring.reason
    expired = tracker.assess(p, T0 + DAY + 5, TH)
    assert (expired.state, expired.severity) == (S.EXPIRED, Severity.CRITICAL)


def test_regular_renewals_stay_licensed_and_record_the_renewal() -> None:
    tracker = GpuTracker()
    now, expiry = T0, T0 + DAY
    for _ in range(20):  # renew every 15 % of the lease, as FlexNet-style clients do
        a = tracker.assess(ev(probe(expiry=expiry)), now, TH)
        assert a.state is S.LICENSED
        now += 0.15 * DAY
        expiry = now + DAY
    a = tracker.assess(ev(probe(expiry=expiry)), now, TH)
    assert a.last_renewal == now


def test_expiring_never_fires_early_on_a_short_first_sight() -> None:
    """Started 23 h into a 24 h lease: the estimate is 1 h, so no instant false alarm."""
    tracker = GpuTracker()
    a = tracker.assess(ev(probe(expiry=T0 + 3600)), T0, TH)
    assert a.state is S.LICENSED


def test_unlicensed_grace_timeline() -> None:
    tracker = GpuTracker()
    p = ev(probe(licensed=False))
    steps = [(0, Severity.OK), (299, Severity.OK), (300, Severity.WARNING),
             (899, Severity.WARNING), (900, Severity.CRITICAL)]
    for offset, severity in steps:
        a = tracker.assess(p, T0 + offset, TH)
        assert (a.state, a.severity) == (S.UNLICENSED_GRACE, severity), offset
        assert a.unlicensed_since == T0
    inferred = tracker.assess(p, T0 + 1200, TH)  # no nvidia-smi answer: grace is over
    assert (inferred.state, inferred.restricted_inferred) == (S.RESTRICTED, True)
    licensed = tracker.assess(ev(probe()), T0 + 1300, TH)
    assert licensed.state is S.LICENSED and licensed.unlicensed_since is None


def test_restricted_from_nvidia_smi_needs_a_fresh_report() -> None:
    tracker = GpuTracker()
    smi = SmiLicence("NVIDIA Virtual Compute Server", "Unlicensed (Restricted)", False, True)
    stale = tracker.assess(ev(probe(licensed=False), smi=smi, smi_taken_wall=T0 - 60), T0, TH)
    assert stale.state is S.UNLICENSED_GRACE  # the report predates this unlicensed stretch
    fresh = tracker.assess(ev(probe(licensed=False), smi=smi, smi_taken_wall=T0 + 30), T0 + 30,
                           TH)
    assert (fresh.state, fresh.restricted_inferred) == (S.RESTRICTED, False)
    unrestricted = SmiLicence("x", "Unlicensed (Unrestricted)", False, False)
    a = GpuTracker().assess(ev(probe(licensed=False), smi=unrestricted, smi_taken_wall=T0),
                            T0, TH)
    assert a.state is S.UNLICENSED_GRACE


def test_lease_that_ran_out_reads_expired_until_restricted() -> None:
    tracker = GpuTracker()
    tracker.assess(ev(probe(expiry=T0 + 3600)), T0, TH)
    a = tracker.assess(ev(probe(licensed=False)), T0 + 3700, TH)
    assert (a.state, a.severity, a.unlicensed_since) == (S.EXPIRED, Severity.CRITICAL, T0 + 3700)
    assert tracker.assess(ev(probe(licensed=False)), T0 + 3700 + 1200, TH).state is S.RESTRICTED


def test_unconfigured() -> None:
    problem = Problem("no_server", "no ClientConfigToken (NLS) and no ServerAddress")
    a = GpuTracker().assess(ev(probe(licensed=False), conf_problems=(problem,)), T0, TH)
    assert (a.state, a.severity) == (S.UNCONFIGURED, Severity.WARNING)
    assert "ClientConfigToken" in a.reason
    harmless = Problem("typo_key", "x")
    b = GpuTracker().assess(ev(probe(licensed=False), conf_problems=(harmless,)), T0, TH)
    assert b.state is S.UNLICENSED_GRACE


def test_passthrough_vapps_fallback() -> None:
    p = probe(licensed=False, mode=VirtualizationMode.PASSTHROUGH)
    a = GpuTracker().assess(ev(p, feature_type=0), T0, TH)
    assert (a.state, a.product, a.driver_licensed) == (S.LICENSED,
                                                       "NVIDIA Virtual Applications", False)
    b = GpuTracker().assess(ev(p, feature_type=4), T0, TH)  # vCS wanted: really unlicensed
    assert b.state is S.UNLICENSED_GRACE


def report(unit: UnitState, files: int = 1, sync: bool | None = True,
           server: str = "", down_since: float | None = None) -> NodeReport:
    conf = GriddConf("/etc/nvidia/gridd.conf", True, {"ServerAddress": server})
    toks = tuple(TokenFile(f"t{i}.tok", 10, 0o744, T0) for i in range(files))
    problems = (Problem("empty", "no .tok"),) if not files else ()
    return NodeReport(unit, conf, TokenReport("/etc/nvidia/ClientConfigToken", toks, problems),
                      SyncState(sync), down_since=down_since)


def test_node_findings() -> None:
    up = UnitState("loaded", "active", "running", 5.0)
    assert node_findings(report(up), (), T0, TH) == ()
    down = UnitState("loaded", "failed", "failed")
    early = node_findings(report(down, down_since=T0 - 30), (), T0, TH)
    assert [(f.problem, f.severity) for f in early] == [(NodeProblem.GRIDD_DOWN,
                                                         Severity.WARNING)]
    late = node_findings(report(down, down_since=T0 - 60), (), T0, TH)
    assert late[0].severity is Severity.CRITICAL
    missing = node_findings(report(UnitState("not-found", "inactive")), (), T0, TH)
    assert missing[0].problem is NodeProblem.GRIDD_DOWN
    assert node_findings(report(UnitState(error="no systemd")), (), T0, TH) == ()
    tok = node_findings(report(up, files=0), (), T0, TH)
    assert [f.problem for f in tok] == [NodeProblem.TOKEN_PROBLEM]
    assert node_findings(report(up, files=0, server="192.0.2.7"), (), T0, TH) == ()
    clock = node_findings(report(up, sync=False), (Problem("bad_value", "x"),), T0, TH)
    assert {f.problem for f in clock} == {NodeProblem.CLOCK_UNSYNCED, NodeProblem.CONFIG_PROBLEM}


@pytest.mark.parametrize(("seconds", "text"), [(5, "5s"), (90, "1m30s"), (3720, "1h02m"),
                                               (90000, "1d1h"), (-3, "0s")])
def test_span(seconds: float, text: str) -> None:
    assert span(seconds) == text
