"""Logging: to the journal with structured fields under systemd, else to stderr.

Structured fields are passed as ``extra={"GPU": uuid, "BMC": name, ...}`` (upper-case keys,
journald's convention) and become journal fields (``journalctl -u gpuwatchd GPU=...``).
Without systemd-python the daemon logs to stderr, which systemd also captures, in logfmt
(``ts=... level=info msg="..." GPU=...``, the Prometheus exporters' default) or JSON
(``--log.format json``: one object a line).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time

LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("logfmt", "json")
_ALIASES = {"warn": "warning"}  # the Prometheus spelling (--log.level=warn)
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None)))


def level(text: str) -> str:
    """A ``--log.level`` value: one of :data:`LEVELS`, or ``warn``."""
    name = _ALIASES.get(text.lower(), text.lower())
    if name not in LEVELS:
        raise argparse.ArgumentTypeError(f"{text!r}: expected debug, info, warn or error")
    return name


def _fields(record: logging.LogRecord) -> dict[str, object]:
    return {k: v for k, v in sorted(vars(record).items())
            if k not in _STANDARD and k.isupper() and k != "MESSAGE"}


def _timestamp(record: logging.LogRecord) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{stamp}.{int(record.msecs):03d}Z"


def _logfmt_value(value: object) -> str:
    text = str(value)
    if text and not any(c in text for c in ' "=\\') and text.isprintable():
        return text
    return json.dumps(text, ensure_ascii=False)


class LogfmtFormatter(logging.Formatter):
    """``ts=2026-12-02T05:30:00.123Z level=warn msg="GPU 1 lost" GPU=GPU-abc``."""

    def format(self, record: logging.LogRecord) -> str:
        pairs: dict[str, object] = {"ts": _timestamp(record),
                                    "level": _short(record), "msg": record.getMessage()}
        if record.exc_info:
            pairs["err"] = self.formatException(record.exc_info)
        pairs.update(_fields(record))
        return " ".join(f"{k}={_logfmt_value(v)}" for k, v in pairs.items())


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ts, level, msg, the structured fields (and err)."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {"ts": _timestamp(record), "level": _short(record),
                                  "msg": record.getMessage()}
        if record.exc_info:
            doc["err"] = self.formatException(record.exc_info)
        doc.update({k: str(v) for k, v in _fields(record).items()})
        return json.dumps(doc, ensure_ascii=False)


def _short(record: logging.LogRecord) -> str:
    return {"WARNING": "warn", "CRITICAL": "error"}.get(record.levelname,
                                                        record.levelname.lower())


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


def setup(level: str = "info", fmt: str = "logfmt") -> None:
    """Configure the root logger once; ``level`` in :data:`LEVELS`, ``fmt`` in
    :data:`FORMATS` (stderr only: the journal takes structured fields)."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    handler = _journal_handler()
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    root.addHandler(handler)
    root.setLevel(_ALIASES.get(level, level).upper())
