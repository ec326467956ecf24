"""The ClientConfigToken folder (NLS): present, readable, exactly one token, sane permissions.

Only names and ``stat`` results are looked at: a token is a credential and its contents are
never opened, logged or exported. The file is ``client_configuration_token_<timestamp>.tok``;
NVIDIA's guides make it mode 744 and restart nvidia-gridd, which reads it at start. Several
``.tok`` files pile up when cron jobs fetch new ones; which one gridd uses is undocumented, so
"several" is a warning. Group- or world-writable tokens (or a world-writable folder) let
anyone replace the credential.

Command-line equivalent: ``ls -l --time-style=+%s /etc/nvidia/ClientConfigToken/``.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass

from gpuwatchd.licence.griddconf import Problem

FUTURE_SLACK_SECONDS = 300.0  # mtimes this far ahead of our clock point at a wrong clock


@dataclass(frozen=True)
class TokenFile:
    name: str
    size: int
    mode: int  # permission bits
    mtime: float


@dataclass(frozen=True)
class TokenReport:
    """What the folder holds; ``problems`` empty means nothing to fix."""

    folder: str
    files: tuple[TokenFile, ...] = ()
    problems: tuple[Problem, ...] = ()

    @property
    def newest_mtime(self) -> float | None:
        return max((f.mtime for f in self.files), default=None)

    @property
    def fingerprint(self) -> tuple[tuple[str, int, float], ...]:
        """Changes whenever a token is added, removed or rewritten."""
        return tuple(sorted((f.name, f.size, f.mtime) for f in self.files))

    @property
    def usable(self) -> bool:
        """At least one non-empty token gpuwatchd could see."""
        return any(f.size > 0 for f in self.files)

    def summary(self) -> str:
        """``1 token (0744)``, ``2 tokens``, ``no token``: for the status line."""
        if not self.files:
            return "no token"
        if len(self.files) == 1:
            return f"1 token ({self.files[0].mode:04o})"
        return f"{len(self.files)} tokens"


StatFn = Callable[[str], os.stat_result]
ListFn = Callable[[str], list[str]]


def check(folder: str, now_wall: float, max_age_seconds: float | None = None,
          listdir: ListFn = os.listdir, stat_fn: StatFn = os.stat) -> TokenReport:
    """Inspect the folder; ``listdir``/``stat_fn`` are injectable for the unreadable cases."""
    try:
        names = sorted(n for n in listdir(folder) if n.endswith(".tok"))
        folder_mode = stat.S_IMODE(stat_fn(folder).st_mode)
    except FileNotFoundError:
        return TokenReport(folder, problems=(Problem(
            "missing", f"{folder} does not exist (NLS needs a client configuration token)"),))
    except OSError as exc:
        return TokenReport(folder, problems=(Problem("unreadable", _cannot(folder, exc)),))
    files, problems = _files(folder, names, stat_fn)
    if not names:
        problems.append(Problem("empty", f"{folder} holds no .tok file"))
    elif len(names) > 1:
        problems.append(Problem("several", f"{folder} holds {len(names)} tokens; nvidia-gridd "
                                           "uses one of them: keep only the current token"))
    if folder_mode & stat.S_IWOTH:
        problems.append(Problem("permissions", f"{folder} is world-writable "
                                               f"({folder_mode:04o})"))
    problems += _ages(folder, files, now_wall, max_age_seconds)
    return TokenReport(folder, tuple(files), tuple(problems))


def _files(folder: str, names: list[str], stat_fn: StatFn) -> tuple[list[TokenFile], list[Problem]]:
    files: list[TokenFile] = []
    problems: list[Problem] = []
    for name in names:
        path = os.path.join(folder, name)
        try:
            info = stat_fn(path)
        except OSError as exc:
            problems.append(Problem("unreadable", _cannot(path, exc)))
            continue
        if not stat.S_ISREG(info.st_mode):
            problems.append(Problem("unreadable", f"{path} is not a regular file"))
            continue
        mode = stat.S_IMODE(info.st_mode)
        files.append(TokenFile(name, info.st_size, mode, info.st_mtime))
        if info.st_size == 0:
            problems.append(Problem("zero_length", f"{path} is empty (0 bytes)"))
        if mode & (stat.S_IWGRP | stat.S_IWOTH):
            problems.append(Problem("permissions", f"{path} is writable by group or others "
                                                   f"({mode:04o}); use 0744 or stricter"))
        if not mode & stat.S_IRUSR:
            problems.append(Problem("permissions", f"{path} is not readable by its owner "
                                                   f"({mode:04o})"))
    return files, problems


def _ages(folder: str, files: list[TokenFile], now: float,
          max_age: float | None) -> list[Problem]:
    out: list[Problem] = []
    newest = max((f.mtime for f in files), default=None)
    if newest is None:
        return out
    if newest > now + FUTURE_SLACK_SECONDS:
        out.append(Problem("future_mtime", f"the newest token in {folder} is dated "
                                           f"{newest - now:.0f} s in the future: is the clock "
                                           "right?"))
    elif max_age is not None and now - newest > max_age:
        out.append(Problem("old", f"the newest token in {folder} is {(now - newest) / 86400:.0f}"
                                  f" days old (limit {max_age / 86400:g} days)"))
    return out


def _cannot(path: str, exc: OSError) -> str:
    reason = exc.strerror or errno.errorcode.get(exc.errno or 0, "error")
    return f"cannot inspect {path}: {reason} (gpuwatchd runs as uid {os.getuid()})"
