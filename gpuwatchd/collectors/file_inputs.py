"""Temperature files named by fan-zone inputs (``file:<path>``), read every tick.

For a GPU whose temperature only another host can read: an ESXi host's ``nvidia-smi`` (vGPU
guests see no GPU temperature; ESXi runs no Python). A systemd timer or loop on the controller
box writes the host's ``nvidia-smi --query-gpu=temperature.gpu --format=csv,noheader,nounits``
(one number per GPU per line) over SSH into a file (docs/esxi.md); this collector reads it,
bounded (gpuwatchd.config.files: a regular file, at most :data:`MAX_BYTES`), and publishes
the hottest line with the file's age (mtime), so a writer that hangs or dies makes the input
stale and the zone failsafe within ``stale_after_seconds``. A line that is not a number
(``[N/A]``, an error message) makes the whole file no reading: never half a set of GPUs.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

from gpuwatchd.clock import Clock
from gpuwatchd.collectors import Scheduled
from gpuwatchd.config import Config
from gpuwatchd.config.files import FileRefused, read_regular
from gpuwatchd.config.selectors import FileSelector
from gpuwatchd.hardware import Hardware
from gpuwatchd.model import Collected, FileTemperature

MAX_BYTES = 64 * 1024
PLAUSIBLE_CELSIUS = (-40.0, 150.0)


def parse(text: str) -> float | None:
    """The hottest of the file's lines (blank lines skipped); None for any other line."""
    values = []
    for line in text.splitlines():
        field = line.strip().split(",")[0].strip()
        if not field:
            continue
        try:
            value = float(field)
        except ValueError:
            return None
        if not math.isfinite(value) or not PLAUSIBLE_CELSIUS[0] <= value <= PLAUSIBLE_CELSIUS[1]:
            return None
        values.append(value)
    return max(values) if values else None


class FileInputCollector:
    """Reads every ``file:`` input of the fan zones once per tick."""

    name = "file_inputs"

    def __init__(self, paths: Sequence[str], clock: Clock) -> None:
        self._paths, self._clock = tuple(paths), clock

    def collect(self) -> Collected:
        return Collected(readings=tuple(self._read(p) for p in self._paths))

    def _read(self, path: str) -> FileTemperature:
        try:
            mtime = os.stat(path).st_mtime
            text = read_regular(path, MAX_BYTES).decode("utf-8", errors="replace")
        except FileRefused as exc:
            return FileTemperature(path, None, math.inf, exc.problem)
        except OSError as exc:
            return FileTemperature(path, None, math.inf, exc.strerror or "cannot read")
        age = max(0.0, self._clock.time() - mtime)
        value = parse(text)
        return FileTemperature(path, value, age,
                               "" if value is not None else "not one temperature per line")

    def close(self) -> None:
        """Nothing held open between ticks."""


def build(config: Config, hw: Hardware) -> Sequence[Scheduled]:
    """One collector for every ``file:`` input of the zones (none: no collector)."""
    paths = sorted({s.path for z in config.fan_control.zones for s in z.inputs
                    if isinstance(s, FileSelector)})
    if not paths:
        return []
    return [Scheduled(FileInputCollector(paths, hw.clock), config.interval_seconds,
                      min(1.0, config.interval_seconds))]
