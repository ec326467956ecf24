"""Driver calls on their own thread, each under a deadline: a BMC that stops answering never
blocks the control loop (DESIGN.md: "a missed deadline is a stale input, never a blocked loop").

:meth:`Actuator.call` runs one function on the worker and waits at most ``deadline_seconds``.
A call that misses it raises DeadlineExceeded (a Transient: counted as a failed write, and
the controller goes to failsafe after ``write_failures_to_failsafe`` of them); while it is
still hung, further calls fail at once instead of queueing behind it. The worker is a daemon
thread, so a hung BMC call never keeps the process from exiting.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from gpuwatchd.errors import DeadlineExceeded

T = TypeVar("T")


class Job:
    """One driver call: ``done`` is set when it returned (``value``) or raised (``error``)."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.value = self.fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            self.error = exc
        self.done.set()


class Actuator:
    """One worker thread for one driver's calls."""

    def __init__(self, name: str, deadline_seconds: float) -> None:
        self.name = name
        self.deadline_seconds = deadline_seconds
        self._calls: queue.Queue[Job | None] = queue.Queue()
        self._current: Job | None = None
        self._thread = threading.Thread(target=self._loop, name=f"fan-{name}", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while (call := self._calls.get()) is not None:
            call.run()

    @property
    def busy(self) -> bool:
        """True while an earlier call has not returned (a hung BMC)."""
        return self._current is not None and not self._current.done.is_set()

    def submit(self, fn: Callable[[], Any], what: str = "call") -> Job:
        """Queue ``fn`` without waiting; the caller checks ``job.done`` later."""
        if self.busy:
            raise DeadlineExceeded(f"{self.name}: {what} not sent: the previous BMC call is "
                                   "still waiting for an answer")
        job = Job(fn)
        self._current = job
        self._calls.put(job)
        return job

    def call(self, fn: Callable[[], T], deadline_seconds: float | None = None,
             what: str = "call") -> T:
        """Run ``fn`` on the worker; its exception is re-raised here."""
        job = self.submit(fn, what)
        limit = self.deadline_seconds if deadline_seconds is None else deadline_seconds
        if not job.done.wait(limit):
            raise DeadlineExceeded(f"{self.name}: {what} got no answer within {limit:g} s")
        if job.error is not None:
            raise job.error
        return job.value

    def drain(self, timeout_seconds: float) -> bool:
        """Wait (at most ``timeout_seconds``) for a hung call to return; True if idle."""
        current = self._current
        return current is None or current.done.wait(timeout_seconds)

    def close(self) -> None:
        self._calls.put(None)
