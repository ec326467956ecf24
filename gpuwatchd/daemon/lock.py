"""One daemon per BMC: an ``flock()``ed lock file that a second ``gpuwatchd`` cannot take.

Two daemons driving the same BMC fight over its fan mode (issue 10: with the status socket's
directory removed, a second daemon on the same config started and drove the same BMC). The
lock is ``<fan_control.state_directory>/bmc-<key>.lock``, where the key names the BMC (its
host, or the in-band device), so two configs for one BMC collide, while ``--demo`` (its own
state directory and a simulated device) never meets the system daemon. The file holds the
holder's pid; the kernel drops the lock when the process dies, so a crash leaves no stale lock.
Command-line equivalent: ``flock --nonblock /var/lib/gpuwatchd/bmc-10.0.0.5.lock true``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re

from gpuwatchd.config import Config
from gpuwatchd.errors import GpuwatchdError

LOCK_MODE = 0o644  # the pid is no secret; others may see who holds it


class AlreadyRunning(GpuwatchdError):
    """Another live process holds the lock for this BMC."""


def lock_key(config: Config) -> str | None:
    """The lock's name for the fans this config drives, or None when it drives none."""
    fc = config.fan_control
    if fc.driver == "none":
        return None
    bmc = next((b for b in config.bmcs if b.name == fc.bmc), None)
    if bmc is None:
        where = f"local-{fc.driver}"  # hwmon pwm, NVML fans: this host's own
    elif bmc.host:
        where = bmc.host
    else:
        where = f"inband-{bmc.ipmi_device}"
    return re.sub(r"[^A-Za-z0-9._-]", "_", where)


def lock_path(config: Config) -> str | None:
    key = lock_key(config)
    if key is None:
        return None
    return os.path.join(config.fan_control.state_directory, f"bmc-{key}.lock")


class BmcLock:
    """The held lock; :meth:`release` (or process exit) frees it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise AlreadyRunning (naming the file and the holder's pid), or
        GpuwatchdError when the file cannot be opened."""
        try:
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW,
                         LOCK_MODE)
        except OSError as exc:
            raise GpuwatchdError(f"cannot open the lock file {self.path}: "
                                 f"{exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise AlreadyRunning(f"another gpuwatchd (pid {holder}) holds {self.path}: it "
                                 "drives the same fans; stop it first") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)


def _read_pid(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return "unknown"
    return text if text.isdigit() else "unknown"
