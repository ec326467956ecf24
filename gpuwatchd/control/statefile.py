"""Files in ``fan_control.state_directory``: written atomically and durably, named safely.

The Dell PCIe crash marker, the hand-back records, the fan calibration and the tuned gains all
live there; a crash or a power cut between two writes must leave either the old file or the
new one, never half of one (write to a temporary file, fsync, rename, fsync the directory).
"""

from __future__ import annotations

import os


def safe_name(text: str) -> str:
    """``text`` as a file-name part (letters, digits, ``-_.``; anything else ``_``)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def _fsync_directory(directory: str) -> None:
    fd = os.open(directory or ".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: str, text: str, mode: int = 0o600) -> None:
    """Write ``path`` atomically and durably (tmp + fsync + rename + fsync of the directory)
    with ``mode``; raises OSError, leaving no temporary file behind."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o750, exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)  # the umask may have narrowed it
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_directory(directory)


def remove_durably(path: str) -> None:
    """Remove ``path`` (absent is fine) and sync its directory; raises OSError."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return
    _fsync_directory(os.path.dirname(path) or ".")
