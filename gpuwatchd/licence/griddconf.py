"""``/etc/nvidia/gridd.conf``: read it and lint what decides the licence.

Keys and values: ``shared/reference/gridd-licence.md`` (c), from the gridd.conf template.
The lint checks FeatureType against what the GPU's virtualization mode and vGPU type accept
(:mod:`gpuwatchd.licence.featuretype`), and ServerAddress where there is no NLS token (the
legacy licence server). A key gridd does not know is only reported when it looks like a
misspelt known key (gridd has undocumented keys, e.g. ``IgnoreSP``).

Each finding has a severity: ``WARNING`` when the setting cannot work, ``OK`` (informational)
when it works but deserves a look. The collector shows every finding, and lowers all of them
to informational on a node whose every GPU holds a licence (the proof that the setup works).

The file is read as NVIDIA ships it (tests/data/gridd/): the template's ``#`` comment blocks,
CRLF line ends (a copy edited on Windows), a UTF-8 byte-order mark, quoted values. An inline
comment (``FeatureType=4 # NVAIE``) is stripped from the value here, and reported: gridd is
closed source and no documentation or field report says whether it strips one (the template
and NVIDIA's guides only ever put comments on their own lines), so the value gpuwatchd judges
may not be the value gridd reads.

Command-line equivalent: ``grep -v '^#' /etc/nvidia/gridd.conf``.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, field

from gpuwatchd.config.files import MAX_STATE_BYTES, FileRefused, read_regular
from gpuwatchd.licence import featuretype
from gpuwatchd.licence.featuretype import FEATURE_TYPES
from gpuwatchd.licence.kinds import FeatureCode, Severity, VirtualizationMode

KNOWN_KEYS = ("ServerAddress", "ServerPort", "BackupServerAddress", "BackupServerPort",
              "FeatureType", "EnableUI", "LicenseInterval", "LingerInterval",
              "ClientConfigTokenPath", "ProxyServerAddress", "ProxyServerPort", "IgnoreSP",
              "ProxyCredentialsFilePath")
__all__ = ["FEATURE_TYPES", "GriddConf", "Problem", "lint", "parse", "read"]
_INLINE_COMMENT = re.compile(r"\s+#.*$")  # "#" after blanks; "host#1" keeps its "#"
_RANGES = {"ServerPort": (1, 65535), "BackupServerPort": (1, 65535),
           "ProxyServerPort": (1, 65535), "LicenseInterval": (10, 10080),
           "LingerInterval": (0, 10080)}


@dataclass(frozen=True)
class Problem:
    """One finding: a stable ``kind`` for the metric label and words for the operator;
    ``severity`` WARNING when the setting cannot work, OK when it is informational."""

    kind: str
    message: str
    severity: Severity = Severity.WARNING


@dataclass(frozen=True)
class GriddConf:
    """The parsed file; ``error`` set (and ``values`` empty) when it could not be read."""

    path: str
    exists: bool
    values: dict[str, str] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)
    unknown: tuple[tuple[str, int], ...] = ()
    comments: dict[str, int] = field(default_factory=dict)  # key -> line with an inline comment
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
    try:  # bounded and regular only: a FIFO or /dev/zero there never blocks the collector
        data = read_regular(path, MAX_STATE_BYTES)
        stat = os.stat(path)
    except FileRefused as exc:
        if exc.missing:
            return GriddConf(path, exists=False)
        return GriddConf(path, exists=True, error=f"{path}: {exc.problem} (uid {os.getuid()})")
    except OSError as exc:  # removed between the read and the stat
        return GriddConf(path, exists=True, error=f"{path}: {exc.strerror} (uid {os.getuid()})")
    text = data.decode("utf-8", errors="replace")
    return parse(text, path, (stat.st_mtime, stat.st_size))


def parse(text: str, path: str = "gridd.conf",
          fingerprint: tuple[float, int] | None = None) -> GriddConf:
    """Parse gridd.conf text; keys are matched case-insensitively to their documented case."""
    canonical = {key.lower(): key for key in KNOWN_KEYS}
    values: dict[str, str] = {}
    lines: dict[str, int] = {}
    unknown: list[tuple[str, int]] = []
    comments: dict[str, int] = {}
    for number, raw in enumerate(text.removeprefix("\ufeff").splitlines(), 1):
        line = raw.strip()  # also drops the "\r" of a CRLF file
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = (part.strip() for part in line.split("=", 1))
        name = canonical.get(key.lower())
        if name is None:
            unknown.append((key, number))
            continue
        bare = _INLINE_COMMENT.sub("", value)
        if bare != value:
            comments[name] = number
        values[name] = bare.strip().strip('"')
        lines[name] = number
    return GriddConf(path, True, values, lines, tuple(unknown), comments, fingerprint)


def lint(conf: GriddConf, mode: VirtualizationMode | None, offered: set[FeatureCode],
         licensed: FeatureCode | None, tokens: int, *, vgpu_type: str = "") -> list[Problem]:
    """Findings for one GPU's view (``offered``: feature codes the GPU lists; ``tokens``: .tok
    files found; ``vgpu_type``: the guest GPU's name, e.g. "GRID A100-4C"). An empty list means
    nothing to fix."""
    if not conf.exists:
        return [Problem("missing", f"{conf.path} does not exist (copy gridd.conf.template)")]
    if conf.error:
        return [Problem("unreadable", conf.error)]
    out = _typos(conf) + _comments(conf) + _values(conf)
    out += _feature_type(conf, mode, offered, licensed, vgpu_type)
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


def _comments(conf: GriddConf) -> list[Problem]:
    return [Problem("inline_comment", f"{conf.path}:{number}: {key}={conf.get(key)!r} is "
                                      "followed by a '#' comment; gridd may read it as part of "
                                      "the value: put the comment on its own line")
            for key, number in sorted(conf.comments.items(), key=lambda kv: kv[1])]


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
                  licensed: FeatureCode | None, vgpu_type: str) -> list[Problem]:
    text = conf.get("FeatureType")
    if not text:
        return []
    where = _where(conf, "FeatureType")
    value = conf.feature_type
    if value is None or value > max(FeatureCode):
        return [Problem("feature_type_invalid", f"{where}: FeatureType={text!r} is not one of "
                        + ", ".join(f"{k} ({v})" for k, v in FEATURE_TYPES.items()))]
    verdict = featuretype.judge(value, mode, vgpu_type)
    if not verdict.works:
        return [Problem("feature_type_mismatch", f"{where}: FeatureType={value}: {verdict.why}")]
    if mode is VirtualizationMode.PASSTHROUGH and value > 1:
        wanted = FeatureCode(value)
        if offered and wanted not in offered:
            names = ", ".join(sorted(code.label for code in offered))
            label = FEATURE_TYPES.get(value, wanted.label)
            return [Problem("feature_type_mismatch", f"{where}: FeatureType={value} ({label}) "
                            f"is not offered by this GPU (it offers: {names})")]
        if licensed is not None and licensed is not wanted:
            return [Problem("feature_type_mismatch", f"{where}: FeatureType={value} but the GPU "
                            f"holds a {licensed.label} licence (gridd asks for FeatureType's "
                            "product when it restarts)", Severity.OK)]
    return []
