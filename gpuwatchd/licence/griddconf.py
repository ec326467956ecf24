"""``/etc/nvidia/gridd.conf``: read it and lint what decides the licence.

Keys and values: ``shared/reference/gridd-licence.md`` (c), from the gridd.conf template.
The lint checks FeatureType against the GPU's virtualization mode and licensable features,
and ServerAddress where there is no NLS token (the legacy licence server). A key gridd does
not know is only reported when it looks like a misspelt known key (gridd has undocumented
keys, e.g. ``IgnoreSP``).

Command-line equivalent: ``grep -v '^#' /etc/nvidia/gridd.conf``.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field

from gpuwatchd.licence.kinds import FeatureCode, VirtualizationMode

KNOWN_KEYS = ("ServerAddress", "ServerPort", "BackupServerAddress", "BackupServerPort",
              "FeatureType", "EnableUI", "LicenseInterval", "LingerInterval",
              "ClientConfigTokenPath", "ProxyServerAddress", "ProxyServerPort", "IgnoreSP",
              "ProxyCredentialsFilePath")
FEATURE_TYPES = {0: "unlicensed", 1: "NVIDIA vGPU", 2: "NVIDIA RTX Virtual Workstation",
                 4: "NVIDIA Virtual Compute Server"}
_RANGES = {"ServerPort": (1, 65535), "BackupServerPort": (1, 65535),
           "ProxyServerPort": (1, 65535), "LicenseInterval": (10, 10080),
           "LingerInterval": (0, 10080)}


@dataclass(frozen=True)
class Problem:
    """One finding: a stable ``kind`` for the metric label and words for the operator."""

    kind: str
    message: str


@dataclass(frozen=True)
class GriddConf:
    """The parsed file; ``error`` set (and ``values`` empty) when it could not be read."""

    path: str
    exists: bool
    values: dict[str, str] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)
    unknown: tuple[tuple[str, int], ...] = ()
    fingerprint: tuple[float, int] | None = None  # (mtime, size): a change means "re-read"
    error: str = ""

    def get(self, key: str) -> str:
        return self.values.get(key, "").strip()

    @property
    def feature_type(self) -> int | None:
        text = self.get("FeatureType")
        return int(text) if text.isdigit() else None


def read(path: str) -> GriddConf:
    """Read and parse gridd.conf (``Key=Value`` lines, ``#`` comments)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            stat = os.fstat(handle.fileno())
            text = handle.read()
    except FileNotFoundError:
        return GriddConf(path, exists=False)
    except OSError as exc:
        return GriddConf(path, exists=True, error=f"{path}: {exc.strerror} (uid {os.getuid()})")
    return parse(text, path, (stat.st_mtime, stat.st_size))


def parse(text: str, path: str = "gridd.conf",
          fingerprint: tuple[float, int] | None = None) -> GriddConf:
    """Parse gridd.conf text; keys are matched case-insensitively to their documented case."""
    canonical = {key.lower(): key for key in KNOWN_KEYS}
    values: dict[str, str] = {}
    lines: dict[str, int] = {}
    unknown: list[tuple[str, int]] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = (part.strip() for part in line.split("=", 1))
        name = canonical.get(key.lower())
        if name is None:
            unknown.append((key, number))
            continue
        values[name] = value.strip().strip('"')
        lines[name] = number
    return GriddConf(path, True, values, lines, tuple(unknown), fingerprint)


def lint(conf: GriddConf, mode: VirtualizationMode | None, offered: set[FeatureCode],
         licensed: FeatureCode | None, tokens: int) -> list[Problem]:
    """Findings for one GPU's view (``offered``: feature codes the GPU lists; ``tokens``: .tok
    files found). An empty list means nothing to fix."""
    if not conf.exists:
        return [Problem("missing", f"{conf.path} does not exist (copy gridd.conf.template)")]
    if conf.error:
        return [Problem("unreadable", conf.error)]
    out = _typos(conf) + _values(conf)
    out += _feature_type(conf, mode, offered, licensed)
    if tokens == 0 and not conf.get("ServerAddress"):
        out.append(Problem("no_server", "no ClientConfigToken (NLS) and no ServerAddress "
                                        f"(legacy licence server) in {conf.path}"))
    return out


def _where(conf: GriddConf, key: str) -> str:
    return f"{conf.path}:{conf.lines.get(key, 0)}"


def _typos(conf: GriddConf) -> list[Problem]:
    out = []
    for key, number in conf.unknown:
        close = difflib.get_close_matches(key, KNOWN_KEYS, n=1, cutoff=0.8)
        if close:
            out.append(Problem("typo_key", f"{conf.path}:{number}: unknown key {key!r} "
                                           f"(did you mean {close[0]!r}?)"))
    return out


def _values(conf: GriddConf) -> list[Problem]:
    out = []
    for key, (low, high) in _RANGES.items():
        text = conf.get(key)
        if text and (not text.isdigit() or not low <= int(text) <= high):
            out.append(Problem("bad_value", f"{_where(conf, key)}: {key}={text!r} is not a "
                                            f"number in [{low}, {high}]"))
    enable_ui = conf.get("EnableUI")
    if enable_ui and enable_ui.upper() not in ("TRUE", "FALSE"):
        out.append(Problem("bad_value", f"{_where(conf, 'EnableUI')}: EnableUI={enable_ui!r} "
                                        "is not TRUE or FALSE"))
    return out


def _feature_type(conf: GriddConf, mode: VirtualizationMode | None, offered: set[FeatureCode],
                  licensed: FeatureCode | None) -> list[Problem]:
    text = conf.get("FeatureType")
    if not text:
        return []
    where = _where(conf, "FeatureType")
    value = conf.feature_type
    if value is None or value > max(FeatureCode):
        return [Problem("feature_type_invalid", f"{where}: FeatureType={text!r} is not one of "
                        + ", ".join(f"{k} ({v})" for k, v in FEATURE_TYPES.items()))]
    if mode is VirtualizationMode.VGPU and value != 1:
        return [Problem("feature_type_mismatch", f"{where}: FeatureType={value} in a vGPU guest; "
                        "vGPU guests use 1 (the product follows the vGPU profile)")]
    if mode is VirtualizationMode.PASSTHROUGH and value == 1:
        return [Problem("feature_type_mismatch", f"{where}: FeatureType=1 is for vGPU guests; "
                        "a passthrough GPU uses 2 (RTX vWS) or 4 (Virtual Compute Server)")]
    if mode is VirtualizationMode.PASSTHROUGH and value > 1:
        wanted = FeatureCode(value)
        if offered and wanted not in offered:
            names = ", ".join(sorted(code.label for code in offered))
            return [Problem("feature_type_mismatch", f"{where}: FeatureType={value} "
                            f"({FEATURE_TYPES.get(value, wanted.label)}) is not offered by this "
                            f"GPU (it offers: {names})")]
        if licensed is not None and licensed is not wanted:
            return [Problem("feature_type_mismatch", f"{where}: FeatureType={value} but the GPU "
                            f"holds a {licensed.label} licence (restart nvidia-gridd after "
                            "changing FeatureType)")]
    return []
