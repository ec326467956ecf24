"""The status socket's protocol, shared by both ends: one JSON line each way, then close.

Request ``{"command": "status"}\\n``, reply the document (or ``{"schema": 1, "error": ...}``)
as one line. :func:`read_line` reads either, bounded in time and size.
"""

from __future__ import annotations

import socket
import time


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

