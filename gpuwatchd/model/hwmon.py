"""Mainboard readings (Linux hwmon sysfs) and file inputs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# -- mainboard telemetry (Linux hwmon sysfs: gpuwatchd.collectors.hwmon) -----------------------
# ``chip`` is the chip's ``name`` (nct6798, k10temp, amdgpu), with ``@<device>`` appended where
# two chips share a name (gpuwatchd.links.hwmon names chips for the collector and the fan driver
# alike); sensors are named by the chip's ``*_label`` or the file stem (temp1, fan2). The metric
# families are rendered from these readings (gpuwatchd.collectors.hwmon_metrics).


@dataclass(frozen=True, slots=True)
class FileTemperature:
    """A fan-control input read from a file another program writes (``file:<path>``,
    gpuwatchd.collectors.file_inputs): the hottest of its lines, e.g. the ESXi host's
    ``nvidia-smi --query-gpu=temperature.gpu --format=csv,noheader,nounits`` fetched over SSH.
    ``age_at_read_seconds``: how old the file was when read (its mtime), so a writer that
    stopped makes the input stale even while the file stays readable."""

    path: str
    celsius: float | None
    age_at_read_seconds: float
    error: str = ""


@dataclass(frozen=True, slots=True)
class RemoteGpu:
    """One line of a remote host's ``nvidia-smi --query-gpu=index,uuid,temperature.gpu,
    power.draw --format=csv,noheader,nounits`` (gpuwatchd.collectors.remote_gpus)."""

    index: int
    uuid: str
    temperature_celsius: float
    power_watts: float | None  # [N/A] on a GPU without a power sensor


@dataclass(frozen=True, slots=True)
class RemoteGpuSet:
    """Every GPU of one ``remote_gpus`` entry (``ssh:<name>``), read over SSH in one call.
    ``error`` set (output that is not nvidia-smi CSV): no GPU, the input has no value."""

    remote: str
    gpus: tuple[RemoteGpu, ...]
    error: str = ""


@dataclass(frozen=True, slots=True)
class HwmonChip:
    """One hwmon chip: its labels, and the reads that failed since the collector started."""

    chip: str
    name: str
    device: str = ""  # basename of the ``device`` link (nct6775.656, 0000:03:00.0)
    kind: Literal["gpu", "other"] = "other"  # gpu: amdgpu, nouveau, radeon, i915, xe
    read_errors: int = 0


@dataclass(frozen=True, slots=True)
class HwmonTemperature:
    """One hwmon temperature (``tempN_input``); usable as a fan-control input later."""

    chip: str
    name: str
    celsius: float | None
    max_celsius: float | None = None
    crit_celsius: float | None = None


@dataclass(frozen=True, slots=True)
class HwmonFan:
    """One hwmon fan tachometer (``fanN_input``); ``rpm`` None: the read failed."""

    chip: str
    name: str
    rpm: float | None
    min_rpm: float | None = None


@dataclass(frozen=True, slots=True)
class HwmonPwm:
    """One hwmon PWM output: duty as a ratio of 255 and its ``pwmN_enable`` mode."""

    chip: str
    name: str  # pwm1, pwm2 (the hwmon fan driver's channels are "<chip>/pwmN")
    ratio: float | None
    mode: int | None = None  # 0 full speed, 1 manual, 2+ the chip's automatic modes
