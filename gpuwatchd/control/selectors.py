"""Zone inputs: selectors parsed from the config, resolved against a Snapshot.

Selectors (``fan_control.zones[].inputs``):

- ``gpu:*`` / ``gpu:0``: GPU die temperature (``nvidia-smi --query-gpu=temperature.gpu``);
- ``gpu-margin:*`` / ``gpu-margin:0``: the GPU's thermal margin (distance to its slowdown
  temperature, ``nvmlDeviceGetMarginTemperature``), seen as ``reference - margin`` so the PID
  reads it like a temperature: the reference is ``margin_reference_celsius`` or, by default,
  the GPU's own slowdown temperature;
- ``bmc:<bmc>:<sensor>``: a BMC temperature sensor by its name as gpuwatchd reports it
  (``gpuwatchd_temperature_celsius{bmc,sensor}``), e.g. ``bmc:idrac:Exhaust Temp``.

Resolution is pure: each input gets its value, the age of the data it came from, and whether
its GPU is lost. A zone aggregates its inputs by max (see gpuwatchd.control.zones).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, TypeVar

from gpuwatchd.model import ChassisTemperature, GpuReading, Snapshot

Kind = Literal["gpu", "gpu-margin", "bmc"]
T = TypeVar("T")


class SelectorError(ValueError):
    """A selector that cannot be parsed; the message says what is expected."""


@dataclass(frozen=True)
class Selector:
    """One parsed selector; ``index`` None means every GPU (``*``)."""

    text: str
    kind: Kind
    index: int | None = None
    bmc: str | None = None
    sensor: str | None = None


@dataclass(frozen=True)
class InputValue:
    """One resolved input: a temperature-like value in degrees Celsius (None: no reading)."""

    id: str  # "gpu:0", "gpu-margin:1", "bmc:idrac:Exhaust Temp"
    celsius: float | None
    age_seconds: float  # since the data was read (inf: never)
    lost: bool = False  # the GPU is lost (NVML GPU_IS_LOST, no longer enumerated)
    error: str = ""


def parse_selector(text: str) -> Selector:
    """``gpu:*``, ``gpu:N``, ``gpu-margin:*``, ``gpu-margin:N`` or ``bmc:<bmc>:<sensor>``."""
    head, sep, rest = text.partition(":")
    if not sep or not rest:
        raise SelectorError(f"{text!r} is not a selector: expected gpu:*, gpu:N, "
                            "gpu-margin:*, gpu-margin:N or bmc:<bmc>:<sensor>")
    if head in ("gpu", "gpu-margin"):
        kind: Kind = "gpu" if head == "gpu" else "gpu-margin"
        if rest == "*":
            return Selector(text, kind)
        if rest.isdigit():
            return Selector(text, kind, index=int(rest))
        raise SelectorError(f"{text!r}: after {head}: give * or a GPU index (e.g. {head}:0)")
    if head == "bmc":
        bmc, sep2, sensor = rest.partition(":")
        if not sep2 or not bmc or not sensor:
            raise SelectorError(f"{text!r}: expected bmc:<bmc name>:<sensor name>, e.g. "
                                "bmc:idrac:Exhaust Temp")
        return Selector(text, "bmc", bmc=bmc, sensor=sensor)
    raise SelectorError(f"{text!r}: unknown input kind {head!r} (known: gpu, gpu-margin, bmc)")


def resolve(selectors: tuple[Selector, ...], snapshot: Snapshot, now_mono: float,
            margin_reference_celsius: float | None = None) -> list[InputValue]:
    """Every input the selectors name in ``snapshot``, each once, in selector order.

    A selector naming one GPU or one sensor that is not in the Snapshot still gives an input
    (no value, infinite age), so a vanished input is noticed rather than silently dropped.
    """
    out: dict[str, InputValue] = {}
    for sel in selectors:
        for value in _resolve_one(sel, snapshot, now_mono, margin_reference_celsius):
            out.setdefault(value.id, value)
    return list(out.values())


def _resolve_one(sel: Selector, snapshot: Snapshot, now_mono: float,
                 reference: float | None) -> list[InputValue]:
    if sel.kind == "bmc":
        for age, temp in _aged(snapshot, ChassisTemperature, now_mono):
            if temp.bmc == sel.bmc and temp.name == sel.sensor:
                return [InputValue(sel.text, temp.celsius, age,
                                   error="" if temp.celsius is not None else "no reading")]
        return [InputValue(sel.text, None, math.inf, error="not reported by the BMC")]
    found = []
    for age, gpu in _aged(snapshot, GpuReading, now_mono):
        if sel.index is not None and gpu.index != sel.index:
            continue
        found.append(_gpu_value(sel.kind, gpu, age, reference))
    if not found and sel.index is not None:
        found.append(InputValue(f"{sel.kind}:{sel.index}", None, math.inf, lost=False,
                                error="GPU not reported"))
    return found


def _gpu_value(kind: Kind, gpu: GpuReading, age: float,
               reference: float | None) -> InputValue:
    ident = f"{kind}:{gpu.index}"
    if not gpu.up:
        return InputValue(ident, None, age, lost=True, error=gpu.error or "GPU lost")
    if kind == "gpu":
        value = gpu.temperature_celsius
    else:
        ref = reference if reference is not None else gpu.slowdown_celsius
        value = None if ref is None or gpu.margin_celsius is None else ref - gpu.margin_celsius
    return InputValue(ident, value, age, error="" if value is not None else "no reading")


def _aged(snapshot: Snapshot, kind: type[T], now_mono: float) -> list[tuple[float, T]]:
    """Readings of ``kind`` with the age of the collect they came from."""
    out: list[tuple[float, T]] = []
    for res in snapshot.results:
        age = res.age_seconds(now_mono)
        out.extend((age, r) for r in res.collected.readings if isinstance(r, kind))
    return out
