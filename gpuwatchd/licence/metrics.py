"""The licence metric catalogue and the renderers that fill it.

Spelling: British "licence" in every gpuwatchd name (as the ``licence:`` config section);
NVIDIA's API and dcgm-exporter say "license" (``DCGM_FI_DEV_VGPU_LICENSE_STATUS``, a 0/1 gauge
with no expiry). A series that does not apply is absent: no licence series for a GPU without
licensing, no expiry timestamp unless the expiry is a valid date, no gridd series on a node
where no GPU's licence is held by this OS (unless ``licence.enabled: true``).
"""

from __future__ import annotations

from gpuwatchd.licence.gridd import EVENT_KINDS, UNIT_LABELS
from gpuwatchd.licence.kinds import (
    REPORTED_STATES,
    ExpiryStatus,
    HostLicenceState,
    NodeProblem,
)
from gpuwatchd.licence.node import NodeReport
from gpuwatchd.licence.probe import GpuProbe
from gpuwatchd.licence.remediation import REASONS, SUPPRESSIONS, Remediator
from gpuwatchd.licence.state import Assessment, NodeFinding
from gpuwatchd.model import FamilyBuilder, Kind

CATALOGUE: dict[str, tuple[Kind, str]] = {
    "gpuwatchd_vgpu_virtualization_mode": (
        "gauge", "GPU virtualization mode (none, passthrough, vgpu, host_vgpu, host_vsga); "
                 "always 1."),
    "gpuwatchd_vgpu_licence_supported": (
        "gauge", "1 if the GPU has vGPU software licensing, else 0."),
    "gpuwatchd_vgpu_licence_state": (
        "gauge", "Licence state, one-hot: licensed, unlicensed_grace, restricted, unconfigured, "
                 "renewing_late, expiring, expired, unknown."),
    "gpuwatchd_vgpu_licence_info": ("gauge", "Licensed product and feature; always 1."),
    "gpuwatchd_vgpu_licence_expiry_timestamp_seconds": (
        "gauge", "When the licence lease expires (valid dates only)."),
    "gpuwatchd_vgpu_licence_expiry_status": (
        "gauge", "Expiry kind, one-hot: valid, permanent, not_applicable, not_available, invalid."),
    "gpuwatchd_vgpu_licence_unlicensed_since_timestamp_seconds": (
        "gauge", "Since when gpuwatchd has seen the GPU unlicensed (the grace period runs)."),
    "gpuwatchd_vgpu_licence_last_renewal_timestamp_seconds": (
        "gauge", "When gpuwatchd last saw the expiry move forward (a renewal or an acquisition)."),
    "gpuwatchd_vgpu_instance_info": ("gauge", "A vGPU instance on this host; always 1."),
    "gpuwatchd_vgpu_instance_licence_state": (
        "gauge", "Host view of a vGPU instance's licence, one-hot over NVML's states."),
    "gpuwatchd_vgpu_instance_licence_expiry_timestamp_seconds": (
        "gauge", "When a vGPU instance's licence expires (host view, valid dates only)."),
    "gpuwatchd_gridd_up": ("gauge", "1 if nvidia-gridd.service is active, 0 if not."),
    "gpuwatchd_gridd_unit_state": ("gauge", "nvidia-gridd.service state, one-hot."),
    "gpuwatchd_gridd_events_total": (
        "counter", "nvidia-gridd journal lines by kind, since gpuwatchd started following the "
                   "journal."),
    "gpuwatchd_licence_token_files": (
        "gauge", "Client configuration tokens (.tok) in the token folder."),
    "gpuwatchd_licence_token_mtime_timestamp_seconds": (
        "gauge", "Modification time of the newest token."),
    "gpuwatchd_licence_token_problem": ("gauge", "1 while the token folder has this problem."),
    "gpuwatchd_licence_config_problem": ("gauge", "1 while gridd.conf has this problem."),
    "gpuwatchd_licence_node_problem": ("gauge", "1 while this node-level licence problem holds."),
    "gpuwatchd_time_synchronized": ("gauge", "1 if the system clock is synchronised (NTP)."),
    "gpuwatchd_licence_clock_jumps_total": (
        "counter", "Wall-clock jumps seen between probes, by direction."),
    "gpuwatchd_licence_remediation_enabled": ("gauge", "1 if gpuwatchd may restart nvidia-gridd."),
    "gpuwatchd_licence_remediation_restarts_total": (
        "counter", "nvidia-gridd restarts by gpuwatchd, by reason."),
    "gpuwatchd_licence_remediation_suppressed_total": (
        "counter", "Restarts a trigger asked for but a guard refused, by guard."),
    "gpuwatchd_licence_smi_runs_total": ("counter", "nvidia-smi -q -x runs by result."),
}
TOKEN_PROBLEMS = ("missing", "unreadable", "empty", "several", "zero_length", "permissions",
                  "future_mtime", "old")
