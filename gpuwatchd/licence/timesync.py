"""Is the clock synchronised? Licence leases are wall-clock times; a wrong clock breaks them.

First ``timedatectl show --property=NTPSynchronized --value`` (systemd-timedated); where that
is unavailable (no systemd as PID 1, systemd < 239) the kernel's own flag via ``adjtimex(2)``
in read-only mode, which is what timedated reports too: synchronised unless ``STA_UNSYNC`` is
set or the maximum error reached 16 s (systemd ``ntp_synced()``). Both sources are injectable.

Also notices wall-clock jumps between two probes (the wall clock moving against the monotonic
one), since gridd reports "Clock windback has been detected" and stops licensing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from dataclasses import dataclass

from gpuwatchd.errors import GpuwatchdError
from gpuwatchd.licence.commands import Runner

TIMEDATECTL_ARGV = ("timedatectl", "show", "--property=NTPSynchronized", "--value")
TIMEOUT_SECONDS = 5.0
STA_UNSYNC = 0x0040
MAXERROR_UNSYNCED_US = 16_000_000  # systemd src/basic/time-util.c ntp_synced()
JUMP_SECONDS = 5.0  # wall vs monotonic drift larger than this between probes is a jump


class _Timex(ctypes.Structure):
    """``struct timex`` (Linux, glibc): only ``modes``, ``maxerror`` and ``status`` are used."""

    _fields_ = [("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
                ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long),
                ("status", ctypes.c_int), ("constant", ctypes.c_long),
                ("precision", ctypes.c_long), ("tolerance", ctypes.c_long),
                ("time_sec", ctypes.c_long), ("time_usec", ctypes.c_long),
                ("tick", ctypes.c_long), ("ppsfreq", ctypes.c_long), ("jitter", ctypes.c_long),
                ("shift", ctypes.c_int), ("stabil", ctypes.c_long), ("jitcnt", ctypes.c_long),
                ("calcnt", ctypes.c_long), ("errcnt", ctypes.c_long), ("stbcnt", ctypes.c_long),
                ("tai", ctypes.c_int), ("_reserved", ctypes.c_int * 11)]


def read_adjtimex() -> bool | None:
    """The kernel's view (``adjtimex`` with modes=0 reads only); None if it cannot be asked."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    libc = ctypes.CDLL(name, use_errno=True)
    timex = _Timex()
    if libc.adjtimex(ctypes.byref(timex)) < 0:
        return None
    return not timex.status & STA_UNSYNC and timex.maxerror < MAXERROR_UNSYNCED_US


@dataclass(frozen=True)
class SyncState:
    synchronized: bool | None
    source: str = ""  # timedatectl | adjtimex | "" (unknown)
    error: str = ""


class ClockSync:
    """Reads synchronisation and tracks jumps; ``runner``/``adjtimex`` injectable."""

    def __init__(self, runner: Runner,
                 adjtimex: Callable[[], bool | None] = read_adjtimex) -> None:
        self._runner = runner
        self._adjtimex = adjtimex
        self._offset: float | None = None
        self.jumps = {"forward": 0, "backward": 0}

    def read(self) -> SyncState:
        """timedatectl first, adjtimex when timedatectl cannot answer."""
        error = ""
        try:
            result = self._runner(TIMEDATECTL_ARGV, TIMEOUT_SECONDS)
            answer = result.stdout.strip().lower()
            if result.returncode == 0 and answer in ("yes", "no"):
                return SyncState(answer == "yes", "timedatectl")
            error = f"timedatectl: {(result.stderr or answer or 'no answer').strip()[:120]}"
        except GpuwatchdError as exc:
            error = str(exc)
        try:
            synced = self._adjtimex()
        except (OSError, AttributeError) as exc:
            return SyncState(None, "", f"{error}; adjtimex: {exc}")
        if synced is None:
            return SyncState(None, "", error)
        return SyncState(synced, "adjtimex")

    def note(self, wall: float, monotonic: float) -> str | None:
        """Compare the wall clock with the monotonic one; returns "forward"/"backward" on a jump."""
        offset = wall - monotonic
        previous, self._offset = self._offset, offset
        if previous is None or abs(offset - previous) <= JUMP_SECONDS:
            return None
        direction = "forward" if offset > previous else "backward"
        self.jumps[direction] += 1
        return direction
