"""The daemon's end of the status socket: :class:`StatusServer` (the client: status.client).

``gpuwatchctl status`` asks the running daemon over a unix stream socket (mode 0660, group
``gpuwatchd``) and never touches hardware itself: a second IPMI client would compete with the
daemon. Protocol: one request line ``{"command": "status"}`` (or ``"reload"``), one JSON
reply line, close. Command-line equivalent:
``echo '{"command": "status"}' | socat - UNIX-CONNECT:/run/gpuwatchd/status.sock``.

Bounded (issue 10): at most ``max_connections`` clients in gpuwatchd.slots.Slots, where a new
client evicts the oldest one that has not sent its request line (eight idle connections used
to make every ``gpuwatchctl status`` answer "busy"); a request nested deeper than
:data:`MAX_REQUEST_DEPTH` is refused before parsing (4,000 ``[`` used to raise RecursionError
and get no reply); :meth:`StatusServer.ensure` puts the socket back when someone removed it or
its directory.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Collection
from typing import Any

from gpuwatchd.slots import Slots
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
MAX_CONNECTIONS = 8  # concurrent clients; idle ones are evicted, answering ones are not
WAIT_FOR_SLOT_SECONDS = 0.2  # every slot answering: wait this long, then say "busy"
MAX_REQUEST_DEPTH = 8  # {"command": "status"} is depth 1; deeper is refused unparsed
LISTEN_BACKLOG = 64  # waiting to be accepted (a full backlog makes clients retry, see query)
SOCKET_MODE = 0o660  # root and the gpuwatchd group
REPLY_SEND_SECONDS = 1.0  # after a slow command (reload), the reply still gets this long
Command = Callable[[], Json]
PeerUid = Callable[[socket.socket], int]
_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


def peer_uid(conn: socket.socket) -> int:
    """The connecting process's uid (SO_PEERCRED; ``ss -xp`` shows the same)."""
    _pid, uid, _gid = _UCRED.unpack(conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                    _UCRED.size))
    return uid


def dumps(doc: Json) -> bytes:
    """One JSON line; NaN/infinity are refused (they are not JSON)."""
    return json.dumps(doc, allow_nan=False, separators=(",", ":")).encode() + b"\n"


