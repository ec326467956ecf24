"""sd_notify(3) without a library: one datagram to $NOTIFY_SOCKET.

Under ``Type=notify`` systemd waits for ``READY=1``; with ``WatchdogSec=`` it expects
``WATCHDOG=1`` more often than that (the daemon sends it from the control loop only, so a
stuck loop gets restarted). Outside systemd every call is a no-op returning False.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


class Notifier:
    """Sends notifications to the socket named by ``NOTIFY_SOCKET`` (read once)."""

    def __init__(self, address: str | None = None) -> None:
        address = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):
            address = "\0" + address[1:]  # abstract namespace
        self._address = address
        self._sock: socket.socket | None = None

    @property
    def enabled(self) -> bool:
        """True when running under systemd with a notify socket."""
        return bool(self._address)

    def send(self, **fields: str | int) -> bool:
        """Send ``KEY=value`` lines, e.g. ``send(READY=1, STATUS="ok")``."""
        if not self._address:
            return False
        message = "\n".join(f"{key}={value}" for key, value in fields.items()).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(message, self._address)
        except OSError as exc:
            log.debug("sd_notify failed: %s", exc)
            return False
        return True

    def watchdog_usec(self) -> int:
        """``$WATCHDOG_USEC`` if it is meant for this process, else 0."""
        pid = os.environ.get("WATCHDOG_PID")
        if pid and pid != str(os.getpid()):
            return 0
        try:
            return int(os.environ.get("WATCHDOG_USEC", "0"))
        except ValueError:
            return 0

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
