"""Mainboard fans, temperatures and PWM outputs from Linux hwmon sysfs (workstations).

Reads every chip under ``<sysfs_root>/class/hwmon/hwmon*/`` (the root is injected from
:attr:`gpuwatchd.hardware.Hardware.sysfs_root`; tests build a fake tree), as lm-sensors does.
Command-line equivalent: ``sensors -u``, or one file at a time::

    cat /sys/class/hwmon/hwmon2/name           # nct6798
    cat /sys/class/hwmon/hwmon2/fan1_input     # 1180        (rpm)
    cat /sys/class/hwmon/hwmon2/temp1_input    # 41500       (millidegrees: 41.5 C)
    cat /sys/class/hwmon/hwmon2/pwm2           # 102         (0-255: 0.4)

Per chip: ``fanN_input`` and ``fanN_min`` (rpm), ``tempN_input`` and the ``tempN_max`` /
``tempN_crit`` thresholds (millidegrees -> degrees Celsius), ``pwmN`` (0-255 -> ratio) and
``pwmN_enable`` (0 full speed, 1 manual, 2+ the chip's automatic modes), with ``*_label`` as
the sensor's name where the driver has one (``SYSTIN``, ``Tctl``), else the file stem
(``temp1``, ``fan2``). A name used twice on one chip gets the stem appended (``AUXTIN temp5``).

Chips are found and labelled by gpuwatchd.links.hwmon (the fan driver finds them there too):
by their ``name`` file; where two chips share a name (two NVMe drives, two AMD GPUs, one
coretemp per socket) each gets ``@`` and the basename of its ``device`` link appended
(``nvme@nvme0``, ``amdgpu@0000:03:00.0``), which does not change between boots the way
``hwmonN`` numbering can (``hwmonN`` is the fallback for a chip without a ``device``). The
readings are made once; the metric families are rendered from them
(gpuwatchd.collectors.hwmon_metrics).

GPU chips (amdgpu, radeon, nouveau, i915, xe) are kept, not skipped: for an AMD or Intel GPU,
or an NVIDIA one under nouveau, this is the only source (NVML needs NVIDIA's driver), and
``gpuwatchd_hwmon_chip_info{kind="gpu"}`` marks them so a dashboard can tell them from the
mainboard. NVIDIA's own driver registers no hwmon chip; its GPUs are read through NVML
(gpuwatchd.collectors.gpu).

A file that fails to read makes that one reading absent and is counted in
``gpuwatchd_hwmon_read_errors_total{chip}``; it never fails the collect. Field evidence:
EINVAL from an amdgpu chip's ``fan1_input`` (ASRock AB350, lm-sensors/lm-sensors#144), ENXIO
while reading a ThinkPad's hwmon tree (ichiriac/ubuntu-smart-fan#2), and ENODATA from a NUC's
thermal-zone attribute, which failed node_exporter's whole thermal_zone collector
(prometheus/node_exporter#1703). A file that vanished between listing and reading (a
hot-unplugged chip) is absent, not an error.

``hwmon.enabled: auto`` reads only when ``class/hwmon`` has a chip at start or reload (a
container or VM usually has none; so had the router of node_exporter#426, whose collector
failed on it); ``true`` makes a missing or empty ``class/hwmon`` a failing collect that names
the path. The fan-control side (gpuwatchd.control.drivers.hwmon) names a PWM channel by the
chip's label, ``name`` or ``hwmonN`` directory: ``nct6798/pwm2``.
"""

from __future__ import annotations

import errno
import logging
import os
import re
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

from gpuwatchd.collectors import Scheduled, hwmon_metrics
from gpuwatchd.collectors.chassis_common import unique_names
from gpuwatchd.errors import Unsupported
from gpuwatchd.links import hwmon as sysfs
from gpuwatchd.links.hwmon import ChipDir, Reader, has_chips, read_file
from gpuwatchd.model import Collected, HwmonChip, HwmonFan, HwmonPwm, HwmonTemperature

if TYPE_CHECKING:
    from gpuwatchd.config import Config
    from gpuwatchd.hardware import Hardware

log = logging.getLogger(__name__)

# A collect is a few dozen small sysfs reads; the drivers answer from a cache they refresh at
# most every second or two over the LPC/SMBus. No field measurement of a slow chip yet: the
# deadline only bounds a read stuck in the kernel (it makes the data stale, never the loop).
DEADLINE_SECONDS = 2.0
GPU_CHIPS = frozenset({"amdgpu", "radeon", "nouveau", "i915", "xe"})
_SENSOR = re.compile(r"(fan|temp)(\d+)_input")
_PWM = re.compile(r"pwm(\d+)")


