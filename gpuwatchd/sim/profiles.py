"""Power demand profiles for the simulated GPUs: seconds of simulated time -> demanded watts.

A profile is what the workload *asks* for; the plant caps it at the GPU's power limit and cuts
it further while the GPU is in thermal slowdown. Profiles are small frozen dataclasses (so they
compare, print and pickle), deterministic, and pure: the same time always gives the same watts.

Tesla P40 anchors (nvidia-smi -q capture, driver 535; NVIDIA datasheet): idle about 50 W
(52.5 W captured in P0), board power limit 250 W (min 125 W).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

Profile = Callable[[float], float]

IDLE_WATTS = 50.0
FULL_WATTS = 250.0


@dataclass(frozen=True)
class Constant:
    """The same demand for ever (``idle``, ``full``)."""

    watts: float

    def __call__(self, t: float) -> float:
        return self.watts


@dataclass(frozen=True)
class Step:
    """``before_watts`` until ``at_seconds``, then ``after_watts`` (a job starting)."""

    at_seconds: float
    before_watts: float = IDLE_WATTS
    after_watts: float = FULL_WATTS

    def __call__(self, t: float) -> float:
        return self.after_watts if t >= self.at_seconds else self.before_watts


@dataclass(frozen=True)
class Sine:
    """A slowly varying load: ``mean ± amplitude`` with the given period."""

    mean_watts: float
    amplitude_watts: float
    period_seconds: float
    phase_seconds: float = 0.0

    def __call__(self, t: float) -> float:
        angle = 2.0 * math.pi * (t + self.phase_seconds) / self.period_seconds
        return self.mean_watts + self.amplitude_watts * math.sin(angle)


@dataclass(frozen=True)
class Schedule:
    """Segments ``(duration_seconds, profile)`` played in order; each sees its own local time.

    With ``repeat`` the whole schedule loops; otherwise the last segment goes on for ever.
    ``offset_seconds`` shifts the start (so two GPUs on the same schedule are out of phase).
    """

    segments: tuple[tuple[float, Profile], ...]
    repeat: bool = True
    offset_seconds: float = 0.0

    def __call__(self, t: float) -> float:
        t = max(0.0, t + self.offset_seconds)
        total = sum(duration for duration, _ in self.segments)
        if self.repeat and total > 0:
            t = math.fmod(t, total)
        start = 0.0
        for duration, profile in self.segments:
            if t < start + duration:
                return profile(t - start)
            start += duration
        duration, profile = self.segments[-1]
        return profile(t - (start - duration))


def demo(offset_seconds: float = 0.0) -> Schedule:
    """The ``gpuwatchd --demo`` load: idle, a step to 250 W, sustained, then a slow wave.

    One cycle is 20 minutes: 2 min idle at 50 W, 6 min at 250 W (long enough for the heatsink,
    time constant 1-2 min, to settle), 8 min of a 160 ± 90 W wave with a 4-minute period
    (demand reaching 250 W), then 4 min at 125 W (a half-loaded card).
    """
    return Schedule(
        segments=(
            (120.0, Constant(IDLE_WATTS)),
            (360.0, Constant(FULL_WATTS)),
            (480.0, Sine(160.0, 90.0, 240.0)),
            (240.0, Constant(125.0)),
        ),
        repeat=True,
        offset_seconds=offset_seconds,
    )


NAMES = ("demo", "idle", "full", "step")


def by_name(name: str, gpu_index: int = 0) -> Profile:
    """A named profile for one GPU; on ``demo`` each further GPU runs 5 minutes ahead."""
    if name == "demo":
        return demo(offset_seconds=300.0 * gpu_index)
    if name == "idle":
        return Constant(IDLE_WATTS)
    if name == "full":
        return Constant(FULL_WATTS)
    if name == "step":
        return Step(at_seconds=60.0)
    raise ValueError(f"unknown load profile {name!r} (known: {', '.join(NAMES)})")


def for_gpus(profile: str | Profile | Sequence[Profile], gpu_count: int) -> list[Profile]:
    """One profile per GPU from a name, a single profile (shared) or a list of them."""
    if isinstance(profile, str):
        return [by_name(profile, i) for i in range(gpu_count)]
    if callable(profile):
        return [profile] * gpu_count
    profiles = list(profile)
    if len(profiles) != gpu_count:
        raise ValueError(f"{len(profiles)} load profiles for {gpu_count} GPUs")
    return profiles