CONFIG_PROBLEMS = ("missing", "unreadable", "no_server", "feature_type_invalid",
                   "feature_type_mismatch", "bad_value", "typo_key", "inline_comment")


def gpu(b: FamilyBuilder, index: int, uuid: str, probe: GpuProbe, a: Assessment) -> None:
    """One GPU's series (all absent when licensing does not apply)."""
    lb: dict[str, str | int] = {"gpu": index, "uuid": uuid}
    if probe.mode is not None:
        b.add("gpuwatchd_vgpu_virtualization_mode", 1, **lb, mode=probe.mode.label)
    if probe.supported is not None and not (probe.mode is not None and probe.mode.is_host):
        b.add("gpuwatchd_vgpu_licence_supported", probe.supported, **lb)
    if a.state.value == "not_applicable":
        return
    for state in REPORTED_STATES:
        b.add("gpuwatchd_vgpu_licence_state", state is a.state, **lb, state=state.value)
    if a.feature is not None:
        b.add("gpuwatchd_vgpu_licence_info", 1, **lb, product=a.product, feature=a.feature.label)
    if a.expiry_status is not None:
        for status in ExpiryStatus:
            b.add("gpuwatchd_vgpu_licence_expiry_status",
                  status is a.expiry_status, **lb, status=status.label)
    if a.expiry_status is ExpiryStatus.VALID:
        b.add("gpuwatchd_vgpu_licence_expiry_timestamp_seconds", a.expiry_timestamp_seconds, **lb)
    b.add("gpuwatchd_vgpu_licence_unlicensed_since_timestamp_seconds", a.unlicensed_since, **lb)
    b.add("gpuwatchd_vgpu_licence_last_renewal_timestamp_seconds", a.last_renewal, **lb)


def instances(b: FamilyBuilder, index: int, uuid: str, probe: GpuProbe) -> None:
    """Host side: one set of series per vGPU instance."""
    for inst in probe.instances:
        lb: dict[str, str | int] = {"gpu": index, "uuid": uuid, "vgpu_uuid": inst.vgpu_uuid}
        b.add("gpuwatchd_vgpu_instance_info", 1, **lb, vm_id=inst.vm_id,
              vgpu_type=inst.vgpu_type)
        for state in HostLicenceState:
            b.add("gpuwatchd_vgpu_instance_licence_state", state is inst.state, **lb,
                  state=state.label)
        b.add("gpuwatchd_vgpu_instance_licence_expiry_timestamp_seconds",
              inst.expiry_timestamp_seconds, **lb)


def node(b: FamilyBuilder, report: NodeReport, findings: tuple[NodeFinding, ...],
         conf_kinds: set[str]) -> None:
    """gridd, token folder, gridd.conf, clock and node problems."""
    unit = report.unit
    b.add("gpuwatchd_gridd_up", unit.up)
    if unit.known:
        for label in UNIT_LABELS:
            b.add("gpuwatchd_gridd_unit_state", label == unit.label, state=label)
    if report.events is not None:
        for kind in EVENT_KINDS:
            b.add("gpuwatchd_gridd_events_total", report.events.get(kind, 0), kind=kind)
    tokens = report.tokens
    found = {p.kind for p in tokens.problems}
    if "missing" not in found:
        b.add("gpuwatchd_licence_token_files", len(tokens.files))
        b.add("gpuwatchd_licence_token_mtime_timestamp_seconds", tokens.newest_mtime)
    for kind in TOKEN_PROBLEMS:
        b.add("gpuwatchd_licence_token_problem", kind in found, problem=kind)
    for kind in CONFIG_PROBLEMS:
        b.add("gpuwatchd_licence_config_problem", kind in conf_kinds, problem=kind)
    held = {f.problem for f in findings}
    for problem in NodeProblem:
        b.add("gpuwatchd_licence_node_problem", problem in held, problem=problem.value)
    b.add("gpuwatchd_time_synchronized", report.sync.synchronized)
    for direction, count in sorted(report.clock_jumps.items()):
        b.add("gpuwatchd_licence_clock_jumps_total", count, direction=direction)


def remediation(b: FamilyBuilder, rem: Remediator) -> None:
    b.add("gpuwatchd_licence_remediation_enabled", rem.enabled)
    if rem.enabled:
        for reason in REASONS:
            b.add("gpuwatchd_licence_remediation_restarts_total",
                  rem.restarts[reason], reason=reason)
        for guard in SUPPRESSIONS:
            b.add("gpuwatchd_licence_remediation_suppressed_total",
                  rem.suppressed[guard], guard=guard)


def smi_runs(b: FamilyBuilder, runs: dict[str, int]) -> None:
    for result, count in sorted(runs.items()):
        b.add("gpuwatchd_licence_smi_runs_total", count, result=result)
