"""What the section renderers draw with: :class:`Style` (colours), cells and :func:`table`.

Used by the ``render`` half of every gpuwatchd.status.sections module and by
gpuwatchd.status.table; knows no section and no socket. Durations use the project's one
format, gpuwatchd.clock.span (``1m30s``).
"""

from __future__ import annotations

from dataclasses import dataclass

from gpuwatchd.clock import span

Cell = tuple[str, str]  # (text, tone); tone "" = plain
_TONES = {"good": "32", "bad": "1;31", "warn": "33", "bold": "1"}


@dataclass(frozen=True)
class Style:
    """ANSI colours on or off (on only for a TTY without ``--no-color``/``$NO_COLOR``)."""

    color: bool

    def paint(self, text: str, tone: str) -> str:
        code = _TONES.get(tone)
        return f"\033[{code}m{text}\033[0m" if self.color and code and text else text


def table(head: list[str], rows: list[list[Cell]], align: str, style: Style) -> list[str]:
    """Columns padded to their widest cell, then painted (escapes do not count as width)."""
    widths = [max([len(h)] + [len(r[i][0]) for r in rows]) for i, h in enumerate(head)]

    def line(cells: list[Cell]) -> str:
        out = [style.paint(text.rjust(w) if a == "r" else text.ljust(w), tone)
               for (text, tone), w, a in zip(cells, widths, align, strict=True)]
        return "  ".join(out).rstrip()

    return [style.paint(line([(h, "") for h in head]), "bold"), *[line(r) for r in rows]]


def celsius(value: float | None) -> Cell:
    """``54C``, or ``-`` without a reading."""
    return ("-" if value is None else f"{float(value):.0f}C"), ""


def age_text(seconds: float | None) -> str:
    """A data age: ``0.5s`` under ten seconds, then :func:`span`; ``never`` for null."""
    if seconds is None:
        return "never"
    seconds = float(seconds)
    return f"{seconds:.1f}s" if seconds < 10 else span(seconds)


def ago(seconds: float | None) -> str:
    """``0.4s ago``, or ``none yet`` for null."""
    return "none yet" if seconds is None else f"{age_text(seconds)} ago"
