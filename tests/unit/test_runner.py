"""CollectorRunner scheduling: one collect per interval on a grid, jitter never skips one."""

from __future__ import annotations

from gpuwatchd.clock import ManualClock
from gpuwatchd.collectors import Scheduled
from gpuwatchd.collectors.runner import CollectorRunner
from gpuwatchd.errors import Transient
from gpuwatchd.model import Collected


class Counting:
    name = "counting"

    def __init__(self) -> None:
        self.calls = 0
        self.fail = False

    def collect(self) -> Collected:
        self.calls += 1
        if self.fail:
            raise Transient("BMC did not answer")
        return Collected()

    def close(self) -> None:
        pass


def runner_for(interval: float) -> tuple[CollectorRunner, Counting, ManualClock]:
    clock = ManualClock()
    collector = Counting()
    return CollectorRunner(Scheduled(collector, interval, 0.5), clock), collector, clock


def test_tick_jitter_does_not_skip_collects() -> None:
    """Ticks 1 s apart, each a few ms early or late: every tick collects (was every other)."""
    runner, collector, clock = runner_for(1.0)
    for jitter in (0.004, -0.003, 0.002, -0.004, 0.0, 0.003, -0.002, 0.001):
        clock.advance(1.0 + jitter)
        assert runner.start_if_due()
        runner.finish()
    assert collector.calls == 8


def test_slower_collector_runs_once_per_its_interval() -> None:
    runner, _, clock = runner_for(5.0)
    started = 0
    for _ in range(30):  # 30 one-second ticks
        if runner.start_if_due():
            runner.finish()
            started += 1
        clock.advance(1.0)
    assert started == 6


def test_failure_keeps_last_good_data_and_reports_error() -> None:
    runner, collector, clock = runner_for(1.0)
    runner.start_if_due()
    good = runner.finish()
    assert good.ok and good.updated_mono == clock.monotonic()
    collector.fail = True
    clock.advance(1.0)
    runner.start_if_due()
    bad = runner.finish()
    assert not bad.ok and "BMC did not answer" in bad.error
    assert bad.updated_mono == good.updated_mono
    assert not bad.is_stale(clock.monotonic())
    clock.advance(bad.stale_after_seconds)
    assert bad.is_stale(clock.monotonic())
