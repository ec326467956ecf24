"""The client's side of the status socket: :func:`query`, and the human table.

``gpuwatchctl status`` calls :func:`query` and then prints the reply with :func:`render` (or
as JSON). Each failure has its own exception so the CLI can answer like ``systemctl status``:
not running (3) is not the same as not allowed or not understood (4).
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gpuwatchd.errors import GpuwatchdError
from gpuwatchd.status.paths import SOCKET_GROUP
from gpuwatchd.status.sections import bmc as status_bmc
from gpuwatchd.status.sections import hwmon as status_hwmon
from gpuwatchd.status.sections import licence as licence_view

Json = dict[str, Any]
MAX_REPLY_BYTES = 8 << 20  # measured: 2 GPUs 1.1 KB, 16 GPUs 5 KB; megabytes are garbage
BACKLOG_RETRY_SECONDS = 0.02


class Hangup(Exception):
    """The peer closed without sending anything (e.g. a liveness probe)."""


class TooLong(Exception):
    """The peer sent more than the size limit without a newline."""


def read_line(conn: socket.socket, deadline: float, limit: int) -> bytes:
    """Bytes up to the first newline or EOF, within ``deadline`` (TimeoutError) and ``limit``."""
    buf = bytearray()
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("timed out")
        conn.settimeout(remaining)
        chunk = conn.recv(65536)
        if not chunk:
            if not buf:
                raise Hangup("closed without sending anything")
            return bytes(buf)
        end = chunk.find(b"\n")
        buf += chunk if end < 0 else chunk[:end]
        if len(buf) > limit:
            raise TooLong(f"line longer than {limit} bytes")
        if end >= 0:
            return bytes(buf)


class QueryError(GpuwatchdError):
    """``query`` failed; the subclass says how (gpuwatchctl maps each to an exit code)."""

    def __init__(self, message: str, path: str) -> None:
        super().__init__(message)
        self.path = path


class NotRunning(QueryError):
    """No socket, or a socket nobody listens on (the daemon is not running)."""


class AccessDenied(QueryError):
    """The socket exists but this user may not open it."""


class ProtocolError(QueryError):
    """The daemon did not answer, answered garbage, or answered with an error."""


def query(path: str, timeout_seconds: float = 2.0, command: str = "status") -> Json:
    """Send one command to the daemon at ``path`` and return its JSON reply."""
    deadline = time.monotonic() + timeout_seconds
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_seconds)
        try:
            _connect(sock, path, deadline)
        except (FileNotFoundError, NotADirectoryError):
            raise NotRunning(f"gpuwatchd is not running (no socket at {path})", path) from None
        except ConnectionRefusedError:
            raise NotRunning(f"gpuwatchd is not running (nothing listens on {path}; "
                             "a stale socket)", path) from None
        except PermissionError:
            raise AccessDenied(f"permission denied on {path}: run as root or as a member of "
                               f"the {SOCKET_GROUP} group", path) from None
        except OSError as exc:
            raise ProtocolError(f"cannot connect to {path}: {exc.strerror or exc}",
                                path) from None
        try:
            # A server may answer before reading ("busy") and close: read that answer anyway.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(json.dumps({"command": command}).encode() + b"\n")
            line = read_line(sock, deadline, MAX_REPLY_BYTES)
        except TimeoutError:
            raise ProtocolError(f"no answer from {path} within {timeout_seconds:g} s",
                                path) from None
        except (OSError, Hangup, TooLong) as exc:
            raise ProtocolError(f"bad answer from {path}: {exc}", path) from None
    return _parse_reply(line, path)


def _connect(sock: socket.socket, path: str, deadline: float) -> None:
    """connect(), retried while the listen backlog is full (a unix socket with a timeout says
    EAGAIN at once instead of waiting), until ``deadline``."""
    while True:
        try:
            sock.connect(path)
            return
        except BlockingIOError:
            if time.monotonic() + BACKLOG_RETRY_SECONDS >= deadline:
                raise TimeoutError("the daemon's listen backlog stayed full") from None
            time.sleep(BACKLOG_RETRY_SECONDS)


def _parse_reply(line: bytes, path: str) -> Json:
    try:
        doc = json.loads(line)
    except ValueError:
        raise ProtocolError(f"{path} answered something that is not JSON "
                            f"(is it a gpuwatchd socket?): {line[:60]!r}", path) from None
    if not isinstance(doc, dict):
        raise ProtocolError(f"{path} answered a JSON {type(doc).__name__}, not an object", path)
    if "error" in doc:
        raise ProtocolError(f"gpuwatchd answered with an error: {doc['error']}", path)
    return doc


# --- the table ----------------------------------------------------------------------------

Cell = tuple[str, str]  # (text, tone); tone "" = plain
_TONES = {"good": "32", "bad": "1;31", "warn": "33", "bold": "1"}
WARN_MARGIN_CELSIUS = 5.0  # a GPU this close to its slowdown temperature is shown in yellow


@dataclass(frozen=True)
class Style:
    """ANSI colours on or off (on only for a TTY without ``--no-color``/``$NO_COLOR``)."""

    color: bool

    def paint(self, text: str, tone: str) -> str:
        code = _TONES.get(tone)
        return f"\033[{code}m{text}\033[0m" if self.color and code and text else text


def render(doc: Json, now_wall: float, color: bool = False) -> str:
    """The status document as a compact table (like ``nvidia-smi`` or ``sensors``).

    Unknown sections (from a newer daemon) are left out: ``--json`` shows everything.
    Raises KeyError/TypeError/ValueError on a document that is not schema 1.
    """
    style = Style(color)
    lines = _daemon(doc["daemon"], now_wall, style) + _health(doc["health"], style)
    for name, renderer in RENDERERS.items():
        if doc.get(name) is not None:
            lines += ["", *renderer(doc[name], style)]
    return "\n".join(lines)


def _daemon(daemon: Json, now_wall: float, style: Style) -> list[str]:
    state = daemon["state"]
    parts = [f"gpuwatchd {daemon['version']}",
             style.paint(state, "good" if state == "running" else "warn"),
             f"pid {daemon['pid']}",
             f"up {_span(now_wall - float(daemon['started_wall']))}",
             f"interval {float(daemon['interval_seconds']):g}s",
             f"last tick {_ago(daemon['last_tick_age_seconds'])}"]
    lines = ["  ".join(parts)]
    if daemon.get("config_path"):
        lines.append(f"config  {daemon['config_path']}")
    return lines


def _health(health: Json, style: Style) -> list[str]:
    status = health["status"]
    lines = [f"health  {style.paint(status, 'good' if status == 'healthy' else 'bad')}"]
    lines += [f"  - {reason}" for reason in health["reasons"]]
    return lines


def _nvml(nvml: Json, style: Style) -> list[str]:
    if nvml["up"]:
        return [f"NVML    up, driver {nvml['driver_version'] or 'unknown'}"]
    return [f"NVML    {style.paint('down', 'bad')}  {nvml['error']}".rstrip()]


def _gpus(gpus: list[Json], style: Style) -> list[str]:
    if not gpus:
        return ["GPUs    none found"]
    rows = [[(str(g["index"]), ""), (g["name"], ""), _temp_cell(g), _c(g["margin_celsius"]),
             _c(g["slowdown_celsius"]), (_power(g), ""), (_fans(g["fan_ratios"]), ""),
             (_age(g["age_seconds"]), "warn" if g["stale"] else ""), _gpu_note(g)]
            for g in gpus]
    head = ["GPU", "NAME", "TEMP", "MARGIN", "SLOWDOWN", "POWER/LIMIT", "FAN", "AGE", "NOTE"]
    return _table(head, rows, "rlrrrrrrl", style)


def _collectors(collectors: list[Json], style: Style) -> list[str]:
    rows = []
    for c in collectors:
        state = ("ok", "good") if c["ok"] else ("FAILED", "bad")
        if c["ok"] and c["stale"]:
            state = ("stale", "warn")
        rows.append([(c["name"], ""), state, (_age(c["age_seconds"]), ""),
                     (f"{float(c['duration_seconds']):.3f}s", ""), (c["error"], "")])
    return _table(["COLLECTOR", "STATE", "AGE", "DURATION", "ERROR"], rows, "llrrl", style)


def _fan_control(fc: Json, style: Style) -> list[str]:
    """Per zone: mode, controlling input vs setpoint, duty; then the driver's line."""
    tones = {"control": "good", "monitor": "warn", "failsafe": "bad"}
    rows = []
    for z in fc["zones"]:
        duty = z["duty"]
        rows.append([(z["zone"], ""), (z["mode"], tones.get(z["mode"], "")),
                     (z["input"] or "-", ""), _c(z["input_celsius"]),
                     _c(z["setpoint_celsius"]), _c(z["ceiling_celsius"]),
                     ("-" if duty is None else f"{float(duty) * 100:.0f}%", ""),
                     (f"{float(z['min_duty']) * 100:.0f}-{float(z['max_duty']) * 100:.0f}%", ""),
                     (z["reason"], "warn" if z["reason"] else "")])
    head = ["FAN ZONE", "MODE", "INPUT", "TEMP", "SETPOINT", "CEILING", "DUTY", "LIMITS",
            "NOTE"]
    lines = _table(head, rows, "lllrrrrrl", style)
    state = "manual" if fc["manual"] else "BMC automatic"
    errors = sum(int(v) for v in fc["write_errors"].values())
    line = (f"fan driver {fc['driver']} on {fc['target']}: {state}, {fc['writes']} writes, "
            f"{errors} errors, {fc['reverts']} reverts")
    lines.append(line)
    if fc["message"]:
        lines.append(f"  {style.paint(fc['message'], 'warn')}")
    return lines


