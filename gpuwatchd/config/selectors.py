"""Fan-zone input selectors (``fan_control.zones[].inputs``), parsed once when the config loads.

- ``gpu:*`` / ``gpu:0``: GPU die temperature (``nvidia-smi --query-gpu=temperature.gpu``);
- ``gpu-margin:*`` / ``gpu-margin:0``: the GPU's thermal margin (distance to its slowdown
  temperature, ``nvmlDeviceGetMarginTemperature``), seen as ``reference - margin`` so the PID
  reads it like a temperature: the reference is ``margin_reference_celsius`` or, by default,
  the GPU's own slowdown temperature;
- ``bmc:<bmc>:<sensor>``: a BMC temperature sensor by its name as gpuwatchd reports it
  (``gpuwatchd_temperature_celsius{bmc,sensor}``), e.g. ``bmc:idrac:Exhaust Temp``;
- ``hwmon:<chip>:<sensor>``: a Linux hwmon temperature by its chip label and sensor name as
  gpuwatchd reports them (``gpuwatchd_hwmon_temperature_celsius{chip,sensor}``,
  ``sensors``), e.g. ``hwmon:k10temp:Tctl`` for a Threadripper's die;
- ``file:<absolute path>``: the hottest temperature in a file another program writes, one
  number per line (``nvidia-smi --query-gpu=temperature.gpu --format=csv,noheader,nounits``
  of an ESXi host, fetched over SSH by a timer: docs/esxi.md); stale when the file is;
- ``ssh:<name>``: the hottest GPU of a ``remote_gpus`` entry, read over SSH by gpuwatchd itself
  (``ssh HOST nvidia-smi --query-gpu=index,uuid,temperature.gpu,power.draw --format=csv,
  noheader,nounits``, gpuwatchd.collectors.remote_gpus): an ESXi host's GPUs.

The config holds the typed selectors; evaluating them against a Snapshot is
gpuwatchd.control.selectors. ``text`` renders a selector back the way the config spells it
(the ``input`` label of ``gpuwatchd_fan_zone_input_celsius`` and the status table); nothing
parses it back.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class SelectorError(ValueError):
    """A selector that cannot be parsed; the message says what is expected."""


class GpuQuantity(enum.Enum):
    """What a GPU input reads; the value is the selector's head in the config."""

    TEMPERATURE = "gpu"
    MARGIN = "gpu-margin"


@dataclass(frozen=True)
class GpuSelector:
    """A GPU input; ``index`` None means every GPU (``*``)."""

    quantity: GpuQuantity = GpuQuantity.TEMPERATURE
    index: int | None = None

    @property
    def text(self) -> str:
        return f"{self.quantity.value}:{'*' if self.index is None else self.index}"


@dataclass(frozen=True)
class BmcSensorSelector:
    """A BMC temperature sensor, by the BMC's config name and the sensor's reported name."""

    bmc: str
    sensor: str

    @property
    def text(self) -> str:
        return f"bmc:{self.bmc}:{self.sensor}"


@dataclass(frozen=True)
class HwmonSensorSelector:
    """A hwmon temperature, by the chip's label (k10temp, nct6798) and the sensor's name."""

    chip: str
    sensor: str

    @property
    def text(self) -> str:
        return f"hwmon:{self.chip}:{self.sensor}"


@dataclass(frozen=True)
class FileSelector:
    """A temperature file (gpuwatchd.collectors.file_inputs reads it every tick)."""

    path: str

    @property
    def text(self) -> str:
        return f"file:{self.path}"


@dataclass(frozen=True)
class SshSelector:
    """A ``remote_gpus`` entry by its name: the hottest of that host's GPUs."""

    remote: str

    @property
    def text(self) -> str:
        return f"ssh:{self.remote}"


Selector = GpuSelector | BmcSensorSelector | HwmonSensorSelector | FileSelector | SshSelector
ALL_GPUS = GpuSelector(GpuQuantity.TEMPERATURE)  # the default input: every GPU's temperature


def parse_selector(text: str) -> Selector:
    """``gpu:*``, ``gpu:N``, ``gpu-margin:*``, ``gpu-margin:N``, ``bmc:<bmc>:<sensor>``,
    ``hwmon:<chip>:<sensor>``, ``file:<absolute path>`` or ``ssh:<remote_gpus name>``."""
    head, sep, rest = text.partition(":")
    if not sep or not rest:
        raise SelectorError(f"{text!r} is not a selector: expected gpu:*, gpu:N, "
                            "gpu-margin:*, gpu-margin:N, bmc:<bmc>:<sensor>, "
                            "hwmon:<chip>:<sensor>, file:<path> or ssh:<name>")
    quantity = next((q for q in GpuQuantity if q.value == head), None)
    if quantity is not None:
        if rest == "*":
            return GpuSelector(quantity)
        if rest.isdigit():
            return GpuSelector(quantity, int(rest))
        raise SelectorError(f"{text!r}: after {head}: give * or a GPU index (e.g. {head}:0)")
    if head == "bmc":
        bmc, sep2, sensor = rest.partition(":")
        if not sep2 or not bmc or not sensor:
            raise SelectorError(f"{text!r}: expected bmc:<bmc name>:<sensor name>, e.g. "
                                "bmc:idrac:Exhaust Temp")
        return BmcSensorSelector(bmc, sensor)
    if head == "hwmon":
        chip, sep2, sensor = rest.partition(":")
        if not sep2 or not chip or not sensor:
            raise SelectorError(f"{text!r}: expected hwmon:<chip>:<sensor name>, e.g. "
                                "hwmon:k10temp:Tctl")
        return HwmonSensorSelector(chip, sensor)
    if head == "file":
        if not rest.startswith("/") or "\x00" in rest:
            raise SelectorError(f"{text!r}: expected file:<absolute path>, e.g. "
                                "file:/run/gpuwatchd/esxi-gpu.csv")
        return FileSelector(rest)
    if head == "ssh":
        return SshSelector(rest)  # load checks that remote_gpus has an entry of that name
    raise SelectorError(f"{text!r}: unknown input kind {head!r} "
                        "(known: gpu, gpu-margin, bmc, hwmon, file, ssh)")
