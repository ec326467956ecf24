"""What every ``gpuwatchctl`` subcommand shares: the program name, the exit codes, stderr.

Exit codes follow ``systemctl status`` (LSB):

====  =================================================================
0     running and healthy (``check-config``: the file is valid; ``failsafe``/``calibrate``: done)
1     running but degraded (a collector failing or stale, a GPU down, ...); ``failsafe`` or
      ``calibrate`` failed
2     usage error
3     the daemon is not running (no socket, or nobody listens on it)
4     status unknown (permission denied on the socket, or no sensible answer)
6     the config file is invalid (as ``gpuwatchd --check-config``; ``reload``: the daemon
      refused it and keeps its running configuration)
====  =================================================================
"""

from __future__ import annotations

import argparse
import sys

from gpuwatchd.config import EXIT_CONFIG

__all__ = ["EXIT_CONFIG", "EXIT_DEGRADED", "EXIT_HEALTHY", "EXIT_NOT_RUNNING", "EXIT_UNKNOWN",
           "EXIT_USAGE", "PROG", "err", "seconds"]

PROG = "gpuwatchctl"
EXIT_HEALTHY = 0
EXIT_DEGRADED = 1
EXIT_USAGE = 2
EXIT_NOT_RUNNING = 3
EXIT_UNKNOWN = 4


def err(message: str) -> None:
    """``gpuwatchctl: message`` on stderr."""
    print(f"{PROG}: {message}", file=sys.stderr)


def seconds(text: str) -> float:
    """argparse type for ``--timeout``: a number of seconds in (0, 3600]."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 < value <= 3600.0:  # NaN fails too
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds in (0, 3600]")
    return value
