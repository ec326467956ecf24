"""Estimates of the controlled temperature that whole-degree readings do not kick. No I/O.

NVML reports the GPU temperature in whole degrees (``nvidia-smi --query-gpu=temperature.gpu
--format=csv,noheader`` prints ``75``), so a heatsink warming at 0.01 C/s shows as a
staircase: nothing for 100 s, then a step of 1 C in one sample. A derivative taken from two
samples sees 0 C/s, then 1 C/s for one tick: the fans jump by ``kd`` x 1 C/s and decay again,
a sawtooth of about 11 % peak to peak every 10 s on the simulated Dell (issue 12).

:class:`LineFit` fits a straight line by least squares to the samples of the last
``window_seconds`` and gives its value and slope at the newest sample: a 1 C step spreads
over the window (its slope contribution is at most about 1.5 C / window), a reading that
flickers between 75 and 76 reads as 75.5, and a real linear rise is followed without bias
(a line fitted to a line is that line).

:class:`Lowpass` is a first-order filter (the GPU power for the feed-forward: a GPU's power
moves by tens of watts from one second to the next under a steady job).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Fit:
    """The fitted line: ``value`` at the newest sample (C), ``slope`` (C per second), and
    ``mean``, its value at the centre of the window (the samples' mean, half a window late:
    what the P term and the integral use, a whole-degree flicker moves it by 1/n a sample)."""

    value: float
    slope: float
    mean: float


class LineFit:
    """Least-squares line over the samples of the last ``window_seconds`` (0: the newest
    sample and the two-point difference, no smoothing)."""

    def __init__(self, window_seconds: float) -> None:
        self.window_seconds = window_seconds
        self._samples: deque[tuple[float, float]] = deque()

    def reset(self, t: float, value: float) -> None:
        """Forget the history: a flat line through ``value`` (bumpless, no slope)."""
        self._samples.clear()
        self._samples.append((t, value))

    def add(self, t: float, value: float) -> Fit:
        """Add a sample at time ``t`` (seconds, increasing) and return the fit at ``t``."""
        samples = self._samples
        if samples and t <= samples[-1][0]:
            samples.pop()  # no time passed: the newer reading replaces the older
        samples.append((t, value))
        if self.window_seconds <= 0:
            while len(samples) > 2:
                samples.popleft()
        else:
            while len(samples) > 2 and t - samples[1][0] >= self.window_seconds:
                samples.popleft()
        return self.fit()

    def fit(self) -> Fit:
        samples = self._samples
        if not samples:
            return Fit(0.0, 0.0, 0.0)
        t_last, y_last = samples[-1]
        if len(samples) < 2:
            return Fit(y_last, 0.0, y_last)
        if self.window_seconds <= 0:
            (t0, y0), (t1, y1) = samples[0], samples[1]
            return Fit(y1, (y1 - y0) / (t1 - t0), y1)
        n = len(samples)
        mean_t = sum(t for t, _ in samples) / n
        mean_y = sum(y for _, y in samples) / n
        stt = sum((t - mean_t) ** 2 for t, _ in samples)
        sty = sum((t - mean_t) * (y - mean_y) for t, y in samples)
        slope = sty / stt if stt > 0 else 0.0
        return Fit(mean_y + slope * (t_last - mean_t), slope, mean_y)


class Lowpass:
    """A first-order low-pass filter with time constant ``seconds`` (0: no filtering)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.value: float | None = None

    def reset(self, value: float | None) -> None:
        self.value = value

    def add(self, value: float, dt: float) -> float:
        if self.value is None or self.seconds <= 0:
            self.value = value
        else:
            self.value += (value - self.value) * (max(dt, 0.0) / (self.seconds + max(dt, 0.0)))
        return self.value
