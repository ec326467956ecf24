"""A simulated workstation mainboard in a sysfs tree: a CPU temperature and a case fan.

``gpuwatchd --demo workstation`` points ``Hardware.sysfs_root`` here, so the real hwmon
collector and the real hwmon fan driver read and write plain files, as on a Threadripper
board (``sensors``: ``k10temp`` Tctl, ``nct6798`` pwm2/fan2)::

    <root>/class/hwmon/hwmon0/{name=k10temp, temp1_label=Tctl, temp1_input}
    <root>/class/hwmon/hwmon1/{name=nct6798, pwm2, pwm2_enable, fan2_input}

:meth:`SimBoard.refresh` (called by gpuwatchd.sim.node on every plant access, at most every
half simulated second) reads the case fan's duty (``pwm2``; the chip's own mode ``5`` runs it
at 40 %), advances the CPU temperature (a 180 W load wave, cooled by the case fan: first order,
20 s) and writes ``temp1_input`` and ``fan2_input``. Assumed figures for plausible shapes.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CPU_IDLE_WATTS, CPU_PEAK_WATTS, CPU_PERIOD_SECONDS = 40.0, 180.0, 600.0
AMBIENT_CELSIUS, TAU_SECONDS = 26.0, 20.0
CHIP_AUTO_DUTY = 0.4  # pwm2_enable 5 (the chip's own curve): about 40 %
MAX_RPM = 1_800.0


class SimBoard:
    """The files of two hwmon chips under ``root`` and the CPU's thermal state."""

    def __init__(self, root: Path) -> None:
        self.root = root
        base = root / "class" / "hwmon"
        self._cpu, self._sio = base / "hwmon0", base / "hwmon1"
        for chip, name in ((self._cpu, "k10temp"), (self._sio, "nct6798")):
            chip.mkdir(parents=True, exist_ok=True)
            (chip / "name").write_text(f"{name}\n")
        (self._cpu / "temp1_label").write_text("Tctl\n")
        (self._sio / "pwm2").write_text("102\n")
        (self._sio / "pwm2_enable").write_text("5\n")
        self.cpu_celsius = AMBIENT_CELSIUS + 15.0
        self._at: float | None = None
        self._write()

    def cpu_watts(self, t: float) -> float:
        mid = (CPU_IDLE_WATTS + CPU_PEAK_WATTS) / 2
        amp = (CPU_PEAK_WATTS - CPU_IDLE_WATTS) / 2
        return mid - amp * math.cos(2 * math.pi * t / CPU_PERIOD_SECONDS)

    def duty(self) -> float:
        """The case fan's duty as the chip runs it now."""
        enable = _read(self._sio / "pwm2_enable")
        if enable == "1":
            pwm = _read(self._sio / "pwm2")
            return max(0, min(255, int(pwm))) / 255 if pwm.isdigit() else 1.0
        return 1.0 if enable == "0" else CHIP_AUTO_DUTY

    def refresh(self, t: float) -> None:
        if self._at is not None and t - self._at < 0.5:
            return
        duty = self.duty()
        if self._at is not None:
            resistance = 0.12 + 0.35 * (1.0 - duty)  # K/W, cooler with more airflow
            target = AMBIENT_CELSIUS + self.cpu_watts(t) * resistance
            self.cpu_celsius += (target - self.cpu_celsius) * (
                1 - math.exp(-(t - self._at) / TAU_SECONDS))
        self._at = t
        self._write(duty)

    def _write(self, duty: float = CHIP_AUTO_DUTY) -> None:
        _replace(self._cpu / "temp1_input", f"{round(self.cpu_celsius * 1000)}\n")
        _replace(self._sio / "fan2_input", f"{round(MAX_RPM * duty)}\n")


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _replace(path: Path, text: str) -> None:
    """Written whole (temp file + rename): a reader never sees half a number."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
