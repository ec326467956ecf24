"""Metric families as plain data (Sample, Family, FamilyBuilder) and what a collect returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeVar

Labels = tuple[tuple[str, str], ...]
Kind = Literal["gauge", "counter"]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Sample:
    """One series of a family: its labels (ordered pairs) and value."""

    labels: Labels
    value: float


@dataclass(frozen=True, slots=True)
class Family:
    """A metric family as plain data. Counter names end in ``_total``."""

    name: str
    kind: Kind
    help: str
    samples: tuple[Sample, ...]


class FamilyBuilder:
    """Accumulates samples per metric name, then freezes them into :class:`Family` objects.

    Metric names, types and help texts are declared once in a catalogue (a dict of name ->
    (kind, help)) so a typo in a collector fails at the first sample, not in a dashboard.
    """

    def __init__(self, catalogue: dict[str, tuple[Kind, str]]) -> None:
        self._catalogue = catalogue
        self._samples: dict[str, list[Sample]] = {}

    def add(self, name: str, value: float | int | bool | None, /, **labels: str | int) -> None:
        """Add one sample; ``None`` means unsupported and adds nothing (absent, never 0)."""
        if value is None:
            return
        if name not in self._catalogue:
            raise KeyError(f"metric {name!r} is not in the catalogue")
        pairs = tuple((key, str(val)) for key, val in labels.items())
        self._samples.setdefault(name, []).append(Sample(pairs, float(value)))

    def extend(self, other: FamilyBuilder) -> None:
        """Append every sample of ``other`` (e.g. cached slow-tier readings)."""
        for name, samples in other._samples.items():
            self._samples.setdefault(name, []).extend(samples)

    def build(self) -> tuple[Family, ...]:
        """The families in catalogue order; names with no sample are left out."""
        out = []
        for name, (kind, help_text) in self._catalogue.items():
            samples = self._samples.get(name)
            if samples:
                out.append(Family(name, kind, help_text, tuple(samples)))
        return tuple(out)


@dataclass(frozen=True, slots=True)
class Collected:
    """What one collect() returns: typed readings and their metric families."""

    readings: tuple[object, ...] = ()
    families: tuple[Family, ...] = ()
