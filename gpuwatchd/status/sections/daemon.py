"""The ``daemon`` section: the daemon's own state, and whether its control loop is alive.

It heads the document (not a registry row): besides the Snapshot it needs the daemon's facts
(:class:`DaemonInfo`), and its table line needs the client's wall clock for the uptime.
Health: a daemon that is stopping, has not ticked yet, or whose last tick is too old.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gpuwatchd.clock import span
from gpuwatchd.model import Snapshot
from gpuwatchd.status.sections import Json, Section, seconds
from gpuwatchd.status.text import Style, ago

DaemonState = Literal["starting", "running", "reloading", "stopping"]
# The loop is "stalled" when its last tick is older than this many intervals plus a grace
# period for a tick that waited on slow collectors (a BMC's 2 s timeout, retried once).
STALL_AFTER_INTERVALS = 3
STALL_GRACE_SECONDS = 5.0


@dataclass(frozen=True)
class DaemonInfo:
    """What the daemon knows about itself (the status provider fills it at each request)."""

    version: str
    pid: int
    started_wall: float
    config_path: str | None
    interval_seconds: float
    state: DaemonState
    ticks: int
    last_tick_mono: float  # 0.0 before the first tick


def build(snapshot: Snapshot, info: DaemonInfo, now_mono: float) -> Section:
    tick_age = seconds(now_mono - info.last_tick_mono) if info.ticks > 0 else None
    data = {
        "version": info.version,
        "pid": info.pid,
        "state": info.state,
        "started_wall": info.started_wall,
        "config_path": info.config_path,
        "interval_seconds": info.interval_seconds,
        "ticks": info.ticks,
        "last_tick_age_seconds": tick_age,
        "snapshot_seq": snapshot.seq,
        "snapshot_wall": snapshot.taken_wall,
    }
    reasons = []
    stall = STALL_AFTER_INTERVALS * info.interval_seconds + STALL_GRACE_SECONDS
    if info.state == "stopping":
        reasons.append("daemon is stopping")
    elif tick_age is None:
        reasons.append(f"daemon is {info.state}: no tick completed yet")
    elif tick_age > stall:
        reasons.append(f"control loop stalled: last tick {tick_age:.0f} s ago")
    return Section(data, tuple(reasons))


def render(daemon: Json, style: Style, now_wall: float) -> list[str]:
    state = daemon["state"]
    parts = [f"gpuwatchd {daemon['version']}",
             style.paint(state, "good" if state == "running" else "warn"),
             f"pid {daemon['pid']}",
             f"up {span(now_wall - float(daemon['started_wall']))}",
             f"interval {float(daemon['interval_seconds']):g}s",
             f"last tick {ago(daemon['last_tick_age_seconds'])}"]
    lines = ["  ".join(parts)]
    if daemon.get("config_path"):
        lines.append(f"config  {daemon['config_path']}")
    return lines
