"""The status document and the unix-socket server that serves it (the client: status_view).

``gpuwatchctl status`` asks the running daemon over a unix stream socket (mode 0660, group
``gpuwatchd``) and never touches hardware itself: a second IPMI client would compete with the
daemon. Protocol: one request line ``{"command": "status"}``, one JSON reply line, close.
Command-line equivalent:
``echo '{"command": "status"}' | socat - UNIX-CONNECT:/run/gpuwatchd/status.sock``.

The document (``"schema": 1``) is built from the published Snapshot by :func:`build_status`: a
``daemon`` section, a ``health`` verdict with its reasons, then one section per entry of
:data:`SECTIONS`. New keys may be added under schema 1; renaming or removing one bumps it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from gpuwatchd.model import CollectorResult, GpuReading, NvmlReading, Snapshot
from gpuwatchd.status.client import (
    AccessDenied,
    Hangup,
    NotRunning,
    ProtocolError,
    QueryError,
    TooLong,
    query,
    read_line,
)
from gpuwatchd.status.paths import (
    SOCKET_GROUP,
    StatusServerError,
    clear_stale,
    prepare_dir,
    set_group,
)
from gpuwatchd.status.sections import bmc as status_bmc
from gpuwatchd.status.sections import hwmon as status_hwmon
from gpuwatchd.status.sections import licence as licence_view

__all__ = ["AccessDenied", "DaemonInfo", "NotRunning", "ProtocolError", "QueryError",
           "StatusServer", "StatusServerError", "build_status", "query"]

log = logging.getLogger(__name__)

SCHEMA = 1
DaemonState = Literal["starting", "running", "reloading", "stopping"]
# The loop is "stalled" when its last tick is older than this many intervals plus a grace
# period for a tick that waited on slow collectors (a BMC's 2 s timeout, retried once).
STALL_AFTER_INTERVALS = 3
STALL_GRACE_SECONDS = 5.0

Json = dict[str, Any]
T = TypeVar("T")


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


@dataclass(frozen=True)
class Section:
    """One section of the document: JSON-ready data, plus health reasons (empty = fine)."""

    data: object
    reasons: tuple[str, ...] = ()


SectionBuilder = Callable[[Snapshot, float], Section]


def build_status(snapshot: Snapshot, daemon: DaemonInfo, now_mono: float) -> Json:
    """The versioned status document for ``snapshot`` as seen at ``now_mono``.

    Pure: reads no clock and no hardware, so the same inputs give the same document.
    """
    daemon_section = _daemon(snapshot, daemon, now_mono)
    reasons = list(daemon_section.reasons)
    sections: Json = {}
    for name, builder in SECTIONS.items():
        section = builder(snapshot, now_mono)
        sections[name] = section.data
        reasons.extend(section.reasons)
    health = {"status": "degraded" if reasons else "healthy", "reasons": reasons}
    doc = {"schema": SCHEMA, "daemon": daemon_section.data, "health": health, **sections}
    return {key: _json_ready(value) for key, value in doc.items()}


def _json_ready(value: object) -> object:
    """Tuples -> lists, NaN/infinity -> None: one odd reading must not break the document."""
    if isinstance(value, dict):
        return {key: _json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _daemon(snapshot: Snapshot, info: DaemonInfo, now_mono: float) -> Section:
    tick_age = _seconds(now_mono - info.last_tick_mono) if info.ticks > 0 else None
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


def _collectors(snapshot: Snapshot, now_mono: float) -> Section:
    """Every collector's last outcome; a failing or stale one makes the node degraded."""
    rows, reasons = [], []
    for res in snapshot.results:
        age = _age(res, now_mono)
        stale = res.is_stale(now_mono)
        rows.append({"name": res.name, "ok": res.ok, "error": res.error, "age_seconds": age,
                     "duration_seconds": _seconds(res.duration_seconds), "stale": stale,
                     "stale_after_seconds": res.stale_after_seconds})
        if not res.ok:
            reasons.append(f"collector {res.name} failing: {res.error or 'unknown error'}")
        elif stale:
            reasons.append(f"collector {res.name} stale: last data {_age_text(age)} old")
    return Section(rows, tuple(reasons))


def _nvml(snapshot: Snapshot, now_mono: float) -> Section:
    """NVML as the GPU collector last saw it; ``null`` on a node with no GPU collector."""
    nvml = snapshot.readings(NvmlReading)
    if not nvml:
        return Section(None)
    first = nvml[0]
    data = {"up": first.up, "driver_version": first.driver_version, "error": first.error}
    # No GPU ever seen and no NVML is a node without GPUs (gpus.enabled: auto), not a fault;
    # with gpus.enabled: true the collector itself fails and says so.
    if not first.up and snapshot.readings(GpuReading):
        return Section(data, (f"NVML down: {first.error or 'not initialised'}",))
    return Section(data)


