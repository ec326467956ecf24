"""vGPU licence readings (guest and host side)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LicenceReading:
    """One GPU's vGPU software licence as the licence collector judged it (guest side).

    ``state`` is a :class:`gpuwatchd.licence.kinds.LicenceState` value (``licensed``,
    ``unlicensed_grace``, ...), ``severity`` ``ok``/``warning``/``critical``; timestamps are
    epoch seconds, ``None`` where they do not apply.
    """

    index: int
    uuid: str
    mode: str
    state: str
    severity: str
    product: str = ""
    feature: str = ""
    expiry_status: str = ""
    expiry_timestamp_seconds: float | None = None
    unlicensed_since_timestamp_seconds: float | None = None
    last_renewal_timestamp_seconds: float | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class VgpuInstanceLicenceReading:
    """One vGPU instance's licence on a host (``nvidia-smi vgpu -q``: License Status)."""

    gpu_index: int
    gpu_uuid: str
    vgpu_uuid: str
    vm_id: str
    vgpu_type: str
    state: str  # a HostLicenceState label: licensed, unlicensed_restricted, ...
    expiry_timestamp_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class LicenceNodeReading:
    """Node-level licence facts: nvidia-gridd, its config and token, the clock."""

    applicable: bool  # some GPU's licence is held by this OS
    gridd_state: str = "unknown"  # active, inactive, failed, not_found, unknown, ...
    token_summary: str = ""  # "1 token (0744)", "2 tokens", "no token"
    problems: tuple[str, ...] = ()  # NodeProblem values
    severity: str = "ok"
    messages: tuple[str, ...] = ()
    time_synchronized: bool | None = None
    last_event: str = ""  # latest gridd journal event kind
    remediation_enabled: bool = False
    remediation_restarts: int = 0
