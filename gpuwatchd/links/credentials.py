"""BMC passwords: read from a file or a systemd credential, and kept out of sight.

A password is never inline in the config (which is often world-readable) and never on a
command line. It comes from ``password_file`` (warned about when group or others can read it)
or from a systemd credential (``password_credential: NAME`` reads
``$CREDENTIALS_DIRECTORY/NAME``, set up by ``LoadCredential=NAME:/etc/gpuwatchd/NAME`` or
``SetCredentialEncrypted=`` in the unit). The value is wrapped in :class:`Secret`, whose
``repr``/``str`` hide it, so it cannot reach a log line, a metric, an exception message or a
status document by accident; only the links call :meth:`Secret.reveal`, at the last moment.

Shell equivalent of the permission check: ``stat -c %a /etc/gpuwatchd/idrac.password`` (600).
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import NoReturn

from gpuwatchd.config import BmcConfig
from gpuwatchd.config.files import FileRefused, check_regular, read_regular
from gpuwatchd.errors import ConfigError

log = logging.getLogger(__name__)

MAX_SECRET_BYTES = 4096  # a password file larger than this is a wrong path, not a password


class Secret:
    """A secret string whose repr and str never show it; not picklable, not comparable."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself: pass it straight to the library that needs it, nowhere else."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{MASK}')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Secret cannot be pickled")

    def __bool__(self) -> bool:
        return bool(self._value)


MASK = "********"
MIN_SCRUB_CHARS = 3  # a shorter secret would blank ordinary words of the message


def scrub(text: str, secret: Secret | None) -> str:
    """Defence in depth: blank the secret should a library message ever contain it."""
    value = secret.reveal() if secret is not None else ""
    return text.replace(value, MASK) if len(value) >= MIN_SCRUB_CHARS else text


def describe(bmc: BmcConfig) -> str:
    """``"BMC idrac (192.0.2.10:623)"``: how every message names a BMC (never with a secret)."""
    if bmc.transport == "inband" and bmc.protocol == "ipmi":
        return f"BMC {bmc.name} (in-band {bmc.ipmi_device})"
    where = bmc.host or "?"
    return f"BMC {bmc.name} ({where}:{bmc.port})" if bmc.port else f"BMC {bmc.name} ({where})"


def load_password(bmc: BmcConfig, environ: Mapping[str, str] | None = None) -> Secret | None:
    """The BMC's password, or None when the config names no source (in-band IPMI needs none).

    Read again on every call (each session login), so a rotated password is picked up. Raises
    ConfigError naming the BMC and the file, never the content.
    """
    env = os.environ if environ is None else environ
    if bmc.password_credential:
        directory = env.get("CREDENTIALS_DIRECTORY")
        if not directory:
            _fail(bmc, f"password_credential {bmc.password_credential!r} needs "
                       "$CREDENTIALS_DIRECTORY (LoadCredential= in the systemd unit), "
                       "which is not set")
        return _read(bmc, Path(directory) / bmc.password_credential, check_mode=False)
    if bmc.password_file:
        return _read(bmc, Path(bmc.password_file), check_mode=True)
    return None


def _read(bmc: BmcConfig, path: Path, check_mode: bool) -> Secret:
    """Read through gpuwatchd.config.files: a FIFO there hung ``gpuwatchctl failsafe``."""
    try:
        mode = check_regular(path, MAX_SECRET_BYTES)
        raw = read_regular(path, MAX_SECRET_BYTES)
    except FileRefused as exc:
        if exc.problem.endswith("not a regular file"):
            _fail(bmc, f"password file {path} is not a regular file ({exc.problem})")
        if exc.problem.startswith("it is larger than"):
            _fail(bmc, f"password file {path} is larger than {MAX_SECRET_BYTES} bytes")
        _fail(bmc, f"cannot read password file {path}: {exc.problem}")
    if check_mode and mode & (stat.S_IRGRP | stat.S_IROTH):
        log.warning("%s: password file %s is readable by group or others (mode %04o): "
                    "chmod 600 it", describe(bmc), path, stat.S_IMODE(mode),
                    extra={"BMC": bmc.name})
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        _fail(bmc, f"password file {path} is not UTF-8 text")
    text = text.rstrip("\r\n")  # one trailing newline from `echo`; inner spaces are kept
    if not text:
        _fail(bmc, f"password file {path} is empty")
    return Secret(text)


def _fail(bmc: BmcConfig, message: str) -> NoReturn:
    raise ConfigError(f"{describe(bmc)}: {message}")
