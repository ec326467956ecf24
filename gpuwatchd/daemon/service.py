"""The daemon: the tick loop, signals, reload, and sd_notify; ``main`` is ``gpuwatchd``.

Each tick (every ``interval_seconds``, on a monotonic schedule that does not drift): run the
due collectors in parallel under their deadlines, build an immutable Snapshot, let the fan
controller act on it (when configured), publish it (one reference assignment: readers never see
half a tick), then tell systemd ``WATCHDOG=1`` and a one-line ``STATUS=``. A hung hardware call
makes its collector's data stale; it never delays the tick past its deadline or a scrape.

Reload: SIGHUP, or ``{"command": "reload"}`` on the status socket (``gpuwatchctl reload``,
systemd's ``ExecReload=``), which waits for the loop thread to run it and answers applied or
refused with the file:line reason. The status socket is put back within a second when removed
(:meth:`StatusServer.ensure`); a second daemon for the same fans refuses to start
(gpuwatchd.daemon.lock).

Exit codes: 0 stopped cleanly, 1 runtime failure (e.g. the listen address is taken),
2 usage error, 6 invalid configuration.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

from gpuwatchd import __version__
from gpuwatchd.collectors import registry
from gpuwatchd.collectors.runner import CollectorRunner, run_due
from gpuwatchd.config import Config, parse_listen
from gpuwatchd.control import multi as control_multi
from gpuwatchd.daemon.lock import BmcLock, lock_path
from gpuwatchd.daemon.notify import Notifier
from gpuwatchd.daemon.reload import ReloadOutcome, Waiters
from gpuwatchd.errors import GpuwatchdError
from gpuwatchd.exporter import webconfig
from gpuwatchd.exporter.detail import Detail
from gpuwatchd.exporter.http import MetricsServer
from gpuwatchd.exporter.render import Renderer
from gpuwatchd.hardware import Hardware
from gpuwatchd.health import conditions
from gpuwatchd.health.journal import EventJournal
from gpuwatchd.links import nvml
from gpuwatchd.model import ControlReading, GpuReading, Snapshot
from gpuwatchd.status.document import DaemonInfo, DaemonState, build_status
from gpuwatchd.status.paths import default_socket
from gpuwatchd.status.server import StatusServer

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILURE = 0, 1
ENSURE_SOCKET_SECONDS = 1.0  # how often the tick checks that the status socket is in place
RELOAD_WAIT_SECONDS = 20.0  # a reload request waits this long for the loop to run it


class ControlLoop(Protocol):
    """The fan controller as the daemon sees it (gpuwatchd.control)."""

    def step(self, snapshot: Snapshot) -> ControlReading:
        """Act on one Snapshot; return the zones' and the driver's record to publish with it."""

    def release(self) -> None:
        """Hand every fan back to the BMC's automatic control (every exit path calls this)."""

    def regulating(self) -> bool:
        """False while the controller cannot regulate (the watchdog ping then stops)."""

    def reconfigure(self, config: Config) -> bool:
        """Take a reloaded config in place if only tunables changed (no hand-back, no bump)."""


@dataclass
class _State:
    """Mutable loop state, owned by the loop thread."""

    seq: int = 0
    ticks: int = 0
    last_tick_mono: float = 0.0
    phase: DaemonState = "starting"
    runners: list[CollectorRunner] = field(default_factory=list)
    socket_checked_mono: float = 0.0



