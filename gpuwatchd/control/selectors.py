"""Zone inputs: the config's typed selectors (gpuwatchd.config.selectors) evaluated on a Snapshot.

Resolution is pure: each input gets its value, the age of the data it came from, and whether
its GPU is lost. A zone aggregates its inputs by max (see gpuwatchd.control.zones). A ``*``
selector gives one input per GPU, each named by a concrete selector (``gpu:0``, ``gpu:1``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypeVar

from gpuwatchd.config.selectors import (
    BmcSensorSelector,
    FileSelector,
    GpuQuantity,
    GpuSelector,
    HwmonSensorSelector,
    Selector,
    SshSelector,
)
from gpuwatchd.model import (
    ChassisTemperature,
    FileTemperature,
    GpuReading,
    HwmonTemperature,
    RemoteGpuSet,
    Snapshot,
)

T = TypeVar("T")


@dataclass(frozen=True)
class InputValue:
    """One resolved input: a temperature-like value in degrees Celsius (None: no reading)."""

    source: Selector  # concrete: a GPU input names its GPU's index
    celsius: float | None
    age_seconds: float  # since the data was read (inf: never)
    lost: bool = False  # the GPU is lost (NVML GPU_IS_LOST, no longer enumerated)
    error: str = ""

    @property
    def id(self) -> str:
        """The input as the config spells it (the ``input`` label and the status table):
        ``gpu:0``, ``gpu-margin:1``, ``bmc:idrac:Exhaust Temp``, ``hwmon:k10temp:Tctl``."""
        return self.source.text


def resolve(selectors: tuple[Selector, ...], snapshot: Snapshot, now_mono: float,
            margin_reference_celsius: float | None = None) -> list[InputValue]:
    """Every input the selectors name in ``snapshot``, each once, in selector order.

    A selector naming one GPU or one sensor that is not in the Snapshot still gives an input
    (no value, infinite age), so a vanished input is noticed rather than silently dropped.
    """
    out: dict[Selector, InputValue] = {}
    for sel in selectors:
        for value in _resolve_one(sel, snapshot, now_mono, margin_reference_celsius):
            out.setdefault(value.source, value)
    return list(out.values())


def _resolve_one(sel: Selector, snapshot: Snapshot, now_mono: float,
                 reference: float | None) -> list[InputValue]:
    if isinstance(sel, BmcSensorSelector):
        for age, temp in _aged(snapshot, ChassisTemperature, now_mono):
            if temp.bmc == sel.bmc and temp.name == sel.sensor:
                return [InputValue(sel, temp.celsius, age,
                                   error="" if temp.celsius is not None else "no reading")]
        return [InputValue(sel, None, math.inf, error="not reported by the BMC")]
    if isinstance(sel, HwmonSensorSelector):
        for age, hw in _aged(snapshot, HwmonTemperature, now_mono):
            if hw.chip == sel.chip and hw.name == sel.sensor:
                return [InputValue(sel, hw.celsius, age,
                                   error="" if hw.celsius is not None else "no reading")]
        return [InputValue(sel, None, math.inf, error="not reported by hwmon")]
    if isinstance(sel, FileSelector):
        for age, f in _aged(snapshot, FileTemperature, now_mono):
            if f.path == sel.path:  # as old as the file was when read, plus since then
                return [InputValue(sel, f.celsius, age + f.age_at_read_seconds,
                                   error=f.error or ("" if f.celsius is not None
                                                     else "no reading"))]
        return [InputValue(sel, None, math.inf, error="file not read")]
    if isinstance(sel, SshSelector):
        return [_remote_value(sel, snapshot, now_mono)]
    found = []
    for age, gpu in _aged(snapshot, GpuReading, now_mono):
        if sel.index is not None and gpu.index != sel.index:
            continue
        found.append(_gpu_value(sel.quantity, gpu, age, reference))
    if not found and sel.index is not None:
        found.append(InputValue(sel, None, math.inf, lost=False, error="GPU not reported"))
    return found


def _remote_value(sel: SshSelector, snapshot: Snapshot, now_mono: float) -> InputValue:
    """The hottest GPU of the remote host's last good read (its age: since that read)."""
    for age, remote in _aged(snapshot, RemoteGpuSet, now_mono):
        if remote.remote == sel.remote:
            if remote.error or not remote.gpus:
                return InputValue(sel, None, age, error=remote.error or "no GPU")
            return InputValue(sel, max(g.temperature_celsius for g in remote.gpus), age)
    return InputValue(sel, None, math.inf, error="not read over SSH yet")


def _gpu_value(quantity: GpuQuantity, gpu: GpuReading, age: float,
               reference: float | None) -> InputValue:
    source = GpuSelector(quantity, gpu.index)
    if not gpu.up:
        return InputValue(source, None, age, lost=True, error=gpu.error or "GPU lost")
    if quantity is GpuQuantity.TEMPERATURE:
        value = gpu.temperature_celsius
        age += gpu.temperature_held_seconds  # a held value is as old as its reading
    else:
        ref = reference if reference is not None else gpu.slowdown_celsius
        value = None if ref is None or gpu.margin_celsius is None else ref - gpu.margin_celsius
    return InputValue(source, value, age, error="" if value is not None else "no reading")


def _aged(snapshot: Snapshot, kind: type[T], now_mono: float) -> list[tuple[float, T]]:
    """Readings of ``kind`` with the age of the collect they came from."""
    out: list[tuple[float, T]] = []
    for res in snapshot.results:
        age = res.age_seconds(now_mono)
        out.extend((age, r) for r in res.collected.readings if isinstance(r, kind))
    return out
