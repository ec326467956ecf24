"""The events into the journal: one log record per event, with its MESSAGE_ID and fields.

Under systemd the records go to the journal with their fields (gpuwatchd.daemon.logs: upper-
case ``extra`` keys become journal fields; the level becomes PRIORITY=: critical 2, warning 4,
info 6); on stderr they are logfmt or JSON lines with the same fields.
``journalctl -u gpuwatchd -o verbose MESSAGE_ID=f7cd193888464239ae7d7592103d2537`` lists the
failed fans.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from gpuwatchd.config.schema import NotifyConfig
from gpuwatchd.health import events, hook
from gpuwatchd.health.events import Event, Memory
from gpuwatchd.model import Severity, Snapshot

log = logging.getLogger("gpuwatchd.events")
LEVELS: dict[Severity, int] = {"critical": logging.CRITICAL, "warning": logging.WARNING,
                               "info": logging.INFO}


def emit(found: Iterable[Event], logger: logging.Logger = log) -> None:
    """Log each event once, at the level of its severity."""
    for e in found:
        logger.log(LEVELS[e.severity], "%s", e.message,
                   extra={"MESSAGE_ID": e.message_id, **dict(e.fields)})


class EventJournal:
    """Compares each published Snapshot with the last, logs the changes, offers them to the
    notification hook (if configured). Called from the daemon's loop thread only."""

    def __init__(self) -> None:
        self._memory = Memory()
        self._hook: hook.Hook | None = None

    def configure(self, config: NotifyConfig) -> None:
        """(Re)start the notification hook for ``config`` (none when it sets no target)."""
        self.close()
        self._hook = hook.build(config)

    def observe(self, snapshot: Snapshot) -> tuple[Event, ...]:
        found, self._memory = events.diff(self._memory, snapshot)
        emit(found)
        if self._hook is not None and found:
            self._hook.offer(found)
        return found

    def close(self) -> None:
        if self._hook is not None:
            self._hook.close()
            self._hook = None
