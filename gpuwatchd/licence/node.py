"""Node-level checks in one pass: gridd's unit and journal, gridd.conf, tokens, clock.

Each source is injected (command runner, journal line source, filesystem functions, adjtimex),
so the tests run every case without systemd, journald or a vGPU guest.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from gpuwatchd.clock import Clock
from gpuwatchd.licence import griddconf, tokens
from gpuwatchd.licence.commands import Runner
from gpuwatchd.licence.gridd import EventCounter, GriddEvent, UnitState, read_unit
from gpuwatchd.licence.journal import LineSource
from gpuwatchd.licence.timesync import ClockSync, SyncState

DEFAULT_TOKEN_FOLDER = "ClientConfigToken"  # noqa: S105 - beside gridd.conf unless ClientConfigTokenPath
# The GPU operator's driver container root as the host sees it (and a pod that mounts it
# read-only, monitoring/kubernetes/daemonset.yaml): its gridd.conf is under it
OPERATOR_DRIVER_ROOT = "/run/nvidia/driver"


@dataclass(frozen=True)
class NodeReport:
    """One pass of the node checks."""

    unit: UnitState
    conf: griddconf.GriddConf
    tokens: tokens.TokenReport
    sync: SyncState
    events: dict[str, int] | None = None  # None: the journal is not followed
    last_event: GriddEvent | None = None
    down_since: float | None = None  # wall time gridd was first seen not active
    started_wall: float | None = None  # when gridd last became active (wall clock)
    clock_jumps: dict[str, int] = field(default_factory=dict)

    @property
    def legacy_server(self) -> bool:
        """A legacy licence server is configured (tokens are then optional)."""
        return bool(self.conf.get("ServerAddress"))


@dataclass(frozen=True)
class NodePaths:
    """Where the files are; ``root`` prefixes every path (the simulator's temporary tree)."""

    gridd_conf: str = "/etc/nvidia/gridd.conf"
    token_dir: str | None = None
    root: str = ""

    def conf_path(self) -> str:
        """gridd.conf; where it is missing but the GPU operator's driver root has one, that."""
        path = self.root + self.gridd_conf
        operator = self.root + OPERATOR_DRIVER_ROOT + self.gridd_conf
        if not os.path.exists(path) and os.path.exists(operator):
            return operator
        return path

    def token_path(self, conf: griddconf.GriddConf) -> str:
        """Explicit setting, else gridd.conf's ClientConfigTokenPath, else beside gridd.conf
        (both inside the GPU operator's driver root when gridd.conf was read from there)."""
        if self.token_dir:
            return self.root + self.token_dir
        operator = self.root + OPERATOR_DRIVER_ROOT
        base = operator if conf.path.startswith(operator + "/") else self.root
        folder = conf.get("ClientConfigTokenPath")
        if folder:
            return base + folder
        return os.path.join(os.path.dirname(conf.path), DEFAULT_TOKEN_FOLDER)


class NodeChecker:
    """Runs the node checks; keeps the few facts that need memory (down since, events)."""

    def __init__(self, clock: Clock, runner: Runner, paths: NodePaths, *,
                 lines: LineSource | None, sync: ClockSync,
                 token_max_age_seconds: float | None = None,
                 listdir: tokens.ListFn = os.listdir, stat_fn: tokens.StatFn = os.stat) -> None:
        self._clock = clock
        self._runner = runner
        self._paths = paths
        self._lines = lines
        self._sync = sync
        self._max_age = token_max_age_seconds
        self._listdir = listdir
        self._stat = stat_fn
        self._events = EventCounter(clock)
        self._down_since: float | None = None

    def check(self) -> NodeReport:
        """One pass (``systemctl show`` + ``timedatectl`` + a few ``stat`` calls)."""
        now, mono = self._clock.time(), self._clock.monotonic()
        self._sync.note(now, mono)
        unit = read_unit(self._runner)
        if unit.installed and unit.up is False:
            self._down_since = self._down_since if self._down_since is not None else now
        elif unit.up:
            self._down_since = None
        conf = griddconf.read(self._paths.conf_path())
        folder = self._paths.token_path(conf)
        report = tokens.check(folder, now, self._max_age, self._listdir, self._stat)
        if self._lines is not None:
            self._events.feed(self._lines.lines())
        started = (now - (mono - unit.active_since_monotonic)
                   if unit.up and unit.active_since_monotonic is not None else None)
        return NodeReport(unit, conf, report, self._sync.read(),
                          dict(self._events.counts) if self._lines is not None else None,
                          self._events.latest(), self._down_since, started,
                          dict(self._sync.jumps))

    def close(self) -> None:
        if self._lines is not None:
            self._lines.close()
