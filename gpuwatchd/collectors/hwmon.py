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

Chips are labelled by their ``name`` file; where two chips share a name (two NVMe drives, two
AMD GPUs, one coretemp per socket) each gets ``@`` and the basename of its ``device`` link
appended (``nvme@nvme0``, ``amdgpu@0000:03:00.0``), which does not change between boots the
way ``hwmonN`` numbering can (``hwmonN`` is the fallback for a chip without a ``device``).

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
chip's ``name`` or ``hwmonN`` directory: ``nct6798/pwm2``.
"""

from __future__ import annotations

import errno
import logging
import os
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gpuwatchd.collectors import Scheduled
from gpuwatchd.collectors.chassis_common import unique_names
from gpuwatchd.errors import Unsupported
from gpuwatchd.model import (
    Collected,
    FamilyBuilder,
    HwmonChip,
    HwmonFan,
    HwmonPwm,
    HwmonTemperature,
    Kind,
)

if TYPE_CHECKING:
    from gpuwatchd.config import Config
    from gpuwatchd.hardware import Hardware

log = logging.getLogger(__name__)

# A collect is a few dozen small sysfs reads; the drivers answer from a cache they refresh at
# most every second or two over the LPC/SMBus. No field measurement of a slow chip yet: the
# deadline only bounds a read stuck in the kernel (it makes the data stale, never the loop).
DEADLINE_SECONDS = 2.0
GPU_CHIPS = frozenset({"amdgpu", "radeon", "nouveau", "i915", "xe"})
THRESHOLDS = ("max", "crit")
H = "gpuwatchd_hwmon_"

CATALOGUE: dict[str, tuple[Kind, str]] = {
    H + "chip_info": ("gauge", "An hwmon chip: its name, device and kind (gpu or other); "
                               "always 1."),
    H + "fan_speed_rpm": ("gauge", "Fan tachometer reading (fanN_input) in revolutions per "
                                   "minute."),
    H + "fan_min_rpm": ("gauge", "The chip's low-speed alarm limit of a fan (fanN_min)."),
    H + "temperature_celsius": ("gauge", "Temperature sensor reading (tempN_input)."),
    H + "temperature_threshold_celsius": ("gauge", "A temperature limit of the chip "
                                                   "(tempN_max, tempN_crit)."),
    H + "pwm_ratio": ("gauge", "PWM output duty (pwmN / 255)."),
    H + "pwm_mode": ("gauge", "pwmN_enable: 0 full speed, 1 manual, 2 and above the chip's "
                              "automatic modes."),
    H + "read_errors_total": ("counter", "hwmon files of the chip that failed to read (EIO, "
                                         "ENXIO, ENODATA, EINVAL, garbage) since start."),
}

Reader = Callable[[str], str]
_SENSOR = re.compile(r"(fan|temp)(\d+)_input")
_PWM = re.compile(r"pwm(\d+)")


def read_file(path: str) -> str:
    """The whole text of one sysfs attribute (the default :data:`Reader`)."""
    with open(path, encoding="ascii", errors="replace") as f:
        return f.read()


@dataclass(frozen=True)
class ChipDir:
    """One chip as found: its label, identity and the directory its attributes are in."""

    chip: str
    name: str
    device: str
    path: str

    @property
    def kind(self) -> str:
        return "gpu" if self.name in GPU_CHIPS else "other"


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
        b = FamilyBuilder(CATALOGUE)
        readings: list[object] = []
        for chip in chips:
            sensors = self._chip(b, chip)
            readings.append(HwmonChip(chip.chip, chip.name, chip.device, chip.kind,
                                      self._errors[chip.chip]))
            readings.extend(sensors)
            b.add(H + "chip_info", 1, chip=chip.chip, name=chip.name, device=chip.device,
                  kind=chip.kind)
            b.add(H + "read_errors_total", self._errors[chip.chip], chip=chip.chip)
        return Collected(tuple(readings), b.build())

    def close(self) -> None:
        """Nothing is held open between collects."""

    # --- discovery --------------------------------------------------------------------------
    def discover(self) -> list[ChipDir]:
        """The chips in ``hwmonN`` order, with stable unique labels."""
        try:
            entries = sorted((e for e in os.listdir(self.base) if e.startswith("hwmon")),
                             key=_natural)
        except OSError as exc:
            raise Unsupported(f"hwmon: cannot list {self.base}: "
                              f"{exc.strerror or exc}") from None
        found = []
        for entry in entries:
            path = os.path.join(self.base, entry)
            if not os.path.exists(os.path.join(path, "name")) and os.path.exists(
                    os.path.join(path, "device", "name")):
                path = os.path.join(path, "device")  # kernels before 3.x kept them there
            name = (self._text(os.path.join(path, "name"), entry) or entry).strip() or entry
            found.append((entry, name, _device(os.path.join(self.base, entry)), path))
        return [ChipDir(label, n, d, p)
                for label, (_, n, d, p) in zip(_chip_labels(found), found, strict=True)]

    # --- one chip ---------------------------------------------------------------------------
    def _chip(self, b: FamilyBuilder, chip: ChipDir) -> list[object]:
        try:
            files = set(os.listdir(chip.path))
        except OSError as exc:
            self._fail(chip.chip, chip.path, exc)
            return []
        out: list[object] = []
        out += self._temperatures(b, chip, files)
        out += self._fans(b, chip, files)
        out += self._pwms(b, chip, files)
        return out

    def _temperatures(self, b: FamilyBuilder, chip: ChipDir, files: set[str]) -> list[object]:
        out: list[object] = []
        for stem, sensor in self._sensors(chip, files, "temp"):
            celsius = self._milli(chip, f"{stem}_input")
            limits = {t: self._milli(chip, f"{stem}_{t}") if f"{stem}_{t}" in files else None
                      for t in THRESHOLDS}
            b.add(H + "temperature_celsius", celsius, chip=chip.chip, sensor=sensor)
            for threshold, value in limits.items():
                b.add(H + "temperature_threshold_celsius", value, chip=chip.chip,
                      sensor=sensor, threshold=threshold)
            out.append(HwmonTemperature(chip.chip, sensor, celsius, limits["max"],
                                        limits["crit"]))
        return out

    def _fans(self, b: FamilyBuilder, chip: ChipDir, files: set[str]) -> list[object]:
        out: list[object] = []
        for stem, fan in self._sensors(chip, files, "fan"):
            rpm = self._int(chip, f"{stem}_input")
            low = self._int(chip, f"{stem}_min") if f"{stem}_min" in files else None
            b.add(H + "fan_speed_rpm", rpm, chip=chip.chip, fan=fan)
            b.add(H + "fan_min_rpm", low, chip=chip.chip, fan=fan)
            out.append(HwmonFan(chip.chip, fan, _float(rpm), _float(low)))
        return out

    def _pwms(self, b: FamilyBuilder, chip: ChipDir, files: set[str]) -> list[object]:
        out: list[object] = []
        for number in sorted(int(m[1]) for f in files if (m := _PWM.fullmatch(f))):
            pwm = f"pwm{number}"
            raw = self._int(chip, pwm)
            ratio = None if raw is None else max(0.0, min(1.0, raw / 255))
            mode = self._int(chip, f"{pwm}_enable") if f"{pwm}_enable" in files else None
            b.add(H + "pwm_ratio", ratio, chip=chip.chip, pwm=pwm)
            b.add(H + "pwm_mode", mode, chip=chip.chip, pwm=pwm)
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


def _chip_labels(found: Sequence[tuple[str, str, str, str]]) -> list[str]:
    """``name``, or ``name@device`` (``name@hwmonN`` without one) where names repeat."""
    counts = Counter(name for _, name, _, _ in found)
    labels = [name if counts[name] == 1 else f"{name}@{device or entry}"
              for entry, name, device, _ in found]
    seen: Counter[str] = Counter()
    out = []
    for label in labels:  # two chips on one device (never seen): "#2" in hwmonN order
        seen[label] += 1
        out.append(label if seen[label] == 1 else f"{label}#{seen[label]}")
    return out


def _device(chip_dir: str) -> str:
    """Basename of the chip's ``device`` link (nct6775.656, nvme0, 0000:03:00.0), or ''."""
    link = os.path.join(chip_dir, "device")
    if not os.path.islink(link):
        return ""
    return os.path.basename(os.path.realpath(link))  # the link text may end in ".."


def _natural(entry: str) -> tuple[int, str]:
    """hwmon2 before hwmon10."""
    digits = entry.removeprefix("hwmon")
    return (int(digits), entry) if digits.isdigit() else (1 << 30, entry)


def _float(value: int | None) -> float | None:
    return None if value is None else float(value)


def has_chips(base: str) -> bool:
    """True when ``base`` (``<root>/class/hwmon``) lists at least one ``hwmon*`` chip."""
    try:
        return any(entry.startswith("hwmon") for entry in os.listdir(base))
    except OSError:
        return False


def build(config: Config, hw: Hardware) -> Sequence[Scheduled]:
    """The registry factory: one collector, unless disabled or (auto) there is no chip."""
    cfg = config.hwmon
    base = os.path.join(hw.sysfs_root, "class", "hwmon")
    if cfg.enabled is False or (cfg.enabled == "auto" and not has_chips(base)):
        return []
    interval = cfg.interval_seconds or config.interval_seconds
    return [Scheduled(HwmonCollector(base), interval, min(interval, DEADLINE_SECONDS))]