class StatusServer:
    """Serves ``{"command": "status"}`` on a unix stream socket, one thread per connection.

    Each exchange is bounded: at most :data:`MAX_REQUEST_BYTES` of request, at most
    ``timeout_seconds`` from accept to the end of the request, at most ``max_connections``
    at once. The provider must only read the published Snapshot (never hardware). Commands
    named in ``privileged`` (``reload``) are refused unless the peer is root or this
    process's own user (the socket's group may read, not steer).
    """

    def __init__(self, path: str, provider: Callable[[], Json], *,
                 group: str | None = SOCKET_GROUP,
                 timeout_seconds: float = CONNECTION_TIMEOUT_SECONDS,
                 max_connections: int = MAX_CONNECTIONS,
                 privileged: Collection[str] = ("reload",),
                 peer: PeerUid = peer_uid) -> None:
        self.path = path
        self.commands: dict[str, Command] = {"status": provider}
        self._group = group
        self._timeout = timeout_seconds
        self._slots = Slots(limit=max_connections)
        self._privileged = frozenset(privileged)
        self._peer = peer
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._inode = (0, 0)  # (st_dev, st_ino) of the socket file we bound
        self._ensure_failed = ""

    def start(self) -> None:
        """Bind and listen; raise StatusServerError with the reason if that is not possible."""
        self._sock = self._listen()
        self._thread = threading.Thread(target=self._accept_loop, name="status-accept",
                                        daemon=True)
        self._thread.start()
        log.info("status socket listening on %s", self.path)

    def ensure(self) -> bool:
        """Put the socket back if it (or its directory) was removed or replaced; cheap (one
        stat) when it is in place. Returns True when it had to listen again. Called from the
        daemon's tick; a failure is logged once and retried at the next call."""
        if self._sock is None or self._in_place():
            return False
        try:
            new = self._listen()
        except StatusServerError as exc:
            if str(exc) != self._ensure_failed:
                log.warning("status socket %s is gone and cannot be recreated: %s",
                            self.path, exc)
            self._ensure_failed = str(exc)
            return False
        old, self._sock = self._sock, new
        _wake(old)  # the accept loop moves on to the new socket
        self._ensure_failed = ""
        log.warning("status socket %s was removed; recreated it", self.path)
        return True

    def _in_place(self) -> bool:
        try:
            st = os.stat(self.path)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == self._inode

    def _listen(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            prepare_dir(os.path.dirname(os.path.abspath(self.path)))
            clear_stale(self.path)
            sock.bind(self.path)
            os.chmod(self.path, SOCKET_MODE)  # before listen(): nobody can connect until then
            set_group(self.path, self._group)
            st = os.stat(self.path)
            sock.listen(LISTEN_BACKLOG)
        except StatusServerError:
            sock.close()
            raise
        except OSError as exc:
            sock.close()
            raise StatusServerError(f"cannot listen on {self.path}: "
                                    f"{exc.strerror or exc}") from None
        self._inode = (st.st_dev, st.st_ino)
        return sock

    def stop(self) -> None:
        """Stop accepting, close, and unlink the socket if it is still ours."""
        sock, self._sock = self._sock, None
        if sock is None:
            return
        _wake(sock)
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        with contextlib.suppress(OSError):
            if self._in_place():
                os.unlink(self.path)

    def _accept_loop(self) -> None:
        while (sock := self._sock) is not None:
            try:
                conn, _ = sock.accept()
            except OSError as exc:
                if sock is self._sock:  # not a stop() or an ensure(): e.g. EMFILE; no spin
                    log.warning("status socket accept failed: %s", exc)
                    time.sleep(0.1)
                continue
            if not self._slots.admit(conn, time.monotonic(), WAIT_FOR_SLOT_SECONDS):
                _reply_now(conn, {"schema": SCHEMA, "error": "busy: too many status clients"})
                continue
            threading.Thread(target=self._serve, args=(conn,), name="status-conn",
                             daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        deadline = time.monotonic() + self._timeout
        try:
            with conn:
                try:
                    request = read_line(conn, deadline, MAX_REQUEST_BYTES)
                    self._slots.head_received(conn)
                    reply = self._answer(request, conn)
                except TooLong as exc:
                    reply = dumps(_error(f"request refused: {exc}"))
                conn.settimeout(max(REPLY_SEND_SECONDS, deadline - time.monotonic()))
                conn.sendall(reply)
        except (Hangup, OSError) as exc:  # timeouts included: the client is gone or stuck
            log.debug("status client dropped: %s", exc)
        finally:
            self._slots.release(conn)

    def _answer(self, request: bytes, conn: socket.socket) -> bytes:
        try:
            message = parse_request(request)
        except BadRequest as exc:
            return dumps(_error(str(exc)))
        command = message.get("command")
        if not isinstance(command, str):
            return dumps(_error('expected a request like {"command": "status"}'))
        handler = self.commands.get(command)
        if handler is None:
            known = ", ".join(sorted(self.commands))
            return dumps(_error(f"unknown command {command!r}; known: {known}"))
        if command in self._privileged and self._peer(conn) not in (0, os.geteuid()):
            return dumps(_error(f"permission denied: {command} needs root or the "
                                "daemon's own user"))
        try:
            return dumps(handler())
        except Exception as exc:  # a bug must not kill the server; it is logged in full
            log.exception("status command %s failed", command)
            return dumps(_error(f"internal error: {type(exc).__name__}: {exc}"))


class BadRequest(Exception):
    """The request line is refused; the message is the error reply."""


def parse_request(request: bytes) -> Json:
    """The request object; BadRequest says why not. Nesting is bounded before json.loads sees
    it (json recurses once per level: 4,000 ``[`` raised RecursionError)."""
    if nesting_depth(request) > MAX_REQUEST_DEPTH:
        raise BadRequest(f"request refused: nested deeper than {MAX_REQUEST_DEPTH}")
    try:
        message = json.loads(request)
    except (ValueError, RecursionError):
        raise BadRequest("request is not JSON") from None
    if not isinstance(message, dict):
        raise BadRequest('expected a request like {"command": "status"}')
    return message


def nesting_depth(text: bytes) -> int:
    """The deepest ``[``/``{`` nesting outside JSON strings (an upper bound for garbage)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in text:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # closing quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest


def _wake(sock: socket.socket) -> None:
    """Shut down and close a listening socket; wakes the accept() blocked on it (Linux)."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


def _error(message: str) -> Json:
    return {"schema": SCHEMA, "error": message}


def _reply_now(conn: socket.socket, doc: Json) -> None:
    with conn, contextlib.suppress(OSError):
        conn.settimeout(0.1)
        conn.sendall(dumps(doc))
