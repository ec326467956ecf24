"""The ``nvml`` section: NVML as the GPU collector last saw it (up, driver version, error).

``null`` on a node with no GPU collector. Health: NVML down while GPUs were seen.
"""

from __future__ import annotations

from gpuwatchd.model import GpuReading, NvmlReading, Snapshot
from gpuwatchd.status.sections import Json, Section
from gpuwatchd.status.text import Style


def build(snapshot: Snapshot, now_mono: float) -> Section:
    nvml = snapshot.readings(NvmlReading)
    if not nvml:
        return Section(None)
    first = nvml[0]
    data = {"up": first.up, "driver_version": first.driver_version, "error": first.error}
    # No GPU ever seen and no NVML is a node without GPUs (gpus.enabled: auto), not a fault;
    # with gpus.enabled: true the collector itself fails and says so.
    if not first.up and snapshot.readings(GpuReading):
        return Section(data, (f"NVML down: {first.error or 'not initialised'}",))
    return Section(data)


def render(nvml: Json, style: Style) -> list[str]:
    if nvml["up"]:
        return [f"NVML    up, driver {nvml['driver_version'] or 'unknown'}"]
    return [f"NVML    {style.paint('down', 'bad')}  {nvml['error']}".rstrip()]
