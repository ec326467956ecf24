"""One daemon thread that runs hardware calls one at a time, each waited on under a deadline.

The one mechanism behind "a missed deadline is a stale input, never a blocked loop"
(DESIGN.md): collectors (gpuwatchd.collectors.runner) and fan drivers
(gpuwatchd.control.actuator) both hand their calls to a :class:`Worker`. The caller waits at
most its deadline; a call that is still hung makes further calls fail at once instead of
queueing behind it; the thread is a daemon, so a hung call never keeps the process alive.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from gpuwatchd.errors import DeadlineExceeded

T = TypeVar("T")


class Job:
    """One call: ``done`` is set when it returned (``value``) or raised (``error``)."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn
        self.done = threading.Event()
        self.started = time.perf_counter()
        self.duration = 0.0
        self.value: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.value = self.fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            self.error = exc
        self.duration = time.perf_counter() - self.started
        self.done.set()

    def age_seconds(self) -> float:
        """Seconds since the job was queued."""
        return time.perf_counter() - self.started


class Worker:
    """A daemon thread for one collector's or one driver's calls."""

    def __init__(self, name: str, deadline_seconds: float = 1.0,
                 thread_name: str | None = None) -> None:
        self.name = name  # names the device in error messages
        self.deadline_seconds = deadline_seconds
        self._jobs: queue.Queue[Job | None] = queue.Queue()
        self.current: Job | None = None
        self._thread = threading.Thread(target=self._loop, name=thread_name or name,
                                        daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while (job := self._jobs.get()) is not None:
            job.run()

    @property
    def busy(self) -> bool:
        """True while an earlier call has not returned (a hung device)."""
        return self.current is not None and not self.current.done.is_set()

    def submit(self, fn: Callable[[], Any], what: str = "call") -> Job:
        """Queue ``fn`` without waiting; the caller checks ``job.done`` later."""
        if self.busy:
            raise DeadlineExceeded(f"{self.name}: {what} not sent: the previous call is "
                                   "still waiting for an answer")
        job = Job(fn)
        self.current = job
        self._jobs.put(job)
        return job

    def call(self, fn: Callable[[], T], deadline_seconds: float | None = None,
             what: str = "call") -> T:
        """Run ``fn`` on the worker and wait for it; its exception is re-raised here."""
        job = self.submit(fn, what)
        limit = self.deadline_seconds if deadline_seconds is None else deadline_seconds
        if not job.done.wait(limit):
            raise DeadlineExceeded(f"{self.name}: {what} got no answer within {limit:g} s")
        if job.error is not None:
            raise job.error
        return job.value

    def drain(self, timeout_seconds: float) -> bool:
        """Wait (at most ``timeout_seconds``) for a hung call to return; True if idle."""
        current = self.current
        return current is None or current.done.wait(timeout_seconds)

    def close(self) -> None:
        """Let the thread end once the current call (if any) returns."""
        self._jobs.put(None)
