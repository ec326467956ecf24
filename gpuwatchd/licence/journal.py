"""Line sources for the gridd journal: a ``journalctl --follow`` helper and an in-memory queue.

The collector only ever calls ``lines()`` (new lines since the last call, never blocking) and
``close()``, so tests and the simulator feed lines without journald. The real follower runs
one ``journalctl`` process for the life of the daemon, read by a daemon thread into a bounded
buffer; if it exits (journald restarted, no journal in a container) it is restarted at most
once per ``restart_seconds``.

Command-line equivalent: ``journalctl -u nvidia-gridd -f -o cat``.
"""

from __future__ import annotations

import collections
import logging
import subprocess
import threading
from collections.abc import Sequence
from typing import IO, Protocol

from gpuwatchd.clock import Clock
from gpuwatchd.licence.commands import command_env
from gpuwatchd.licence.gridd import UNIT

log = logging.getLogger(__name__)

JOURNAL_ARGV = ("journalctl", f"--unit={UNIT}", "--follow", "--lines=0", "--output=cat",
                "--no-pager", "--quiet")
MAX_BUFFERED_LINES = 1000  # gridd logs a few lines per lease; 1000 absorbs a restart storm


class LineSource(Protocol):
    """Where gridd's log lines come from."""

    def lines(self) -> list[str]:
        """Lines that arrived since the last call (never blocks)."""

    def close(self) -> None:
        """Stop following."""


class QueueLineSource:
    """Lines pushed by the caller (tests, the simulator)."""

    def __init__(self) -> None:
        self._lines: collections.deque[str] = collections.deque(maxlen=MAX_BUFFERED_LINES)
        self._lock = threading.Lock()

    def push(self, *lines: str) -> None:
        with self._lock:
            self._lines.extend(lines)

    def lines(self) -> list[str]:
        with self._lock:
            out = list(self._lines)
            self._lines.clear()
        return out

    def close(self) -> None:
        """Nothing to stop."""


class JournalFollower:
    """Follows a journal with a helper process; ``argv`` is fixed by the code, not the config."""

    def __init__(self, clock: Clock, argv: Sequence[str] = JOURNAL_ARGV,
                 restart_seconds: float = 300.0) -> None:
        self._clock = clock
        self._argv = tuple(argv)
        self._restart = restart_seconds
        self._buffer = QueueLineSource()
        self._proc: subprocess.Popen[str] | None = None
        self._thread: threading.Thread | None = None
        self._next_start = float("-inf")
        self._closed = False
        self.error = ""

    def lines(self) -> list[str]:
        """Drain the buffer; (re)start the helper when it is not running and may be."""
        if not self._closed and not self.running and self._clock.monotonic() >= self._next_start:
            self._start()
        return self._buffer.lines()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _start(self) -> None:
        self._next_start = self._clock.monotonic() + self._restart
        try:
            proc = subprocess.Popen(self._argv, stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                                    text=True, errors="replace", env=command_env())
        except OSError as exc:
            if self.error != str(exc):
                log.info("licence: cannot follow the gridd journal: %s", exc)
            self.error = str(exc)
            return
        self.error = ""
        self._proc = proc
        assert proc.stdout is not None  # noqa: S101 - stdout=PIPE
        self._thread = threading.Thread(target=self._read, args=(proc.stdout,),
                                        name="gridd-journal", daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._buffer.push(line.rstrip("\n"))

    def close(self) -> None:
        """Terminate the helper (then kill it if it does not go within 2 s)."""
        self._closed = True
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=2.0)
        if proc.stdout is not None:
            proc.stdout.close()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