def _gpus(snapshot: Snapshot, now_mono: float) -> Section:
    """One entry per GPU, with the age of the collect that produced it."""
    rows, reasons = [], []
    for source, age, stale, gpu in _located(snapshot, GpuReading, now_mono):
        rows.append({
            "index": gpu.index, "uuid": gpu.uuid, "name": gpu.name, "up": gpu.up,
            "temperature_celsius": gpu.temperature_celsius,
            "margin_celsius": gpu.margin_celsius,
            "slowdown_celsius": gpu.slowdown_celsius,
            "shutdown_celsius": gpu.shutdown_celsius,
            "power_watts": gpu.power_watts,
            "power_limit_watts": gpu.power_limit_watts,
            "fan_ratios": gpu.fan_ratios,
            "error": gpu.error,
            "collector": source, "age_seconds": age, "stale": stale,
        })
        if not gpu.up:
            reasons.append(f"GPU {gpu.index} ({gpu.uuid}) down: {gpu.error or 'unknown error'}")
    return Section(rows, tuple(reasons))


def _fan_control(snapshot: Snapshot, now_mono: float) -> Section:
    """The fan controller's zones and driver; ``null`` when fan control is off."""
    if snapshot.control is None:
        return Section(None)
    ctl, zones = snapshot.control.driver, snapshot.control.zones
    reasons = [f"fan zone {z.zone} in failsafe: {z.reason}" for z in zones
               if z.mode == "failsafe"]
    if ctl.message and not reasons:
        reasons.append(f"fan control not regulating: {ctl.message}")
    elif not reasons:  # e.g. no GPU to read: the fans stay with the BMC
        reasons = [f"fan zone {z.zone} only monitoring: {z.reason}" for z in zones
                   if z.mode == "monitor" and z.reason != "starting"]
    data = {
        "driver": ctl.driver, "target": ctl.target, "manual": ctl.manual,
        "message": ctl.message, "writes": ctl.writes, "reverts": ctl.reverts,
        "write_errors": dict(ctl.write_errors), "channels": dict(ctl.channels),
        "zones": [{"zone": z.zone, "mode": z.mode, "reason": z.reason, "input": z.input_id,
                   "input_celsius": z.input_celsius, "setpoint_celsius": z.setpoint_celsius,
                   "ceiling_celsius": z.ceiling_celsius, "duty": z.duty,
                   "min_duty": z.min_duty, "max_duty": z.max_duty,
                   "failsafe_entries": dict(z.failsafe_entries)} for z in zones],
    }
    return Section(data, tuple(reasons))


def _licence(snapshot: Snapshot, now_mono: float) -> Section:
    """vGPU licences (gpuwatchd.licence.view); ``null`` on a node without licensing."""
    data, reasons = licence_view.section(snapshot, now_mono)
    return Section(data, reasons)


# The document's sections after "daemon" and "health", in order. To add one (BMC fans and
# PSUs, fan zones with mode/input/setpoint/duty, licences): write a builder that turns the
# Snapshot into JSON-ready data plus health reasons (e.g. "zone gpu in failsafe: ..."),
# add it here, and add its table renderer to gpuwatchd.status_view.RENDERERS.
def _bmcs(snapshot: Snapshot, now_mono: float) -> Section:
    """BMCs with their fans, temperatures and PSUs (gpuwatchd.status_bmc)."""

    return Section(*status_bmc.section(snapshot, now_mono))


def _hwmon(snapshot: Snapshot, now_mono: float) -> Section:
    """Mainboard hwmon chips with their fans, temperatures and PWMs (gpuwatchd.status_hwmon)."""

    return Section(*status_hwmon.section(snapshot, now_mono))


SECTIONS: dict[str, SectionBuilder] = {
    "nvml": _nvml,
    "gpus": _gpus,
    "bmcs": _bmcs,
    "hwmon": _hwmon,
    "licence": _licence,
    "collectors": _collectors,
    "fan_control": _fan_control,  # fan zones: mode, input vs setpoint, duty (issue 4)
}


def _located(snapshot: Snapshot, kind: type[T],
             now_mono: float) -> list[tuple[str, float | None, bool, T]]:
    """Readings of ``kind`` with (collector name, data age, stale)."""
    out: list[tuple[str, float | None, bool, T]] = []
    for res in snapshot.results:
        age, stale = _age(res, now_mono), res.is_stale(now_mono)
        out.extend((res.name, age, stale, r) for r in res.collected.readings
                   if isinstance(r, kind))
    return out


def _age(res: CollectorResult, now_mono: float) -> float | None:
    """Seconds since the collector's last success; ``None`` (JSON null) if it never had one."""
    age = res.age_seconds(now_mono)
    return None if math.isinf(age) else _seconds(age)


def _seconds(value: float) -> float:
    """A duration rounded to the millisecond (JSON has no infinity; callers map it to null)."""
    return round(max(0.0, value), 3)


def _age_text(age: float | None) -> str:
    return "never collected" if age is None else f"{age:.0f} s"