# Table renderers by document section, in print order; a new section in gpuwatchd.status
# (BMCs, fan zones, licences) gets its renderer here.
def _bmcs(bmcs: list[Json], style: Style) -> list[str]:

    return status_bmc.render(bmcs, style, _table)


def _hwmon(chips: list[Json], style: Style) -> list[str]:

    return status_hwmon.render(chips, style, _table)


RENDERERS: dict[str, Callable[[Any, Style], list[str]]] = {
    "nvml": _nvml,
    "gpus": _gpus,
    "bmcs": _bmcs,
    "hwmon": _hwmon,
    "licence": licence_view.render,
    "collectors": _collectors,
    "fan_control": _fan_control,
}


def _table(head: list[str], rows: list[list[Cell]], align: str, style: Style) -> list[str]:
    """Columns padded to their widest cell, then painted (escapes do not count as width)."""
    widths = [max([len(h)] + [len(r[i][0]) for r in rows]) for i, h in enumerate(head)]

    def line(cells: list[Cell]) -> str:
        out = [style.paint(text.rjust(w) if a == "r" else text.ljust(w), tone)
               for (text, tone), w, a in zip(cells, widths, align, strict=True)]
        return "  ".join(out).rstrip()

    return [style.paint(line([(h, "") for h in head]), "bold"), *[line(r) for r in rows]]


