"""Bounded reading of the files a configuration names: regular files only, never a hang.

Every file gpuwatchd reads because a config (or the command line) points at it goes through
here: the config itself, the exporter-toolkit web config, a BMC ``password_file`` or systemd
credential, and (checked only: OpenSSL reads them) certificates, keys and CA files. A FIFO
would block ``open()`` until a writer comes, ``/dev/zero`` never ends and a directory or a
socket is a wrong path, so the file is opened with ``O_NONBLOCK``, checked with ``fstat``
before a byte is read, and read to at most ``max_bytes`` + 1 bytes.

:class:`FileRefused` carries the problem without the path or any of the content, so each
caller words the message for its file (``BMC idrac (...): password file ...``) and never
quotes what it read. Shell equivalent of the checks: ``stat -L -c '%F %s' FILE``.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from gpuwatchd.errors import ConfigError

MAX_CONFIG_BYTES = 1 << 20  # a YAML config (or web config) larger than 1 MiB is a wrong path
MAX_PEM_BYTES = 4 << 20  # a certificate, key or CA bundle (the system bundle is ~220 KiB)
MAX_STATE_BYTES = 1 << 20  # gridd.conf, a calibration, a remediation history: a few kB

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


class FileRefused(ConfigError):
    """A file that cannot be read or is not acceptable; ``problem`` never quotes content."""

    def __init__(self, path: str | Path, problem: str, missing: bool = False) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem
        self.missing = missing  # no such file (callers for which absence is normal)
        self.problem = problem


def read_regular(path: str | Path, max_bytes: int) -> bytes:
    """The content of the regular file ``path`` (at most ``max_bytes``); else FileRefused."""
    fd = _open(path)
    try:
        _check_regular(path, os.fstat(fd))
        chunks: list[bytes] = []
        size = 0
        while size <= max_bytes:
            chunk = os.read(fd, min(max_bytes + 1 - size, 1 << 16))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise FileRefused(path, _strerror(exc)) from None
    finally:
        os.close(fd)
    if size > max_bytes:
        raise FileRefused(path, f"it is larger than {max_bytes} bytes")
    return b"".join(chunks)


def check_regular(path: str | Path, max_bytes: int) -> int:
    """Check that ``path`` is a readable regular file of at most ``max_bytes``; its mode.

    For files another library reads itself (OpenSSL's ``load_cert_chain``), so that a FIFO
    or a device there is refused before that library blocks on it.
    """
    fd = _open(path)
    try:
        st = os.fstat(fd)
    except OSError as exc:
        raise FileRefused(path, _strerror(exc)) from None
    finally:
        os.close(fd)
    _check_regular(path, st)
    if st.st_size > max_bytes:
        raise FileRefused(path, f"it is larger than {max_bytes} bytes")
    return st.st_mode


def _open(path: str | Path) -> int:
    if not str(path):
        raise FileRefused(path, "the file name is empty")
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
    try:
        return os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # open() of a socket (or a FIFO opened for writing)
            try:
                _check_regular(path, os.stat(path))
            except OSError:
                pass
        raise FileRefused(path, _strerror(exc), missing=exc.errno == errno.ENOENT) from None
    except ValueError:  # an embedded NUL byte in the name
        raise FileRefused(path, "the file name contains a NUL byte") from None


def _check_regular(path: str | Path, st: os.stat_result) -> None:
    if stat.S_ISREG(st.st_mode):
        return
    kind = next((name for test, name in _KINDS if test(st.st_mode)), "not a plain file")
    raise FileRefused(path, f"it is {kind}, not a regular file")


def _strerror(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__
