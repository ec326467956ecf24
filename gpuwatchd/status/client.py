"""The client's end of the status socket: :func:`query` (the server: status.server).

``gpuwatchctl status`` calls :func:`query` and then prints the reply with
gpuwatchd.status.table.render (or as JSON). Each failure has its own exception so the CLI can
answer like ``systemctl status``: not running (3) is not the same as not allowed or not
understood (4).
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from typing import Any

from gpuwatchd.errors import GpuwatchdError
from gpuwatchd.status.paths import SOCKET_GROUP
from gpuwatchd.status.wire import Hangup, TooLong, read_line

Json = dict[str, Any]
MAX_REPLY_BYTES = 8 << 20  # measured: 2 GPUs 1.1 KB, 16 GPUs 5 KB; megabytes are garbage
BACKLOG_RETRY_SECONDS = 0.02


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
