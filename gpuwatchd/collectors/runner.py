"""Runs collectors on their own worker threads, each call under a deadline.

A hardware call can hang (NVML stuck in D state, a BMC that stops answering). The loop never
waits on it past the collector's deadline: the attempt is recorded as failed, the last good
data ages towards stale, and while the worker is still stuck no new attempt is queued behind
it. Workers are daemon threads, so a hung call never blocks the process from exiting.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable

from gpuwatchd.clock import Clock
from gpuwatchd.collectors import Scheduled
from gpuwatchd.errors import GpuwatchdError
from gpuwatchd.model import Collected, CollectorResult
from gpuwatchd.worker import Job, Worker

log = logging.getLogger(__name__)

STALE_AFTER_INTERVALS = 3  # data older than 3 intervals (plus the deadline) is not served
DUE_SLACK_RATIO = 0.1  # a collect may start this fraction of its interval early


class Stuck(enum.Enum):
    """A failed attempt that raised nothing: the collect did not come back in time."""

    HUNG = enum.auto()  # the previous collect is still running: none queued behind it
    DEADLINE = enum.auto()  # this collect missed its deadline


FailKind = Stuck | type[BaseException]  # what failed, to log each change of it only once


class CollectorRunner:
    """Schedules one collector, enforces its deadline and keeps its latest result."""

    def __init__(self, scheduled: Scheduled, clock: Clock) -> None:
        self.scheduled = scheduled
        self.name = scheduled.collector.name
        self._clock = clock
        self._worker = Worker(self.name, scheduled.deadline_seconds,
                              thread_name=f"collect-{self.name}")
        self._next_due = float("-inf")
        self._job: Job | None = None
        self._fail_kind: FailKind | None = None
        stale = STALE_AFTER_INTERVALS * scheduled.interval_seconds + scheduled.deadline_seconds
        self.result = CollectorResult(self.name, ok=False, duration_seconds=0.0, updated_wall=0.0,
                                      updated_mono=0.0, stale_after_seconds=stale,
                                      error="not collected yet")

    def start_if_due(self) -> bool:
        """Queue a collect if it is due; False if not due or the last one is still hung."""
        now = self._clock.monotonic()
        interval = self.scheduled.interval_seconds
        # Due on a fixed grid, with slack: the loop ticks at the same cadence, and a tick that
        # starts a few microseconds earlier than the last one did must not skip a collect.
        if now < self._next_due - DUE_SLACK_RATIO * interval:
            return False
        base = self._next_due if self._next_due > now - interval else now
        self._next_due = base + interval
        if self._worker.busy:
            hung = self._worker.current.age_seconds() if self._worker.current else 0.0
            self._fail(f"previous collect still running after {hung:.1f} s (hung call)", 0.0,
                       kind=Stuck.HUNG)
            return False
        self._job = self._worker.submit(self.scheduled.collector.collect, "collect")
        return True

    def finish(self) -> CollectorResult:
        """Wait for the queued collect until its deadline and record the outcome."""
        job, self._job = self._job, None
        if job is None:
            return self.result
        remaining = self.scheduled.deadline_seconds - job.age_seconds()
        if not job.done.wait(max(0.0, remaining)):
            self._fail(f"deadline of {self.scheduled.deadline_seconds:g} s exceeded",
                       self.scheduled.deadline_seconds, kind=Stuck.DEADLINE)
        elif job.error is not None:
            self._fail(self._describe(job.error), job.duration, kind=type(job.error))
        else:
            assert job.value is not None  # noqa: S101 - set whenever error is None
            self._succeed(job.value, job.duration)
        return self.result

    def _succeed(self, collected: Collected, duration: float) -> None:
        self._fail_kind = None
        if not self.result.ok and self.result.updated_mono > 0.0:
            log.info("collector %s recovered", self.name, extra={"COLLECTOR": self.name})
        self.result = CollectorResult(
            self.name, ok=True, duration_seconds=duration, updated_wall=self._clock.time(),
            updated_mono=self._clock.monotonic(),
            stale_after_seconds=self.result.stale_after_seconds, collected=collected)

    def _fail(self, error: str, duration: float, kind: FailKind) -> None:
        if self.result.ok or self._fail_kind != kind:  # log transitions, not every tick
            self._fail_kind = kind
            log.warning("collector %s failed: %s", self.name, error,
                        extra={"COLLECTOR": self.name})
        old = self.result
        self.result = CollectorResult(
            self.name, ok=False, duration_seconds=duration, updated_wall=old.updated_wall,
            updated_mono=old.updated_mono, stale_after_seconds=old.stale_after_seconds,
            error=error, collected=old.collected)

    def _describe(self, exc: BaseException) -> str:
        if isinstance(exc, GpuwatchdError):
            return f"{type(exc).__name__}: {exc}"
        log.error("collector %s raised an unexpected %s", self.name, type(exc).__name__,
                  exc_info=exc, extra={"COLLECTOR": self.name})
        return f"internal error: {type(exc).__name__}: {exc}"

    def close(self) -> None:
        """Close the collector (unless it is hung) and stop the worker."""
        if not self._worker.busy:
            try:
                self.scheduled.collector.close()
            except Exception:
                log.exception("closing collector %s failed", self.name)
        self._worker.close()


def run_due(runners: Iterable[CollectorRunner]) -> None:
    """Start every due collector, then wait for each (they run in parallel)."""
    started = [runner for runner in runners if runner.start_if_due()]
    for runner in started:
        runner.finish()
