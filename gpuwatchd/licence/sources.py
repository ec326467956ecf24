"""Where the licence watch reads from, as one injectable bundle (``Hardware.licence``).

The real node uses the defaults; the simulator and the tests pass their own runner (canned
``systemctl``/``nvidia-smi``/``timedatectl`` answers), journal line source, file root and
adjtimex reader.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from gpuwatchd.clock import Clock
from gpuwatchd.licence import tokens
from gpuwatchd.licence.commands import Runner, run_command
from gpuwatchd.licence.journal import JournalFollower, LineSource
from gpuwatchd.licence.timesync import read_adjtimex


def follow_journal(clock: Clock) -> LineSource:
    """The real gridd journal (``journalctl --follow``)."""
    return JournalFollower(clock)


@dataclass(frozen=True)
class LicenceSources:
    """The licence watch's roots and handles."""

    runner: Runner = run_command
    journal: Callable[[Clock], LineSource] = follow_journal
    root: str = ""  # prefixed to gridd_conf and the token folder
    adjtimex: Callable[[], bool | None] = read_adjtimex
    listdir: tokens.ListFn = os.listdir
    stat_fn: tokens.StatFn = os.stat