class HwmonCollector:
    """Reads every hwmon chip under one ``class/hwmon`` directory."""

    name = "hwmon"

    def __init__(self, base: str, reader: Reader = read_file) -> None:
        self.base = base
        self._read = reader
        self._errors: Counter[str] = Counter()
        self._failing: set[str] = set()  # paths whose failure was logged (once each)

    def collect(self) -> Collected:
        """One read of every chip; raises Unsupported only when there is no chip at all."""
        chips = self.discover()
        if not chips:
            raise Unsupported(f"hwmon: no chips under {self.base}")
        readings: list[object] = []
        for chip in chips:
            sensors = self._chip(chip)
            readings.append(HwmonChip(chip.chip, chip.name, chip.device,
                                      "gpu" if chip.name in GPU_CHIPS else "other",
                                      self._errors[chip.chip]))
            readings.extend(sensors)
        return Collected(tuple(readings), hwmon_metrics.render(readings))

    def close(self) -> None:
        """Nothing is held open between collects."""

    # --- discovery --------------------------------------------------------------------------
    def discover(self) -> list[ChipDir]:
        """The chips in ``hwmonN`` order, with stable unique labels (gpuwatchd.links.hwmon)."""
        return sysfs.discover(self.base, self._text)

    # --- one chip ---------------------------------------------------------------------------
    def _chip(self, chip: ChipDir) -> list[object]:
        try:
            files = sysfs.attributes(chip)
        except OSError as exc:
            self._fail(chip.chip, chip.path, exc)
            return []
        out: list[object] = []
        out += self._temperatures(chip, files)
        out += self._fans(chip, files)
        out += self._pwms(chip, files)
        return out

    def _temperatures(self, chip: ChipDir, files: set[str]) -> list[object]:
        out: list[object] = []
        for stem, sensor in self._sensors(chip, files, "temp"):
            celsius = self._milli(chip, f"{stem}_input")
            limits = [self._milli(chip, f"{stem}_{t}") if f"{stem}_{t}" in files else None
                      for t in ("max", "crit")]
            out.append(HwmonTemperature(chip.chip, sensor, celsius, *limits))
        return out

    def _fans(self, chip: ChipDir, files: set[str]) -> list[object]:
        out: list[object] = []
        for stem, fan in self._sensors(chip, files, "fan"):
            rpm = self._int(chip, f"{stem}_input")
            low = self._int(chip, f"{stem}_min") if f"{stem}_min" in files else None
            out.append(HwmonFan(chip.chip, fan, _float(rpm), _float(low)))
        return out

    def _pwms(self, chip: ChipDir, files: set[str]) -> list[object]:
        out: list[object] = []
        for number in sorted(int(m[1]) for f in files if (m := _PWM.fullmatch(f))):
            pwm = f"pwm{number}"
            raw = self._int(chip, pwm)
            ratio = None if raw is None else max(0.0, min(1.0, raw / 255))
            mode = self._int(chip, f"{pwm}_enable") if f"{pwm}_enable" in files else None
            out.append(HwmonPwm(chip.chip, pwm, ratio, mode))
        return out

    def _sensors(self, chip: ChipDir, files: set[str], kind: str) -> list[tuple[str, str]]:
        """(stem, unique sensor name) of every ``<kind>N_input``, in N order."""
        numbers = sorted(int(m[2]) for f in files if (m := _SENSOR.fullmatch(f)) and m[1] == kind)
        stems = [f"{kind}{n}" for n in numbers]
        names = [(self._label(chip, stem, files), stem) for stem in stems]
        unique = unique_names(names)
        return list(zip(stems, unique, strict=True))

    def _label(self, chip: ChipDir, stem: str, files: set[str]) -> str:
        if f"{stem}_label" not in files:
            return stem
        text = self._text(os.path.join(chip.path, f"{stem}_label"), chip.chip)
        return (text or "").strip() or stem

    # --- reading one file -------------------------------------------------------------------
    def _milli(self, chip: ChipDir, attribute: str) -> float | None:
        value = self._int(chip, attribute)
        return None if value is None else value / 1000.0

    def _int(self, chip: ChipDir, attribute: str) -> int | None:
        path = os.path.join(chip.path, attribute)
        text = self._text(path, chip.chip)
        if text is None:
            return None
        try:
            return int(text.strip())
        except ValueError:
            self._fail(chip.chip, path, ValueError(f"not an integer: {text.strip()[:20]!r}"))
            return None

    def _text(self, path: str, chip: str) -> str | None:
        """The file's text; None (and counted, unless the file is gone) when it fails."""
        try:
            text = self._read(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._fail(chip, path, exc)
            return None
        self._failing.discard(path)
        return text

    def _fail(self, chip: str, path: str, exc: Exception) -> None:
        self._errors[chip] += 1
        if path not in self._failing:
            self._failing.add(path)
            reason = (errno.errorcode.get(exc.errno, "") if isinstance(exc, OSError)
                      and exc.errno else "") or str(exc)
            log.info("hwmon: reading %s failed: %s (counted in "
                     "gpuwatchd_hwmon_read_errors_total; not logged again until it reads)",
                     path, reason)


def _float(value: int | None) -> float | None:
    return None if value is None else float(value)


def build(config: Config, hw: Hardware) -> Sequence[Scheduled]:
    """The registry factory: one collector, unless disabled or (auto) there is no chip."""
    cfg = config.hwmon
    base = sysfs.class_dir(hw.sysfs_root)
    if cfg.enabled is False or (cfg.enabled == "auto" and not has_chips(base)):
        return []
    interval = cfg.interval_seconds or config.interval_seconds
    return [Scheduled(HwmonCollector(base), interval, min(interval, DEADLINE_SECONDS))]