class Daemon:
    """Owns the collectors, the controller, the servers and the published Snapshot."""

    def __init__(self, config: Config, hw: Hardware, config_path: str | None = None,
                 notifier: Notifier | None = None,
                 reload: Callable[[], Config] | None = None) -> None:
        self.config = config
        self.hw = nvml.shared(hw, config.gpus)  # one NVML session for all
        self.config_path = config_path
        self._notifier = notifier or Notifier()
        self._reload_fn = reload  # returns the new Config or raises ConfigError
        self._clock = self.hw.clock
        self._stop = threading.Event()
        self._reload_requested = threading.Event()
        self._wake = threading.Event()  # cuts the wait between ticks short (stop, reload)
        self._waiters = Waiters()
        self._lock: BmcLock | None = None
        self._state = _State()
        self._started_wall = self._clock.time()
        self.snapshot = Snapshot(seq=0, taken_wall=self._started_wall,
                                 taken_mono=self._clock.monotonic())
        self._control: ControlLoop | None = None
        self._metrics: MetricsServer | None = None
        self._renderer: Renderer | None = None
        self._status: StatusServer | None = None
        self._events = EventJournal()  # hardware/zone/licence changes -> journal (+ hook)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Take the BMC lock, build collectors and controller, bind the endpoints (raises on
        failure: AlreadyRunning when another daemon drives the same fans)."""
        self._relock(self.config)
        self._build(self.config)
        self._renderer = Renderer(lambda: self.snapshot, self._clock,
                                  detail=Detail(self.config.exporter.detail))
        addresses = [a for a in map(parse_listen, self.config.exporter.listen) if a]
        web_file = self.config.exporter.web_config_file
        self._metrics = MetricsServer(addresses, self._renderer.render,
                                      self.config.exporter.telemetry_path,
                                      web=webconfig.load(web_file) if web_file else None,
                                      render_gzip=self._renderer.render_gzip)
        self._metrics.start()
        socket_path = self.config.status_socket or default_socket()
        self._status = StatusServer(socket_path, self.status)
        self._status.commands["reload"] = self.reload_command
        self._status.start()
        log.info("gpuwatchd %s started: metrics on %s, status on %s, %d collector(s)",
                 __version__, ", ".join(f"{h}:{p}" for h, p in self._metrics.bound),
                 socket_path, len(self._state.runners))

    def _build(self, config: Config, control: ControlLoop | None = None) -> None:
        self._state.runners = [CollectorRunner(s, self._clock)
                               for s in registry.build_all(config, self.hw)]
        self._control = control if control is not None else _build_control(config, self.hw)
        self._events.configure(config.notify)

    def run(self) -> int:
        """Tick until stopped; always hands the fans back and closes everything.

        An unexpected error in the loop (a bug) is logged with its traceback, the fans are
        handed back, and the daemon exits 1 so that systemd restarts it (Restart=on-failure).
        """
        try:
            self._loop()
        except Exception:
            log.exception("internal error in the main loop: fans handed back to the BMC, exiting")
            return EXIT_FAILURE
        finally:
            self.shutdown()
        return EXIT_OK

    def _loop(self) -> None:
        next_tick = self._clock.monotonic()
        while not self._stop.is_set():
            if self._reload_requested.is_set():
                self._reload_requested.clear()
                self._run_reload()
            self.tick()
            self._check_socket()
            next_tick += self.config.interval_seconds
            delay = next_tick - self._clock.monotonic()
            if delay < 0:  # overran (a slow tick): start again from now, do not burst
                next_tick, delay = self._clock.monotonic(), 0.0
            self._wake.wait(delay)
            self._wake.clear()

    def _check_socket(self) -> None:
        """At most once a second: put the status socket back if someone removed it."""
        now = self._clock.monotonic()
        if self._status is None or now - self._state.socket_checked_mono < ENSURE_SOCKET_SECONDS:
            return
        self._state.socket_checked_mono = now
        self._status.ensure()

    def _run_reload(self) -> None:
        waiters = self._waiters.take()
        outcome = self._reload()
        for waiter in waiters:
            waiter.finish(outcome)

    def tick(self) -> Snapshot:
        """One iteration: collect, control, publish, notify."""
        st = self._state
        run_due(st.runners)
        st.seq += 1
        snap = Snapshot(seq=st.seq, taken_wall=self._clock.time(),
                        taken_mono=self._clock.monotonic(),
                        results=tuple(r.result for r in st.runners))
        if self._control is not None:
            snap = replace(snap, control=self._control.step(snap))
        snap = replace(snap, health=conditions.evaluate(snap, self.config.health))
        self.snapshot = snap
        self._events.observe(snap)
        if self._renderer is not None:
            self._renderer.refresh(lead_seconds=2 * self.config.interval_seconds)
        st.ticks += 1
        st.last_tick_mono = snap.taken_mono
        self._notify(snap)
        return snap

    def _notify(self, snap: Snapshot) -> None:
        fields: dict[str, str | int] = {"STATUS": summary(snap)}
        if self._state.phase == "starting":
            self._state.phase = "running"
            fields["READY"] = 1
        if self._control is None or self._control.regulating():
            fields["WATCHDOG"] = 1
        self._notifier.send(**fields)

    def _reload(self) -> ReloadOutcome:
        """Re-read the config (SIGHUP or the socket's reload); a bad one is refused and the
        old one kept."""
        if self._reload_fn is None:
            log.warning("reload requested, but there is no config file to re-read (demo)")
            return ReloadOutcome(False, "there is no config file to re-read (--demo)")
        self._state.phase = "reloading"
        self._notifier.send(RELOADING=1, STATUS="reloading configuration")
        try:
            new = self._reload_fn()
            self._relock(new)
        except GpuwatchdError as exc:
            log.error("reload refused, keeping the running configuration: %s", exc)
            outcome = ReloadOutcome(False, str(exc))
        else:
            kept = _reconfigured(self._control, new)  # tunables only: no hand-back, no bump
            if kept is not None:
                self._control = None
            self._close_hardware()
            self.config = new
            self._build(new, kept)
            log.info("configuration reloaded from %s", new.source)
            outcome = ReloadOutcome(True, source=str(new.source))
        self._state.phase = "running"
        self._notifier.send(READY=1, STATUS=summary(self.snapshot))
        return outcome

    def _relock(self, config: Config) -> None:
        """Hold the lock for the fans ``config`` drives (none without fan control); a reload
        onto another daemon's BMC is refused by AlreadyRunning before anything changes."""
        path = lock_path(config)
        if path == (self._lock.path if self._lock is not None else None):
            return
        new = BmcLock(path) if path is not None else None
        if new is not None:
            new.acquire()
        if self._lock is not None:
            self._lock.release()
        self._lock = new

    def request_stop(self) -> None:
        """Ask the loop to stop (signal handlers call this)."""
        self._stop.set()
        self._wake.set()

    def request_reload(self) -> None:
        """SIGHUP: reload at the next tick (nobody waits for the outcome)."""
        self._reload_requested.set()

    def reload_command(self, wait_seconds: float = RELOAD_WAIT_SECONDS) -> dict[str, object]:
        """The status socket's ``reload``: ask the loop thread and wait (bounded) for it."""
        waiter = self._waiters.add()
        self._reload_requested.set()
        self._wake.set()
        outcome = waiter.wait(wait_seconds)
        if outcome is None:
            return {"schema": 1, "error": "the main loop did not run the reload within "
                                          f"{wait_seconds:g} s"}
        return outcome.document()

    def shutdown(self) -> None:
        """Restore the BMC's fan control first, then stop servers and collectors."""
        self._state.phase = "stopping"
        self._notifier.send(STOPPING=1, STATUS="stopping")
        self._close_hardware()
        for server in (self._metrics, self._status):
            if server is not None:
                server.stop()
        self._metrics = self._status = None
        self._events.close()
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        self._notifier.close()

    def _close_hardware(self) -> None:
        if self._control is not None:
            try:
                self._control.release()
            except Exception:  # keep closing; ExecStopPost= is the backstop
                log.exception("restoring the BMC's fan control failed")
            self._control = None
        for runner in self._state.runners:
            runner.close()
        self._state.runners = []

    def status(self) -> dict[str, object]:
        """The status document (served on the unix socket); reads only the Snapshot."""
        st = self._state
        info = DaemonInfo(version=__version__, pid=os.getpid(), started_wall=self._started_wall,
                          config_path=self.config_path,
                          interval_seconds=self.config.interval_seconds,
                          state=st.phase,
                          ticks=st.ticks, last_tick_mono=st.last_tick_mono)
        return build_status(self.snapshot, info, self._clock.monotonic())


def _build_control(config: Config, hw: Hardware) -> ControlLoop | None:
    """The fan controller, when the config asks for one (gpuwatchd.control)."""
    return control_multi.build(config, hw)


def _reconfigured(control: ControlLoop | None, config: Config) -> ControlLoop | None:
    """``control`` if it took the reloaded config in place (gpuwatchd.control.loop)."""
    return control if control is not None and control.reconfigure(config) else None


def summary(snap: Snapshot) -> str:
    """One line for systemd's STATUS=: GPUs and hottest temperature, failing collectors."""
    gpus = snap.readings(GpuReading)
    temps = [g.temperature_celsius for g in gpus if g.temperature_celsius is not None]
    up = sum(1 for g in gpus if g.up)
    parts = [f"{up}/{len(gpus)} GPUs up"]
    if temps:
        parts.append(f"max {max(temps):.0f} C")
    failing = [r.name for r in snap.results if not r.ok]
    parts.append(f"failing: {', '.join(failing)}" if failing else "collectors ok")
    return "; ".join(parts)


def install_signals(daemon: Daemon) -> None:
    """SIGTERM/SIGINT stop the loop; SIGHUP reloads (handled in the loop thread)."""
    signal.signal(signal.SIGTERM, lambda *_: daemon.request_stop())
    signal.signal(signal.SIGINT, lambda *_: daemon.request_stop())
    signal.signal(signal.SIGHUP, lambda *_: daemon.request_reload())
