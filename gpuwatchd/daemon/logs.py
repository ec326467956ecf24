"""Logging: to the journal with structured fields under systemd, else to stderr.

Structured fields are passed as ``extra={"GPU": uuid, "BMC": name, ...}`` (upper-case keys,
journald's convention) and become journal fields (``journalctl -u gpuwatchd GPU=...``).
Without systemd-python the daemon logs to stderr, which systemd also captures.
"""

from __future__ import annotations

import logging
import os
import sys

LEVELS = ("debug", "info", "warning", "error")
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None)))


class _FieldsFormatter(logging.Formatter):
    """``level: message KEY=value ...`` for stderr (the journal adds time and unit)."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = {k: v for k, v in vars(record).items()
                  if k not in _STANDARD and k.isupper() and k != "MESSAGE"}
        if fields:
            text += " " + " ".join(f"{k}={v}" for k, v in sorted(fields.items()))
        return text


def _journal_handler() -> logging.Handler | None:
    """A JournalHandler when stderr is connected to the journal and systemd-python exists."""
    stream = os.environ.get("JOURNAL_STREAM", "")
    if not stream:
        return None
    try:
        device, inode = (int(part) for part in stream.split(":"))
        st = os.fstat(sys.stderr.fileno())
    except (ValueError, OSError):
        return None
    if (st.st_dev, st.st_ino) != (device, inode):
        return None
    try:
        from systemd.journal import JournalHandler  # noqa: PLC0415 - optional dependency
    except ImportError:
        return None
    handler: logging.Handler = JournalHandler(SYSLOG_IDENTIFIER="gpuwatchd")
    return handler


def setup(level: str = "info") -> None:
    """Configure the root logger once; ``level`` is one of :data:`LEVELS`."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    handler = _journal_handler()
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_FieldsFormatter("gpuwatchd: %(levelname)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level.upper())