def _temp_cell(gpu: Json) -> Cell:
    temp, margin, slowdown = (gpu["temperature_celsius"], gpu["margin_celsius"],
                              gpu["slowdown_celsius"])
    if margin is None and temp is not None and slowdown is not None:
        margin = float(slowdown) - float(temp)
    tone = ""
    if margin is not None:
        tone = "bad" if margin <= 0 else "warn" if margin < WARN_MARGIN_CELSIUS else ""
    return _c(temp)[0], tone


def _gpu_note(gpu: Json) -> Cell:
    if not gpu["up"]:
        return f"down: {gpu['error']}".rstrip(": "), "bad"
    if gpu["stale"]:
        return "stale data", "warn"
    return gpu["error"], ""


def _c(celsius: float | None) -> Cell:
    return ("-" if celsius is None else f"{float(celsius):.0f}C"), ""


def _power(gpu: Json) -> str:
    power, limit = gpu["power_watts"], gpu["power_limit_watts"]
    if power is None:
        return "-" if limit is None else f"- / {float(limit):.0f}W"
    return f"{float(power):.0f}W" + ("" if limit is None else f" / {float(limit):.0f}W")


def _fans(ratios: list[float]) -> str:
    return "/".join(f"{float(r) * 100:.0f}%" for r in ratios) or "-"


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    seconds = float(seconds)
    return f"{seconds:.1f}s" if seconds < 10 else _span(seconds)


def _ago(seconds: float | None) -> str:
    return "none yet" if seconds is None else f"{_age(seconds)} ago"


def _span(seconds: float) -> str:
    """A duration as its two largest units: 45s, 5m 03s, 3h 12m, 2d 04h."""
    total = max(0, int(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"
