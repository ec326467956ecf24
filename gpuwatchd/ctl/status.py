"""``gpuwatchctl status``: the daemon's view of the node, and its health as the exit code.

It talks only to the daemon's status socket (gpuwatchd.status.client) and never to hardware:
a second IPMI or NVML client would compete with the daemon (and could leave a BMC in manual
fan mode). 0 healthy, 1 degraded (the daemon's health, or a hardware fault: the
``hardware`` section), 3 not running, 4 status unknown (gpuwatchd.ctl.common).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from gpuwatchd.ctl.common import (
    EXIT_DEGRADED,
    EXIT_HEALTHY,
    EXIT_NOT_RUNNING,
    EXIT_UNKNOWN,
    err,
    seconds,
)
from gpuwatchd.status.client import NotRunning, QueryError, query
from gpuwatchd.status.paths import SOCKET_ENV, client_socket
from gpuwatchd.status.sections import hardware
from gpuwatchd.status.table import render

HEALTH_EXIT = {"healthy": EXIT_HEALTHY, "degraded": EXIT_DEGRADED}


def exit_code_for(exc: QueryError) -> int:
    """The exit code for a failed query: 3 not running, 4 status unknown."""
    return EXIT_NOT_RUNNING if isinstance(exc, NotRunning) else EXIT_UNKNOWN


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true",
                   help="print the status document (versioned JSON, \"schema\": 1)")
    p.add_argument("--socket", metavar="PATH",
                   help=f"status socket (default: ${SOCKET_ENV}, else the daemon's default)")
    p.add_argument("--no-color", action="store_true", help="no colours, even on a terminal")
    p.add_argument("--timeout", type=seconds, default=2.0, metavar="SECONDS",
                   help="give up waiting for the daemon after SECONDS (default 2)")


def run(args: argparse.Namespace) -> int:
    """Ask the daemon, print the document (table or ``--json``), exit with its health."""
    path = client_socket(args.socket)
    try:
        doc = query(path, args.timeout)
    except QueryError as exc:
        err(str(exc))
        return exit_code_for(exc)
    code = HEALTH_EXIT.get(_health(doc), EXIT_UNKNOWN)
    if code == EXIT_HEALTHY and hardware.faulty(doc):  # a failed PSU, fan, GPU, ...
        code = EXIT_DEGRADED
    if code == EXIT_UNKNOWN:
        err(f"{path}: the answer has no health verdict (is it a gpuwatchd socket?)")
    if doc.get("schema") != 1:
        err(f"warning: status schema {doc.get('schema')!r}; this gpuwatchctl knows 1")
    if args.json:
        print(json.dumps(doc, indent=2))
        return code
    try:
        text = render(doc, time.time(), color=_use_color(args.no_color))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        err(f"{path}: cannot read the status document ({type(exc).__name__}: {exc}); "
            "try --json")
        return EXIT_UNKNOWN
    print(text)
    return code


def _health(doc: dict[str, object]) -> str:
    health = doc.get("health")
    status = health.get("status") if isinstance(health, dict) else None
    return status if isinstance(status, str) else ""


def _use_color(disabled: bool) -> bool:
    """Colour only on a terminal, and never with --no-color, $NO_COLOR or TERM=dumb."""
    if disabled or os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return sys.stdout.isatty()
