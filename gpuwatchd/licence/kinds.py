"""The licence watch's own enums and NVIDIA's text mappings.

nvidia-ml-py defines ``NVML_GRID_LICENSE_EXPIRY_*`` with trailing commas, so each constant is a
1-tuple such as ``(2,)`` and ``status == pynvml.NVML_GRID_LICENSE_EXPIRY_VALID`` is always
False (checked in nvidia-ml-py 11.495.46 .. 13.615.71). Every value the probe reads is therefore
converted into one of the enums below, whose numbers come from ``nvml.h``.
"""

from __future__ import annotations

import enum


class VirtualizationMode(enum.IntEnum):
    """``nvmlGpuVirtualizationMode_t`` (``nvidia-smi -q``: "GPU Virtualization Mode")."""

    NONE = 0  # bare metal
    PASSTHROUGH = 1
    VGPU = 2  # a vGPU inside a guest VM
    HOST_VGPU = 3  # the hypervisor side of vGPU
    HOST_VSGA = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @property
    def is_guest(self) -> bool:
        """A GPU whose licence is held by this OS (nvidia-gridd runs here)."""
        return self in (VirtualizationMode.VGPU, VirtualizationMode.PASSTHROUGH)

    @property
    def is_host(self) -> bool:
        return self in (VirtualizationMode.HOST_VGPU, VirtualizationMode.HOST_VSGA)


class FeatureCode(enum.IntEnum):
    """``NVML_GRID_LICENSE_FEATURE_CODE_*`` (VGAMEDEV 5 exists in nvidia-ml-py 13.615 only)."""

    UNKNOWN = 0
    VGPU = 1
    NVIDIA_RTX = 2  # formerly VWORKSTATION
    GAMING = 3
    COMPUTE = 4
    VGAMEDEV = 5

    @property
    def label(self) -> str:
        return self.name.lower()


def feature_code(value: int) -> FeatureCode:
    """A feature code from the driver; codes newer than this table read as UNKNOWN."""
    try:
        return FeatureCode(int(value))
    except ValueError:
        return FeatureCode.UNKNOWN


class ExpiryStatus(enum.IntEnum):
    """``NVML_GRID_LICENSE_EXPIRY_*`` as real integers (see the module docstring)."""

    NOT_AVAILABLE = 0
    INVALID = 1  # nvidia-smi prints "ERR!"
    VALID = 2
    NOT_APPLICABLE = 3  # "N/A": cloud-bundled licences
    PERMANENT = 4

    @property
    def label(self) -> str:
        return self.name.lower()


def expiry_status(value: object) -> ExpiryStatus:
    """Convert a raw status (an int, or a pynvml 1-tuple constant) into :class:`ExpiryStatus`."""
    if isinstance(value, tuple):
        value = value[0] if value else 0
    try:
        return ExpiryStatus(int(value))  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return ExpiryStatus.INVALID


class HostLicenceState(enum.IntEnum):
    """``NVML_GRID_LICENSE_STATE_*``: host side only, per vGPU instance."""

    UNKNOWN = 0
    UNINITIALIZED = 1
    UNLICENSED_UNRESTRICTED = 2
    UNLICENSED_RESTRICTED = 3
    UNLICENSED = 4
    LICENSED = 5

    @property
    def label(self) -> str:
        return self.name.lower()

    @property
    def text(self) -> str:
        """DCGM's wording (``DcgmVgpu.cpp``), copied exactly."""
        return _HOST_TEXT.get(self, "Unknown")


_HOST_TEXT = {
    HostLicenceState.UNLICENSED_UNRESTRICTED: "Unlicensed (Unrestricted)",
    HostLicenceState.UNLICENSED_RESTRICTED: "Unlicensed (Restricted)",
    HostLicenceState.UNINITIALIZED: "Unlicensed",
    HostLicenceState.UNLICENSED: "Unlicensed",
    HostLicenceState.LICENSED: "Licensed",
}


def host_state(value: int) -> HostLicenceState:
    try:
        return HostLicenceState(int(value))
    except ValueError:
        return HostLicenceState.UNKNOWN


class LicenceState(enum.Enum):
    """The licence watch's verdict for one GPU (guest side)."""

    NOT_APPLICABLE = "not_applicable"  # no licensing on this GPU: its series are absent
    UNKNOWN = "unknown"  # the probe failed
    UNCONFIGURED = "unconfigured"  # unlicensed, and the node lacks a token/server or FeatureType
    UNLICENSED_GRACE = "unlicensed_grace"  # unlicensed, still unrestricted (the 20-minute grace)
    RESTRICTED = "restricted"  # unlicensed and throttled
    LICENSED = "licensed"
    RENEWING_LATE = "renewing_late"  # licensed, but the expiry stopped moving forward
    EXPIRING = "expiring"  # licensed, little time left
    EXPIRED = "expired"  # the lease ran out


REPORTED_STATES = tuple(s for s in LicenceState if s is not LicenceState.NOT_APPLICABLE)
"""The states of the one-hot series (not_applicable has no series at all)."""


class Severity(enum.IntEnum):
    """How bad a state is, for ``gpuwatchctl status`` and its exit code."""

    OK = 0
    WARNING = 1
    CRITICAL = 2

    @property
    def label(self) -> str:
        return self.name.lower()


class NodeProblem(enum.Enum):
    """Node-level conditions that affect every GPU's licence."""

    GRIDD_DOWN = "gridd_down"
    TOKEN_PROBLEM = "token_problem"  # noqa: S105 - a problem name
    CONFIG_PROBLEM = "config_problem"
    CLOCK_UNSYNCED = "clock_unsynced"


VAPPS_PRODUCT = "NVIDIA Virtual Applications"  # what a passthrough GPU falls back to (example.py)
