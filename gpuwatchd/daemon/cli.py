"""``gpuwatchd`` command line: ``--config FILE``, ``--demo``, ``--check-config FILE``.

Flags follow the Prometheus exporters' spelling where one exists (``--web.listen-address``,
``--log.level``). Every user error ends with a one-line message and a documented exit code,
never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import tempfile
from importlib import resources
from pathlib import Path

from gpuwatchd import __version__, config
from gpuwatchd.config import EXIT_CONFIG, Config, ConfigError
from gpuwatchd.daemon import logs
from gpuwatchd.daemon.service import EXIT_FAILURE, Daemon, install_signals
from gpuwatchd.errors import GpuwatchdError
from gpuwatchd.exporter import webconfig
from gpuwatchd.hardware import Hardware, real
from gpuwatchd.sim import esxi
from gpuwatchd.sim.node import DEMO_PROFILES, demo_node, workstation

log = logging.getLogger(__name__)

DEFAULT_CONFIG = "/etc/gpuwatchd/gpuwatchd.yaml"
DEMOS = ("server", "workstation", "esxi")  # --demo PROFILE: the simulated node and its config


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gpuwatchd",
        description="GPU server telemetry and fan-control daemon.",
        epilog="Exit codes: 0 stopped cleanly, 1 runtime failure, 2 usage error, "
               "6 invalid configuration.")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--config", metavar="FILE", help=f"config file (default {DEFAULT_CONFIG}; "
                                                       "with --demo, instead of the demo's)")
    mode.add_argument("--check-config", metavar="FILE", help="validate FILE and exit")
    p.add_argument("--demo", nargs="?", const="server", choices=DEMOS, metavar="PROFILE",
                   help="run on a simulated node (no hardware): server (default: a Dell "
                        "server with two Tesla P40s), workstation (an RTX 2070 with its "
                        "own fans) or esxi (a vGPU guest controller VM, the host's GPU "
                        "temperatures from a file)")
    p.add_argument("--log.level", "--log-level", dest="log_level", default="info",
                   type=logs.level, metavar="LEVEL",
                   help="debug, info, warn (or warning), error (default info)")
    p.add_argument("--log.format", dest="log_format", default="logfmt", choices=logs.FORMATS,
                   help="stderr log format, logfmt or json (default logfmt; under systemd "
                        "the journal gets structured fields either way)")
    p.add_argument("--web.listen-address", dest="listen", action="append", metavar="HOST:PORT",
                   type=_listen_address, help="override exporter.listen (repeatable)")
    p.add_argument("--web.config.file", dest="web_config_file", metavar="FILE",
                   help="override exporter.web_config_file (exporter-toolkit web config)")
    p.add_argument("--web.telemetry-path", dest="telemetry_path", metavar="PATH",
                   type=_telemetry_path, help="override exporter.telemetry_path")
    p.add_argument("--status-socket", metavar="PATH", help="override status_socket")
    p.add_argument("--demo-gpus", type=int, default=2, choices=range(1, 17), metavar="N",
                   help="number of simulated GPUs with --demo (1-16, default 2)")
    p.add_argument("--demo-profile", default="default", choices=DEMO_PROFILES,
                   help="the --demo node: default (Tesla P40s) or cluster (A100 80GB, "
                        "GPU 0 in MIG mode with mixed profiles)")
    p.add_argument("--version", action="version", version=f"gpuwatchd {__version__}")
    return p


def _listen_address(addr: str) -> str:
    if config.parse_listen(addr) is None:
        raise argparse.ArgumentTypeError(f"{addr!r} is not HOST:PORT (e.g. 127.0.0.1:10045, "
                                         "[::1]:10045 or :10045)")
    return addr


def _telemetry_path(path: str) -> str:
    if not path.startswith("/") or any(c.isspace() or c in "?#" for c in path):
        raise argparse.ArgumentTypeError(f"{path!r} is not an absolute URL path like /metrics")
    return path


def demo_state_directory(port: int | None) -> str:
    """The demo's own state directory, never the system's /var/lib/gpuwatchd: a --demo run
    must not see or delete a real daemon's Dell PCIe marker or hand-back record (issue 10).
    Under $XDG_RUNTIME_DIR (else the temporary directory), keyed by uid and listen port, so
    two demos on one machine do not share it either."""
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return os.path.join(base, f"gpuwatchd-demo-{os.getuid()}-{port or 0}")


def _demo_config(state_directory: str | None = None, demo: str = "server") -> Config:
    """The demo's config (``--demo PROFILE``: server, workstation or esxi), with a private state
    directory (``state_directory``, else :func:`demo_state_directory` of its listen port)."""
    name = {"workstation": "workstation.yaml", "esxi": "esxi.yaml"}.get(demo, "demo.yaml")
    text = resources.files("gpuwatchd.sim").joinpath(name).read_text(encoding="utf-8")
    if demo == "esxi":  # the file: input names this process's host-temperature file
        text = esxi.config_text()
    return _private_state(config.loads(text, f"<{name}>"), state_directory)


def _private_state(cfg: Config, state_directory: str | None = None) -> Config:
    if state_directory is None:
        first = config.parse_listen(cfg.exporter.listen[0]) if cfg.exporter.listen else None
        state_directory = demo_state_directory(first[1] if first else None)
    return dataclasses.replace(cfg, fan_control=dataclasses.replace(
        cfg.fan_control, state_directory=state_directory))


def _overrides(cfg: Config, args: argparse.Namespace) -> Config:
    """Apply command-line overrides, validated like the file itself."""
    exporter = cfg.exporter
    if args.listen:
        exporter = dataclasses.replace(exporter, listen=tuple(args.listen))
    if args.web_config_file:
        exporter = dataclasses.replace(exporter, web_config_file=args.web_config_file)
    if args.telemetry_path:
        exporter = dataclasses.replace(exporter, telemetry_path=args.telemetry_path)
    cfg = dataclasses.replace(cfg, exporter=exporter)
    if args.status_socket:
        cfg = dataclasses.replace(cfg, status_socket=args.status_socket)
    return cfg


def _demo_hardware(gpus: int, demo: str = "server", profile: str = "default") -> Hardware:
    """The simulated node of ``--demo`` (gpuwatchd.sim: nothing opened until it runs)."""
    if demo == "workstation":
        return workstation().hardware()
    if demo == "esxi":  # the writer thread plays the SSH timer filling the file: input
        node, writer = esxi.esxi()
        writer.start()
        return node.hardware()
    return demo_node(profile, gpus).hardware()


def _check_web_config(cfg: Config) -> None:
    """Load ``exporter.web_config_file`` once, so a bad one is a config error (exit 6)."""
    if cfg.exporter.web_config_file:
        webconfig.load(cfg.exporter.web_config_file)


def run(argv: list[str] | None = None) -> int:
    """Parse arguments and run; returns the exit code."""
    args = parser().parse_args(argv)
    if args.demo and args.check_config:
        parser().error("--demo and --check-config do not go together")
    if args.check_config == "" or args.config == "":
        parser().error("the config file name is empty")
    logs.setup(args.log_level, args.log_format)
    if args.check_config is not None:
        try:
            _check_web_config(config.load(args.check_config))
        except ConfigError as exc:
            print(f"gpuwatchd: {exc}", file=sys.stderr)
            return EXIT_CONFIG
        print(f"{args.check_config}: OK")
        return 0
    path = args.config if args.demo else (args.config or DEFAULT_CONFIG)
    try:
        cfg = config.load(path) if path else _demo_config(demo=args.demo)
        cfg = _overrides(cfg, args)
        if not path:  # the demo's state directory follows --web.listen-address
            cfg = _private_state(cfg)
        _check_web_config(cfg)
    except ConfigError as exc:
        log.error("%s", exc)
        return EXIT_CONFIG
    hw = _demo_hardware(args.demo_gpus, args.demo, args.demo_profile) if args.demo else real()

    def reload() -> Config:
        return _overrides(config.load(path or DEFAULT_CONFIG), args)

    daemon = Daemon(cfg, hw, config_path=str(Path(path)) if path else None,
                    reload=reload if path else None)
    install_signals(daemon)
    try:
        daemon.start()
    except (OSError, GpuwatchdError) as exc:
        log.error("cannot start: %s", exc)
        daemon.shutdown()
        return EXIT_FAILURE
    return daemon.run()


def main(argv: list[str] | None = None) -> int:
    """Console script ``gpuwatchd``."""
    return run(argv)
