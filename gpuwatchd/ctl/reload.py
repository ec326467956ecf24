"""``gpuwatchctl reload``: ask the running daemon to re-read its config, and say if it did.

systemd's ``ExecReload=`` runs this: unlike ``kill -HUP``, it waits for the daemon's answer,
so ``systemctl reload gpuwatchd`` fails (and the journal names file:line: key) when the daemon
refused the file and kept its running configuration. SIGHUP still reloads, unreported.
Exit codes: 0 applied, 6 refused (the reason on stderr), 3 not running, 4 permission denied or
no sensible answer (gpuwatchd.ctl.common).
"""

from __future__ import annotations

import argparse

from gpuwatchd.ctl.common import EXIT_CONFIG, EXIT_UNKNOWN, err, seconds
from gpuwatchd.ctl.status import exit_code_for
from gpuwatchd.status.client import QueryError, query
from gpuwatchd.status.paths import SOCKET_ENV, client_socket

RELOAD_TIMEOUT_SECONDS = 30.0  # the daemon waits up to 20 s for its loop to run the reload


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--socket", metavar="PATH",
                   help=f"status socket (default: ${SOCKET_ENV}, else the daemon's default)")
    p.add_argument("--timeout", type=seconds, default=RELOAD_TIMEOUT_SECONDS,
                   metavar="SECONDS", help="give up waiting for the daemon after SECONDS "
                                           f"(default {RELOAD_TIMEOUT_SECONDS:g})")


def run(args: argparse.Namespace) -> int:
    """Send ``reload``; 0 when the daemon applied the file, 6 when it refused it."""
    path = client_socket(args.socket)
    try:
        doc = query(path, args.timeout, command="reload")
    except QueryError as exc:
        err(str(exc))
        return exit_code_for(exc)
    outcome = doc.get("reload")
    if outcome == "applied":
        print(f"configuration reloaded from {doc.get('source')}")
        return 0
    if outcome == "refused":
        err(f"reload refused, the daemon keeps its running configuration: {doc.get('reason')}")
        return EXIT_CONFIG
    err(f"{path}: the answer says neither applied nor refused (is it a gpuwatchd socket?)")
    return EXIT_UNKNOWN
