"""Bounded connection slots for the servers (metrics, status): no number of clients starves them.

One thread serves one connection, and at most :data:`MAX_CONNECTIONS` are open at once. A new
connection that finds every slot taken evicts the oldest connection that has not yet sent a
whole request head (a slowloris client, a scanner, a peer that never speaks TLS); a connection
that sent its head is being answered and is never evicted. When no slot can be freed the new
connection is closed at once, so its file descriptor is back within the same accept.

Measured without slots (issue 10): 1,500 slow connections at systemd's default 1,024 fds
pinned a core with threads, failed scrapes and sent a fan zone to failsafe.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field

MAX_CONNECTIONS = 64  # a Prometheus HA pair and a few curls need < 10; 64 leaves headroom
WAIT_FOR_SLOT_SECONDS = 1.0


@dataclass
class _Slot:
    sock: socket.socket
    opened_mono: float
    head_done: bool = False
    answered: int = 0  # requests answered on this connection (keep-alive)


@dataclass
class Slots:
    """The open connections of one listening socket; thread-safe."""

    limit: int = MAX_CONNECTIONS
    _open: dict[int, _Slot] = field(default_factory=dict)
    _freed: threading.Condition = field(default_factory=threading.Condition)
    evicted: int = 0
    refused: int = 0

    def admit(self, sock: socket.socket, now_mono: float,
              wait_seconds: float = WAIT_FOR_SLOT_SECONDS) -> bool:
        """Take a slot for ``sock``, evicting the oldest head-less connection if full."""
        with self._freed:
            if len(self._open) >= self.limit:
                victim = self._victim()
                if victim is not None:
                    del self._open[id(victim.sock)]
                    self.evicted += 1
                    _hang_up(victim.sock)
                elif not self._freed.wait_for(lambda: len(self._open) < self.limit,
                                              wait_seconds):
                    self.refused += 1
                    return False
            self._open[id(sock)] = _Slot(sock, now_mono)
            return True

    def _victim(self) -> _Slot | None:
        """The oldest connection still waiting for its head, one that was never answered
        first: under a flood that is the flood's (a scraper sends its head microseconds after
        connecting), and a scraper's kept-alive connection goes only after them."""
        waiting = [s for s in self._open.values() if not s.head_done]
        return min(waiting, key=lambda s: (s.answered > 0, s.opened_mono)) if waiting else None

    def head_received(self, sock: socket.socket) -> None:
        """The connection sent its whole request head: it is being answered, keep it."""
        with self._freed:
            slot = self._open.get(id(sock))
            if slot is not None:
                slot.head_done = True

    def idle(self, sock: socket.socket, now_mono: float) -> None:
        """The connection was answered and waits for its next request (keep-alive): an idle
        connection may be evicted again, like one that never sent a head (newest first)."""
        with self._freed:
            slot = self._open.get(id(sock))
            if slot is not None:
                slot.head_done = False
                slot.opened_mono = now_mono
                slot.answered += 1

    def replace(self, old: socket.socket, new: socket.socket) -> None:
        """The connection is now ``new`` (TLS wraps detach the plain socket object)."""
        with self._freed:
            slot = self._open.pop(id(old), None)
            if slot is not None:
                slot.sock = new
                self._open[id(new)] = slot

    def release(self, sock: socket.socket) -> None:
        """The connection is done (answered, evicted or dropped): its slot is free."""
        with self._freed:
            self._open.pop(id(sock), None)
            self._freed.notify()

    def __len__(self) -> int:
        with self._freed:
            return len(self._open)


def _hang_up(sock: socket.socket) -> None:
    """Wake the connection's thread with EOF; its own thread closes the socket.

    ``socket.socket.shutdown`` on the plain socket, not ``SSLSocket.shutdown``: the latter
    drops the TLS object under the thread that is reading from it.
    """
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass  # already gone