def dumps(doc: Json) -> bytes:
    """One JSON line; NaN/infinity are refused (they are not JSON)."""
    return json.dumps(doc, allow_nan=False, separators=(",", ":")).encode() + b"\n"


# --- the server ---------------------------------------------------------------------------

MAX_REQUEST_BYTES = 4096  # a request is one short JSON line
CONNECTION_TIMEOUT_SECONDS = 2.0  # a whole exchange; a stuck client loses its slot after this
MAX_CONNECTIONS = 8  # concurrent clients; more are told "busy" at once
LISTEN_BACKLOG = 64  # waiting to be accepted (a full backlog makes clients retry, see query)
SOCKET_MODE = 0o660  # root and the gpuwatchd group
Command = Callable[[], Json]


class StatusServer:
    """Serves ``{"command": "status"}`` on a unix stream socket, one thread per connection.

    Each exchange is bounded: at most :data:`MAX_REQUEST_BYTES` of request, at most
    ``timeout_seconds`` from accept to the last byte of the reply, at most ``max_connections``
    at once. The provider must only read the published Snapshot (never hardware).
    """

    def __init__(self, path: str, provider: Callable[[], Json], *,
                 group: str | None = SOCKET_GROUP,
                 timeout_seconds: float = CONNECTION_TIMEOUT_SECONDS,
                 max_connections: int = MAX_CONNECTIONS) -> None:
        self.path = path
        self.commands: dict[str, Command] = {"status": provider}
        self._group = group
        self._timeout = timeout_seconds
        self._slots = threading.BoundedSemaphore(max_connections)
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._inode = 0

    def start(self) -> None:
        """Bind and listen; raise StatusServerError with the reason if that is not possible."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            prepare_dir(os.path.dirname(os.path.abspath(self.path)))
            clear_stale(self.path)
            sock.bind(self.path)
            os.chmod(self.path, SOCKET_MODE)  # before listen(): nobody can connect until then
            set_group(self.path, self._group)
            self._inode = os.stat(self.path).st_ino
            sock.listen(LISTEN_BACKLOG)
        except StatusServerError:
            sock.close()
            raise
        except OSError as exc:
            sock.close()
            raise StatusServerError(f"cannot listen on {self.path}: "
                                    f"{exc.strerror or exc}") from None
        self._sock = sock
        self._thread = threading.Thread(target=self._accept_loop, name="status-accept",
                                        daemon=True)
        self._thread.start()
        log.info("status socket listening on %s", self.path)

    def stop(self) -> None:
        """Stop accepting, close, and unlink the socket if it is still ours."""
        sock, self._sock = self._sock, None
        if sock is None:
            return
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() on Linux
        sock.close()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        with contextlib.suppress(OSError):
            if os.stat(self.path).st_ino == self._inode:
                os.unlink(self.path)

    def _accept_loop(self) -> None:
        while (sock := self._sock) is not None:
            try:
                conn, _ = sock.accept()
            except OSError as exc:
                if self._sock is not None:  # not a stop(): e.g. EMFILE; do not spin
                    log.warning("status socket accept failed: %s", exc)
                    time.sleep(0.1)
                continue
            if not self._slots.acquire(blocking=False):
                _reply_now(conn, {"schema": SCHEMA, "error": "busy: too many status clients"})
                continue
            threading.Thread(target=self._serve, args=(conn,), name="status-conn",
                             daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        deadline = time.monotonic() + self._timeout
        try:
            with conn:
                try:
                    reply = self._answer(read_line(conn, deadline, MAX_REQUEST_BYTES))
                except TooLong as exc:
                    reply = dumps(_error(f"request refused: {exc}"))
                conn.settimeout(max(0.01, deadline - time.monotonic()))
                conn.sendall(reply)
        except (Hangup, OSError) as exc:  # timeouts included: the client is gone or stuck
            log.debug("status client dropped: %s", exc)
        finally:
            self._slots.release()

    def _answer(self, request: bytes) -> bytes:
        try:
            message = json.loads(request)
        except ValueError:
            return dumps(_error("request is not JSON"))
        command = message.get("command") if isinstance(message, dict) else None
        if not isinstance(command, str):
            return dumps(_error('expected a request like {"command": "status"}'))
        handler = self.commands.get(command)
        if handler is None:
            known = ", ".join(sorted(self.commands))
            return dumps(_error(f"unknown command {command!r}; known: {known}"))
        try:
            return dumps(handler())
        except Exception as exc:  # a bug must not kill the server; it is logged in full
            log.exception("status command %s failed", command)
            return dumps(_error(f"internal error: {type(exc).__name__}: {exc}"))


def _error(message: str) -> Json:
    return {"schema": SCHEMA, "error": message}


def _reply_now(conn: socket.socket, doc: Json) -> None:
    with conn, contextlib.suppress(OSError):
        conn.settimeout(0.1)
        conn.sendall(dumps(doc))
