"""The daemon's end of the status socket: :class:`StatusServer` (the client: status.client).

``gpuwatchctl status`` asks the running daemon over a unix stream socket (mode 0660, group
``gpuwatchd``) and never touches hardware itself: a second IPMI client would compete with the
daemon. Protocol: one request line ``{"command": "status"}``, one JSON reply line, close.
Command-line equivalent:
``echo '{"command": "status"}' | socat - UNIX-CONNECT:/run/gpuwatchd/status.sock``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from gpuwatchd.status.document import SCHEMA
from gpuwatchd.status.paths import (
    SOCKET_GROUP,
    StatusServerError,
    clear_stale,
    prepare_dir,
    set_group,
)
from gpuwatchd.status.wire import Hangup, TooLong, read_line

log = logging.getLogger(__name__)

Json = dict[str, Any]
MAX_REQUEST_BYTES = 4096  # a request is one short JSON line
CONNECTION_TIMEOUT_SECONDS = 2.0  # a whole exchange; a stuck client loses its slot after this
MAX_CONNECTIONS = 8  # concurrent clients; more are told "busy" at once
LISTEN_BACKLOG = 64  # waiting to be accepted (a full backlog makes clients retry, see query)
SOCKET_MODE = 0o660  # root and the gpuwatchd group
Command = Callable[[], Json]


def dumps(doc: Json) -> bytes:
    """One JSON line; NaN/infinity are refused (they are not JSON)."""
    return json.dumps(doc, allow_nan=False, separators=(",", ":")).encode() + b"\n"


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
