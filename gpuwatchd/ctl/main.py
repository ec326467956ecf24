"""``gpuwatchctl``: ask the running daemon how the node is, check a config file.

It talks only to the daemon's status socket and never to hardware: a second IPMI or NVML
client would compete with the daemon (and could leave a BMC in manual fan mode). The two
exceptions run without the daemon (gpuwatchd.control.cli): ``failsafe`` hands the fans back to
the BMC (systemd's ``ExecStopPost=``), ``calibrate`` measures them with the daemon stopped.

Exit codes follow ``systemctl status`` (LSB):

====  =================================================================
0     running and healthy (``check-config``: the file is valid)
1     running but degraded (a collector failing or stale, a GPU down, ...)
2     usage error
3     the daemon is not running (no socket, or nobody listens on it)
4     status unknown (permission denied on the socket, or no sensible answer)
6     ``check-config``: the file is invalid (as ``gpuwatchd --check-config``)
====  =================================================================
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from gpuwatchd import __version__
from gpuwatchd.config import EXIT_CONFIG, ConfigError, load
from gpuwatchd.ctl import fan as _fan
from gpuwatchd.status.client import render
from gpuwatchd.status.document import NotRunning, QueryError, query
from gpuwatchd.status.paths import SOCKET_ENV, client_socket

EXIT_HEALTHY = 0
EXIT_DEGRADED = 1
EXIT_USAGE = 2
EXIT_NOT_RUNNING = 3
EXIT_UNKNOWN = 4
PROG = "gpuwatchctl"
HEALTH_EXIT = {"healthy": EXIT_HEALTHY, "degraded": EXIT_DEGRADED}


@dataclass(frozen=True)
class Subcommand:
    """One ``gpuwatchctl`` subcommand: its help line, its arguments, and what it does."""

    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def exit_code_for(exc: QueryError) -> int:
    """The exit code for a failed query: 3 not running, 4 status unknown."""
    return EXIT_NOT_RUNNING if isinstance(exc, NotRunning) else EXIT_UNKNOWN


def _status_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true",
                   help="print the status document (versioned JSON, \"schema\": 1)")
    p.add_argument("--socket", metavar="PATH",
                   help=f"status socket (default: ${SOCKET_ENV}, else the daemon's default)")
    p.add_argument("--no-color", action="store_true", help="no colours, even on a terminal")
    p.add_argument("--timeout", type=_seconds, default=2.0, metavar="SECONDS",
                   help="give up waiting for the daemon after SECONDS (default 2)")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 < value <= 3600.0:  # NaN fails too
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds in (0, 3600]")
    return value


def _status(args: argparse.Namespace) -> int:
    """``gpuwatchctl status``: the daemon's view of the node, and its health as the exit code."""
    path = client_socket(args.socket)
    try:
        doc = query(path, args.timeout)
    except QueryError as exc:
        _err(str(exc))
        return exit_code_for(exc)
    code = HEALTH_EXIT.get(_health(doc), EXIT_UNKNOWN)
    if code == EXIT_UNKNOWN:
        _err(f"{path}: the answer has no health verdict (is it a gpuwatchd socket?)")
    if doc.get("schema") != 1:
        _err(f"warning: status schema {doc.get('schema')!r}; this gpuwatchctl knows 1")
    if args.json:
        print(json.dumps(doc, indent=2))
        return code
    try:
        text = render(doc, time.time(), color=_use_color(args.no_color))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        _err(f"{path}: cannot read the status document ({type(exc).__name__}: {exc}); "
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


def _version(_args: argparse.Namespace) -> int:
    print(f"{PROG} {__version__}")
    return 0


def _check_config_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE", help="the YAML config file to validate")


def _check_config(args: argparse.Namespace) -> int:
    """Validate FILE as the daemon would; errors name file:line: key (exit 6)."""
    try:
        load(args.file)
    except ConfigError as exc:
        _err(str(exc))
        return EXIT_CONFIG
    print(f"{args.file}: OK")
    return 0


SUBCOMMANDS: dict[str, Subcommand] = {
    "status": Subcommand("show the daemon's state and the node's health", _status_arguments,
                         _status),
    "version": Subcommand("print the version", lambda p: None, _version),
    "check-config": Subcommand("validate a config file (exit 6 if invalid)",
                               _check_config_arguments, _check_config),
    "failsafe": Subcommand("hand the fans back to the BMC's automatic control, without the "
                           "daemon (ExecStopPost=)", _fan.failsafe_arguments,
                           _fan.failsafe),
    "calibrate": Subcommand("step the fan duty, record rpm, store the lowest safe duty "
                            "(the daemon must be stopped)", _fan.calibrate_arguments,
                            _fan.calibrate_cmd),
}


def parser() -> argparse.ArgumentParser:
    """The argument parser (one subparser per SUBCOMMANDS entry)."""
    p = argparse.ArgumentParser(
        prog=PROG, description="Query the gpuwatchd daemon and check its configuration.",
        epilog="Exit codes: 0 healthy, 1 degraded, 2 usage, 3 not running, 4 status unknown, "
               "6 invalid config.")
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    subs = p.add_subparsers(dest="command", metavar="COMMAND")
    for name, sub in SUBCOMMANDS.items():
        sp = subs.add_parser(name, help=sub.help, description=sub.help)
        sub.arguments(sp)
        sp.set_defaults(handler=sub.run)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run ``gpuwatchctl``; returns the exit code (argparse's usage errors give 2)."""
    p = parser()
    try:
        args = p.parse_args(argv)
    except SystemExit as exc:  # --help/--version (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.command is None:
        p.print_usage(sys.stderr)
        _err("a command is required: " + ", ".join(SUBCOMMANDS))
        return EXIT_USAGE
    try:
        code: int = args.handler(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `gpuwatchctl status | head -1`
        _quiet_stdout()
        return 141
    return code


def _err(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr)


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
