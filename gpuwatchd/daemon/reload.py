"""Synchronous reloads: a ``reload`` on the status socket waits for the loop thread's outcome.

SIGHUP only raises a flag (``systemctl reload`` with ``kill -HUP`` returned before the daemon
read the file, and reported success for a refused one, issue 16). ``gpuwatchctl reload``
(systemd's ``ExecReload=``) sends ``{"command": "reload"}``; the connection's thread queues a
:class:`Waiter` here and blocks, bounded, until the loop thread has run the reload and handed
every queued waiter the same :class:`ReloadOutcome`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from gpuwatchd.status.document import SCHEMA


@dataclass(frozen=True)
class ReloadOutcome:
    """What one reload did: applied (from ``source``), or refused with ``reason``."""

    applied: bool
    reason: str = ""
    source: str = ""

    def document(self) -> dict[str, object]:
        """The status socket's reply to ``{"command": "reload"}``."""
        if self.applied:
            return {"schema": SCHEMA, "reload": "applied", "source": self.source}
        return {"schema": SCHEMA, "reload": "refused", "reason": self.reason}


class Waiter:
    """One ``reload`` request waiting for the loop thread's outcome."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self.outcome: ReloadOutcome | None = None

    def finish(self, outcome: ReloadOutcome) -> None:
        self.outcome = outcome
        self._done.set()

    def wait(self, seconds: float) -> ReloadOutcome | None:
        """The outcome, or None when the loop did not run the reload within ``seconds``."""
        self._done.wait(seconds)
        return self.outcome


class Waiters:
    """The queued requests; thread-safe (connection threads add, the loop thread takes)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queued: list[Waiter] = []

    def add(self) -> Waiter:
        waiter = Waiter()
        with self._lock:
            self._queued.append(waiter)
        return waiter

    def take(self) -> list[Waiter]:
        with self._lock:
            taken, self._queued = self._queued, []
        return taken
