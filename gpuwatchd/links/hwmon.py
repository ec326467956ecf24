"""Linux hwmon sysfs: the one place hwmon chips are listed, found and named.

The hwmon collector (gpuwatchd.collectors.hwmon) and the hwmon fan driver
(gpuwatchd.control.drivers.hwmon) both find chips here, under ``<sysfs_root>/class/hwmon``
(the root is injected: tests build a fake tree), so a chip has one name in the metrics, the
status table and a fan-control channel. Shell equivalent::

    ls /sys/class/hwmon                        # hwmon0 hwmon1 hwmon2
    cat /sys/class/hwmon/hwmon2/name           # nct6798
    readlink /sys/class/hwmon/hwmon2/device    # ../../../nct6775.656

Chips are labelled by their ``name`` file; where two chips share a name (two NVMe drives, two
AMD GPUs, one coretemp per socket) each gets ``@`` and the basename of its ``device`` link
appended (``nvme@nvme0``, ``amdgpu@0000:03:00.0``), which does not change between boots the
way ``hwmonN`` numbering can (``hwmonN`` is the fallback for a chip without a ``device``).
A chip is found (:func:`find`) by that label, by its ``name`` (the first chip of that name, in
``hwmonN`` order, that has the attribute asked for) or by its ``hwmonN`` directory.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gpuwatchd.errors import Unsupported

Reader = Callable[[str], str]  # the whole text of one attribute file; raises OSError
NameReader = Callable[[str, str], str | None]  # (path of a ``name`` file, hwmonN) -> text


def class_dir(sysfs_root: str) -> str:
    """``<sysfs_root>/class/hwmon``."""
    return os.path.join(sysfs_root, "class", "hwmon")


def read_file(path: str) -> str:
    """The whole text of one sysfs attribute (the default :data:`Reader`)."""
    with open(path, encoding="ascii", errors="replace") as f:
        return f.read()


def _read_name(path: str, _entry: str) -> str | None:
    try:
        return read_file(path)
    except OSError:
        return None


@dataclass(frozen=True)
class ChipDir:
    """One chip as found: its label, identity and the directory its attributes are in."""

    chip: str  # the label: name, or name@device where names repeat
    name: str  # the ``name`` file
    device: str  # basename of the ``device`` link, or ''
    entry: str  # hwmonN
    path: str  # hwmonN, or hwmonN/device on kernels before 3.x


def has_chips(base: str) -> bool:
    """True when ``base`` (``<root>/class/hwmon``) lists at least one ``hwmon*`` chip."""
    try:
        return any(entry.startswith("hwmon") for entry in os.listdir(base))
    except OSError:
        return False


def discover(base: str, read_name: NameReader = _read_name) -> list[ChipDir]:
    """The chips under ``base`` in ``hwmonN`` order, with stable unique labels.

    ``read_name`` reads a chip's ``name`` file (None when it fails: the chip is then called by
    its ``hwmonN``). Raises Unsupported when ``base`` cannot be listed.
    """
    try:
        entries = sorted((e for e in os.listdir(base) if e.startswith("hwmon")), key=_natural)
    except OSError as exc:
        raise Unsupported(f"hwmon: cannot list {base}: {exc.strerror or exc}") from None
    found = []
    for entry in entries:
        path = os.path.join(base, entry)
        if not os.path.exists(os.path.join(path, "name")) and os.path.exists(
                os.path.join(path, "device", "name")):
            path = os.path.join(path, "device")  # kernels before 3.x kept them there
        name = (read_name(os.path.join(path, "name"), entry) or entry).strip() or entry
        found.append((entry, name, _device(os.path.join(base, entry)), path))
    return [ChipDir(label, n, d, e, p)
            for label, (e, n, d, p) in zip(_chip_labels(found), found, strict=True)]


def attributes(chip: ChipDir) -> set[str]:
    """The chip's attribute file names; raises OSError as ``os.listdir`` does."""
    return set(os.listdir(chip.path))


def find(chips: Sequence[ChipDir], chip: str, attribute: str) -> ChipDir | None:
    """The chip called ``chip`` (label, ``name`` or ``hwmonN``) that has ``attribute``."""
    for c in chips:
        if chip in (c.chip, c.name, c.entry) and os.path.exists(os.path.join(c.path, attribute)):
            return c
    return None


def locate(base: str, chip: str, attribute: str) -> str:
    """The path of ``attribute`` of the chip called ``chip``; Unsupported (naming the chips
    there) when no chip of that name has it."""
    chips = discover(base)
    found = find(chips, chip, attribute)
    if found is None:
        names = ", ".join(f"{c.entry} {c.chip}" for c in chips) or "none"
        raise Unsupported(f"hwmon: no {attribute} on a chip {chip!r} under {base} "
                          f"(chips: {names})")
    return os.path.join(found.path, attribute)


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
