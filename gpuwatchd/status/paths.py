"""Where the status socket lives, and preparing its place on disk for the server.

Root (the packaged systemd service): ``/run/gpuwatchd/status.sock``, in the unit's
``RuntimeDirectory=gpuwatchd``. Anyone else (``gpuwatchd --demo`` as a user): the user's
runtime directory, ``$XDG_RUNTIME_DIR/gpuwatchd/status.sock`` (``/run/user/<uid>/...``), or
``/tmp/gpuwatchd-<uid>/status.sock`` where there is none (a container, a plain ``su``).

The daemon uses ``config.status_socket or default_socket()``; ``gpuwatchctl`` uses
``--socket PATH``, else ``$GPUWATCHD_SOCKET``, else the system socket if it exists (or if its
directory cannot be entered: that is a user outside the gpuwatchd group, who must be told
"permission denied", not "not running"), else ``default_socket()``.
"""

from __future__ import annotations

import grp
import logging
import os
import socket
import stat
from collections.abc import Callable, Mapping

from gpuwatchd.errors import GpuwatchdError

log = logging.getLogger(__name__)

SYSTEM_SOCKET = "/run/gpuwatchd/status.sock"
SOCKET_ENV = "GPUWATCHD_SOCKET"
SOCKET_NAME = "status.sock"
SOCKET_GROUP = "gpuwatchd"  # the socket is 0660 root:gpuwatchd; members may run gpuwatchctl
DIR_MODE = 0o755  # others must reach the socket; the socket's own mode decides who may talk


class StatusServerError(GpuwatchdError):
    """The status socket cannot be served (in use by a live daemon, bad path, no rights)."""


def default_socket(uid: int | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The default status socket path for ``uid`` (default: this process's effective uid)."""
    uid = os.geteuid() if uid is None else uid
    env = os.environ if environ is None else environ
    if uid == 0:
        return SYSTEM_SOCKET
    runtime = env.get("XDG_RUNTIME_DIR", "")
    if runtime:
        return os.path.join(runtime, "gpuwatchd", SOCKET_NAME)
    return os.path.join("/tmp", f"gpuwatchd-{uid}", SOCKET_NAME)  # noqa: S108 - per-uid dir


def client_socket(option: str | None, environ: Mapping[str, str] | None = None,
                  system_socket: str = SYSTEM_SOCKET,
                  stat_fn: Callable[[str], os.stat_result] = os.stat) -> str:
    """The socket gpuwatchctl asks: ``--socket``, else ``$GPUWATCHD_SOCKET``, else the
    system service's socket if it exists (a member of the gpuwatchd group asking the packaged
    service) or cannot be looked at (not a member: the query then says permission denied),
    else this user's default. ``stat_fn`` is injected by tests (they run as root)."""
    env = os.environ if environ is None else environ
    chosen = option or env.get(SOCKET_ENV, "")
    if chosen:
        return chosen
    try:
        stat_fn(system_socket)
    except PermissionError:  # /run/gpuwatchd is 0750 root:gpuwatchd: there, but closed
        return system_socket
    except OSError:
        return default_socket(environ=env)
    return system_socket


def prepare_dir(parent: str, euid: int | None = None) -> None:
    """Create the socket's directory 0755 if missing; refuse one that another user owns.

    ``euid`` is the user the directory must belong to (default: this process's; root's is
    accepted too). Raises StatusServerError, or OSError (e.g. no rights to create it).
    """
    euid = os.geteuid() if euid is None else euid
    if not os.path.isdir(parent):
        os.makedirs(parent, mode=DIR_MODE, exist_ok=True)
        os.chmod(parent, DIR_MODE)  # makedirs applies the umask
    owner = os.stat(parent).st_uid
    if owner not in (0, euid):  # e.g. a /tmp/gpuwatchd-<uid> planted by someone else
        raise StatusServerError(f"{parent} belongs to uid {owner}, not to this user; "
                                "remove it or set status_socket")


def clear_stale(path: str) -> None:
    """Remove a socket file left by a crashed daemon; refuse if a live one answers on it."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise StatusServerError(f"{path} exists and is not a socket; not removing it")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(path)
        except ConnectionRefusedError:
            os.unlink(path)
            log.info("removed stale status socket %s (left by a daemon that died)", path)
            return
        except OSError as exc:
            if not isinstance(exc, (TimeoutError, BlockingIOError)):  # full backlog: alive
                raise StatusServerError(f"cannot probe {path}: {exc.strerror or exc}") from None
    raise StatusServerError(f"another gpuwatchd is already answering on {path}; "
                            "stop it first, or give this one another status_socket")


def set_group(path: str, group: str | None) -> None:
    """As root, hand the socket to ``group`` (if that group exists) so its members can read."""
    if group is None or os.geteuid() != 0:
        return
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        log.debug("group %s does not exist; %s stays root-only", group, path)
        return
    os.chown(path, -1, gid)
