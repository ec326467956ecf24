"""Which gridd.conf ``FeatureType`` values can work, per virtualization mode and vGPU series.

The values (gridd.conf.template, R470 .. R580 guest drivers)::

    0 => for unlicensed state
    1 => for NVIDIA vGPU (Optional, autodetected as per vGPU type)
    2 => for NVIDIA RTX Virtual Workstation
    4 => for NVIDIA Virtual Compute Server

NVIDIA's Virtual GPU Client Licensing User Guide (vGPU 15.0, table "NVIDIA vGPU Software
Licensed Products") says which product runs where: vApps on A-series vGPUs, pass-through and
bare metal; vPC on B-series vGPUs; vCS (today sold as NVIDIA AI Enterprise) on C-series vGPUs
and pass-through; vWS on Q-, C- and B-series vGPUs, pass-through and bare metal. A physical GPU
(pass-through, bare metal) takes 0 (vApps), 2 (vWS) or 4 (vCS); in a vGPU guest the driver picks
the edition from the vGPU type, so 1 always works there, and 2/4 work where the type runs that
product.

NOTE(field evidence): NVAIE / C-series guests set ``FeatureType=4`` in practice and are licensed
with it: "NVIDIA H100L-1-12C" on 580.105.08 (``echo "FeatureType=4" > /etc/nvidia/gridd.conf``,
then "License acquired successfully"), and an R510 KVM guest (Virtualization Mode VGPU, product
"NVIDIA Virtual Compute Server") with the template's FeatureType=4 (shared/reference
gridd-licence.md (c); community guides in the GitHub code index). So 4 in a vGPU guest is not
a mismatch: only a value that cannot work (4 on a Q-series vGPU, 1 on a physical GPU, 0 in a
vGPU guest) is one.

Command-line equivalent: ``nvidia-smi --query-gpu=name,virtualization_mode --format=csv`` (the
vGPU type is the GPU's name in the guest, e.g. "GRID A100-4C" or "NVIDIA A100-4C").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gpuwatchd.licence.kinds import VirtualizationMode

FEATURE_TYPES = {0: "unlicensed", 1: "NVIDIA vGPU", 2: "NVIDIA RTX Virtual Workstation",
                 4: "NVIDIA Virtual Compute Server"}

# vGPU type names end in <framebuffer GB><series>, MIG-backed ones in <slices>-<GB><series>:
# "GRID P40-24Q", "GRID A100-4C", "NVIDIA A100-3-20C", "NVIDIA H100L-1-12C", "NVIDIA A16-2B",
# "NVIDIA A40-2A", "NVIDIA RTXA6000-24Q".
_SERIES = re.compile(r"-(?:\d+-)?\d+([ABCQ])\s*$")

# FeatureType values a vGPU of each series can be licensed with (see the module docstring).
VGPU_ACCEPTS: dict[str, frozenset[int]] = {
    "A": frozenset({1}),  # vApps: autodetected only
    "B": frozenset({1, 2}),  # vPC, or vWS
    "C": frozenset({1, 2, 4}),  # vCS / NVAIE, or vWS
    "Q": frozenset({1, 2}),  # vWS
}
UNKNOWN_SERIES_ACCEPTS = frozenset({1, 2, 4})  # the type name did not say: do not guess
PHYSICAL_ACCEPTS: dict[VirtualizationMode, frozenset[int]] = {
    VirtualizationMode.PASSTHROUGH: frozenset({0, 2, 4}),  # vApps, vWS, vCS
    VirtualizationMode.NONE: frozenset({0, 2}),  # bare metal: vApps, vWS (no vCS)
}
_SERIES_WORDS = {"A": "an A-series (vApps)", "B": "a B-series (vPC)",
                 "C": "a C-series (vCS / NVIDIA AI Enterprise)", "Q": "a Q-series (vWS)"}


def vgpu_series(name: str) -> str:
    """``"GRID A100-4C"`` -> ``"C"``; "" when the name is not a vGPU type name."""
    match = _SERIES.search(name)
    return match.group(1) if match else ""


@dataclass(frozen=True)
class Verdict:
    """Whether a FeatureType can work here; ``why`` says what to use instead when it cannot."""

    works: bool
    why: str = ""


def judge(value: int, mode: VirtualizationMode | None, vgpu_type: str = "") -> Verdict:
    """Can ``FeatureType=value`` work on a GPU in ``mode`` (``vgpu_type``: the guest's GPU
    name)? Unknown modes and hypervisor hosts accept every documented value."""
    if mode is VirtualizationMode.VGPU:
        series = vgpu_series(vgpu_type)
        accepted = VGPU_ACCEPTS.get(series, UNKNOWN_SERIES_ACCEPTS)
        if value in accepted:
            return Verdict(True)
        if value == 0:
            return Verdict(False, "0 asks for no licence, and a vGPU needs one; use 1 (the "
                                  "product follows the vGPU type)")
        what = f"{_SERIES_WORDS[series]} vGPU ({vgpu_type.strip()})" if series else "a vGPU"
        return Verdict(False, f"{FEATURE_TYPES.get(value, '?')} does not run on {what}; "
                              "use 1 (the product follows the vGPU type)")
    physical = PHYSICAL_ACCEPTS.get(mode) if mode is not None else None
    if physical is None or value in physical:
        return Verdict(True)
    where = "a pass-through GPU" if mode is VirtualizationMode.PASSTHROUGH else "bare metal"
    uses = " or ".join(f"{v} ({FEATURE_TYPES[v]})" for v in sorted(physical))
    return Verdict(False, f"{value} ({FEATURE_TYPES.get(value, '?')}) does not work on {where}; "
                          f"use {uses}")
