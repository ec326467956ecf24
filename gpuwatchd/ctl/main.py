"""``gpuwatchctl``: ask the running daemon how the node is, check a config file, hand the fans
back, calibrate them. ``python -m gpuwatchd.ctl.main`` is the same program.

One table, :data:`SUBCOMMANDS`: each row gives a subcommand's help line, its arguments and
what it runs. ``status`` (gpuwatchd.ctl.status) only talks to the daemon's status socket,
never to hardware; ``reload`` (gpuwatchd.ctl.reload) asks the daemon over the same socket to
re-read its config and reports whether it did (systemd's ``ExecReload=``). The exceptions run
without the daemon (gpuwatchd.ctl.fan): ``failsafe`` hands the fans back to the BMC
(systemd's ``ExecStopPost=``), ``calibrate`` measures them with the daemon stopped; ``dump``
(gpuwatchd.ctl.dump) reads the BMCs and GPUs itself for a bug report.
Exit codes: gpuwatchd.ctl.common.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

from gpuwatchd import __version__
from gpuwatchd.config import ConfigError, load
from gpuwatchd.ctl import dump, fan
from gpuwatchd.ctl import reload as reload_cmd
from gpuwatchd.ctl import status as status_cmd
from gpuwatchd.ctl.common import EXIT_CONFIG, EXIT_USAGE, PROG, err


@dataclass(frozen=True)
class Subcommand:
    """One ``gpuwatchctl`` subcommand: its help line, its arguments, and what it does."""

    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def _no_arguments(_p: argparse.ArgumentParser) -> None:
    pass


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
        err(str(exc))
        return EXIT_CONFIG
    print(f"{args.file}: OK")
    return 0


SUBCOMMANDS: dict[str, Subcommand] = {
    "status": Subcommand("show the daemon's state and the node's health",
                         status_cmd.arguments, status_cmd.run),
    "reload": Subcommand("make the daemon re-read its config; exit 6 with the reason if it "
                         "refused the file (ExecReload=)", reload_cmd.arguments, reload_cmd.run),
    "version": Subcommand("print the version", _no_arguments, _version),
    "check-config": Subcommand("validate a config file (exit 6 if invalid)",
                               _check_config_arguments, _check_config),
    "failsafe": Subcommand("hand the fans back to the BMC's automatic control, without the "
                           "daemon (ExecStopPost=)", fan.failsafe_arguments, fan.failsafe),
    "calibrate": Subcommand("step the fan duty, record rpm, store the lowest safe duty "
                            "(the daemon must be stopped)", fan.calibrate_arguments,
                            fan.calibrate_cmd),
    "tune": Subcommand("identify a fan zone's plant from a duty step, store SIMC gains "
                       "(the daemon must be stopped)", fan.tune_arguments, fan.tune_cmd),
    "dump": Subcommand("write what gpuwatchd sees from each BMC and GPU to a redacted archive "
                       "for a bug report (docs/support-dump.md)", dump.arguments, dump.run),
}


def parser() -> argparse.ArgumentParser:
    """The argument parser (one subparser per SUBCOMMANDS entry)."""
    p = argparse.ArgumentParser(
        prog=PROG, description="Query the gpuwatchd daemon and check its configuration.",
        epilog="Exit codes: 0 healthy, 1 degraded, 2 usage, 3 not running, 4 status unknown, "
               "6 invalid config (reload: refused).")
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
        err("a command is required: " + ", ".join(SUBCOMMANDS))
        return EXIT_USAGE
    try:
        code: int = args.handler(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `gpuwatchctl status | head -1`
        _quiet_stdout()
        return 141
    return code


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
