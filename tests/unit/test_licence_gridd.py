"""nvidia-gridd: unit states from ``systemctl show``, journal lines, the journal follower."""

from __future__ import annotations

import sys
import time

import pytest

from gpuwatchd.clock import ManualClock
from gpuwatchd.errors import DeadlineExceeded, NotInstalled
from gpuwatchd.licence.commands import CommandResult
from gpuwatchd.licence.gridd import EVENT_KINDS, EventCounter, classify, parse_show, read_unit
from gpuwatchd.licence.journal import JournalFollower, QueueLineSource
from tests.fakes.licence_runner import FakeRunner, show


@pytest.mark.parametrize(("active", "load", "label", "up", "installed"), [
    ("active", "loaded", "active", True, True),
    ("failed", "loaded", "failed", False, True),
    ("inactive", "loaded", "inactive", False, True),
    ("activating", "loaded", "activating", False, True),
    ("inactive", "masked", "masked", False, True),
    ("inactive", "not-found", "not_found", None, False),
])
def test_unit_states(active: str, load: str, label: str, up: bool | None,
                     installed: bool) -> None:
    runner = FakeRunner()
    runner.set_unit(active, load)
    state = read_unit(runner)
    assert (state.label, state.up, state.installed) == (label, up, installed)
    assert runner.calls[0][:3] == ("systemctl", "show", "nvidia-gridd.service")


def test_active_since_is_read_in_seconds() -> None:
    assert parse_show(show("active", since_us=12_500_000)).active_since_monotonic == 12.5
    assert parse_show(show("failed")).active_since_monotonic is None


@pytest.mark.parametrize("answer", [
    CommandResult((), 1, "", "System has not been booted with systemd as init system (PID 1)."),
    CommandResult((), 1, "", "Failed to connect to bus: No such file or directory"),
    NotInstalled("systemctl: not installed"),
])
def test_no_systemd_here_is_not_visible_not_unknown(answer: object) -> None:
    """A container (the GPU operator's layout): gridd's unit cannot be seen from here."""
    runner = FakeRunner()
    runner.set("systemctl", "show", answer)  # type: ignore[arg-type]
    state = read_unit(runner)
    assert (state.label, state.visible, state.up, state.known) == ("not_visible", False,
                                                                   None, False)


@pytest.mark.parametrize("answer", [
    DeadlineExceeded("systemctl: no answer within 5 s"),
    CommandResult((), 0, "garbage\n"),
])
def test_unknown_unit_state(answer: object) -> None:
    runner = FakeRunner()
    runner.set("systemctl", "show", answer)  # type: ignore[arg-type]
    state = read_unit(runner)
    assert state.label == "unknown"
    assert state.up is None
    assert state.error


# Verbatim lines from gridd-licence.md (d), plus the nvidia-settings renewal wordings.
LINES = [
    ("Started (1976)", "started"),
    ("NLS initialized", "started"),
    ("Acquiring license. (Info: license.nvidia.space; NVIDIA RTX Virtual Workstation)",
     "acquiring"),
    ("License acquired successfully. (Info: license.nvidia.space, NVIDIA RTX Virtual "
     "Workstation; Expiry: 2023-1-29 22:3:0 GMT)", "acquired"),
    ("License acquired successfully. (Info: http://10.103.15.200:7070/request; NVIDIA Virtual "
     "Compute Server)", "acquired"),
    ("Your system is licensed for GRID vGPU.", "acquired"),
    ("Valid GRID license not found. GPU features and performance are restricted. To enable "
     "full functionality please configure licensing details.", "not_found"),
    ("Failed to update local trusted store - Maximum buffer size exceeded", "register_failed"),
    ("Failed to register client (2)", "register_failed"),
    ("Failed to acquire license from 192.0.2.7", "acquire_failed"),
    ("Failed to acquire NVIDIA GRID Virtual Workstation license.", "acquire_failed"),
    ("Configuration parameter ( ServerAddress  FeatureType) not set", "config_error"),
    ("Configuration parameter ( ServerAddress ) not set", "other"),
    ("Unable to open directory /etc/nvidia/ClientConfigToken (No such file or directory)",
     "config_error"),
    ("Invalid feature type requested", "config_error"),
    ("Clock windback has been detected", "clock_windback"),
    ("Renewing license for NVIDIA Virtual Compute Server.", "renewing"),
    ("Failed to renew license for NVIDIA Virtual Compute Server, expiring at 2025-6-18 16:49:0 "
     "GMT.", "renew_failed"),
    ("NVIDIA Virtual Compute Server license has expired.", "expired"),
    ("Ignore service provider and node-locked licensing", "other"),
]


@pytest.mark.parametrize(("line", "kind"), LINES)
def test_journal_lines(line: str, kind: str) -> None:
    assert classify(line) == kind
    assert kind in EVENT_KINDS


def test_event_counter_counts_and_remembers_the_latest() -> None:
    clock = ManualClock()
    counter = EventCounter(clock)
    assert counter.counts == dict.fromkeys(EVENT_KINDS, 0)
    source = QueueLineSource()
    source.push(*(line for line, _ in LINES[:6]), "", "   ")
    events = counter.feed(source.lines())
    assert len(events) == 6
    assert counter.counts["acquired"] == 3
    assert source.lines() == []
    clock.advance(10)
    counter.feed(["Failed to register client (2)", "something else"])
    latest = counter.latest()
    assert latest is not None and latest.kind == "register_failed"
    assert latest.wall == clock.time()
    assert counter.counts["other"] == 1


def test_follower_reads_a_real_helper_process_and_stops_it() -> None:
    """The follower's plumbing with a stand-in for journalctl (no journald needed)."""
    script = ("import sys, time\n"
              "print('Started (1976)', flush=True)\n"
              "print('License acquired successfully. (Info: x; y)', flush=True)\n"
              "time.sleep(30)\n")
    follower = JournalFollower(ManualClock(), argv=(sys.executable, "-c", script))
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 10
        while len(lines) < 2 and time.monotonic() < deadline:
            lines += follower.lines()
            time.sleep(0.02)
        assert lines == ["Started (1976)", "License acquired successfully. (Info: x; y)"]
        assert follower.running
    finally:
        follower.close()
    assert not follower.running
    assert follower.lines() == []  # closed: never restarted


def test_follower_without_journalctl_backs_off() -> None:
    clock = ManualClock()
    follower = JournalFollower(clock, argv=("/nonexistent/journalctl",), restart_seconds=300)
    assert follower.lines() == []
    first = follower.error
    assert first
    follower.error = ""
    clock.advance(100)
    follower.lines()
    assert follower.error == ""  # not retried within restart_seconds
    clock.advance(250)
    follower.lines()
    assert follower.error == first
    follower.close()
