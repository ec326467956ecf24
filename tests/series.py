"""Duplicate-series checks: Prometheus keeps one sample per (name, labels) and silently drops
the others, so a repeated series is a reading lost. Used by the golden and the chassis tests."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from gpuwatchd.model import Family

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def duplicates_in_text(text: str) -> list[str]:
    """The (name, labels) that appear more than once in an exposition (labels in any order)."""
    keys = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        assert m is not None, f"not a sample line: {line!r}"
        labels = tuple(sorted(_LABEL.findall(m.group(3) or "")))
        keys.append(f"{m.group(1)}{dict(labels)}")
    return [key for key, n in Counter(keys).items() if n > 1]


def duplicates_in_families(families: Iterable[Family]) -> list[str]:
    keys = [f"{f.name}{dict(sorted(s.labels))}" for f in families for s in f.samples]
    return [key for key, n in Counter(keys).items() if n > 1]
