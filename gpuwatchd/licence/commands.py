"""Running the few node commands the licence watch needs, behind an injectable runner.

The commands themselves are fixed in code (``nvidia-smi -q -x``, ``systemctl show``,
``timedatectl show``, ``journalctl --follow``, and ``systemctl restart`` for the opt-in
remediation): none is configurable, so a config file cannot make the daemon run something else.
Tests and the simulator pass their own :class:`Runner`; the real one is :func:`run_command`.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from gpuwatchd.errors import DeadlineExceeded, NotInstalled, Transient


@dataclass(frozen=True)
class CommandResult:
    """What a command printed and how it exited."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str = ""


class Runner(Protocol):
    """Runs ``argv`` with a timeout; raises NotInstalled, DeadlineExceeded or Transient."""

    def __call__(self, argv: Sequence[str], timeout_seconds: float) -> CommandResult:
        """Run the command to completion (or until the timeout)."""


def command_env() -> dict[str, str]:
    """A C locale, so the output is the documented English text whatever the node's locale."""
    return {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "LC_ALL": "C",
            "SYSTEMD_PAGER": "", "SYSTEMD_COLORS": "0"}


def run_command(argv: Sequence[str], timeout_seconds: float) -> CommandResult:
    """The real runner: ``subprocess.run`` with no shell, no stdin and a hard timeout."""
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, errors="replace",
                              timeout=timeout_seconds, check=False, env=command_env(),
                              stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise NotInstalled(f"{argv[0]}: not installed") from None
    except subprocess.TimeoutExpired:
        raise DeadlineExceeded(f"{argv[0]}: no answer within {timeout_seconds:g} s") from None
    except OSError as exc:
        raise Transient(f"{argv[0]}: {exc.strerror}") from None
    return CommandResult(tuple(argv), done.returncode, done.stdout, done.stderr)
