"""``gpuwatchctl failsafe`` and ``gpuwatchctl calibrate``: fan control without the daemon.

``failsafe`` hands every fan back to the BMC directly: systemd runs it as ``ExecStopPost=``
so the fans are restored after SIGKILL, a crash or a watchdog kill (when the daemon stopped
cleanly it has already done the same). It never depends on the config file being valid:

1. every hand-back record the daemon left in the state directory (written before it took
   manual control, removed when it handed back: gpuwatchd.control.handback) is handed back
   first, from the record alone; the state directory is ``--state-directory``, else the
   config's ``fan_control.state_directory`` (read leniently: an invalid file still names
   it), else /var/lib/gpuwatchd;
2. then the config's own fan controller, if the config is valid and its BMC was not in a
   record (an invalid config with no record: exit 6, nothing known to hand back).

Each hand-back tries ``--attempts`` times, a second apart; exit 0 once every BMC confirmed,
1 if one never did. A Dell's third-party PCIe response is turned back on, and read back to
confirm, wherever the config or record disables it (``third_party_pcie_response: disable``)
and ``third_party_pcie_on_exit`` is not ``leave``: with the marker the daemon left, and also
without it (a marker may be lost). Failures go to stderr with the journal's priority prefix
(``<3>`` error, ``<4>`` warning) when stderr is the journal, so ``journalctl -p warning``
shows a failed hand-back.

``calibrate`` needs the daemon stopped (both would write the fans): see
gpuwatchd.control.calibrate. So does ``tune``: a bounded duty step of every fan with a zone's
GPU temperatures recorded, the plant model and SIMC gains stored for the daemon (see
gpuwatchd.control.tuning); any zone past its setpoint ends it at once, into the BMC's
automatic control. Exit codes as gpuwatchctl's: 0 done, 1 failed, 2 usage,
6 invalid config.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence

from gpuwatchd.collectors.chassis_ipmi import ChassisIpmiCollector
from gpuwatchd.collectors.gpu import GpuCollector
from gpuwatchd.config import Config, ConfigError, ZoneConfig, load
from gpuwatchd.config import fan_drivers as specs
from gpuwatchd.config.files import MAX_CONFIG_BYTES, read_regular
from gpuwatchd.config.load import per_driver
from gpuwatchd.config.selectors import GpuQuantity, GpuSelector
from gpuwatchd.config.yamlparse import parse
from gpuwatchd.control import calibrate, handback, statefile, tuning
from gpuwatchd.control.factory import bmc_of, ipmi_link, make_driver
from gpuwatchd.ctl.common import EXIT_CONFIG, PROG
from gpuwatchd.errors import GpuwatchdError
from gpuwatchd.hardware import Hardware, real
from gpuwatchd.links import nvml
from gpuwatchd.model import FanReading, GpuReading
from gpuwatchd.status.client import QueryError, query
from gpuwatchd.status.paths import default_socket

DEFAULT_CONFIG = "/etc/gpuwatchd/gpuwatchd.yaml"
DEFAULT_STATE_DIRECTORY = "/var/lib/gpuwatchd"
Hw = Callable[[], Hardware]
SD_ERR, SD_WARNING = 3, 4  # sd-daemon(3) priority prefixes


def _on_journal() -> bool:
    """stderr is the journal (systemd sets JOURNAL_STREAM to its device:inode)."""
    try:
        device, inode = (int(p) for p in os.environ.get("JOURNAL_STREAM", "").split(":"))
        st = os.fstat(sys.stderr.fileno())
    except (ValueError, OSError):
        return False
    return (st.st_dev, st.st_ino) == (device, inode)


def _err(message: str, priority: int = SD_ERR) -> None:
    """``gpuwatchctl: message`` on stderr, at journal ``priority`` under systemd."""
    prefix = f"<{priority}>" if _on_journal() else ""
    print(f"{prefix}{PROG}: {message}", file=sys.stderr)


class _JournalPriority(logging.Handler):
    """The drivers' own warnings and errors (a Dell response that cannot be restored) on
    stderr with their journal priority, as _err writes."""

    def emit(self, record: logging.LogRecord) -> None:
        _err(record.getMessage(), SD_ERR if record.levelno >= logging.ERROR else SD_WARNING)


def _config(path: str) -> Config | None:
    try:
        return load(path)
    except ConfigError as exc:
        _err(str(exc))
        return None


def _lenient_state_directory(path: str) -> str | None:
    """``fan_control.state_directory`` from a config file that may not validate."""
    try:
        data = parse(read_regular(path, MAX_CONFIG_BYTES).decode("utf-8"), path)
    except (ConfigError, UnicodeDecodeError):
        return None
    fc = data.get("fan_control") if isinstance(data, dict) else None
    value = fc.get("state_directory") if isinstance(fc, dict) else None
    return value if isinstance(value, str) and value else None


def _common_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", default=DEFAULT_CONFIG,
                   help=f"the daemon's config file (default {DEFAULT_CONFIG})")
    p.add_argument("--attempts", type=int, default=3, choices=range(1, 31), metavar="N",
                   help="tries, a second apart, before giving up (default 3)")


def failsafe_arguments(p: argparse.ArgumentParser) -> None:
    _common_arguments(p)
    p.add_argument("--state-directory", metavar="DIR", default=None,
                   help="where the daemon's hand-back records are (default: the config's "
                        f"fan_control.state_directory, else {DEFAULT_STATE_DIRECTORY})")


def failsafe(args: argparse.Namespace, hardware: Hw = real) -> int:
    """``gpuwatchctl failsafe``: the BMC's automatic fan control, now (records first)."""
    handler = _JournalPriority(logging.WARNING)
    logging.getLogger().addHandler(handler)
    try:
        return _failsafe(args, hardware)
    finally:
        logging.getLogger().removeHandler(handler)


def _failsafe(args: argparse.Namespace, hardware: Hw) -> int:
    try:
        config: Config | None = load(args.config)
        problem = ""
    except ConfigError as exc:
        config, problem = None, str(exc)
    state = getattr(args, "state_directory", None) or (
        config.fan_control.state_directory if config is not None else
        _lenient_state_directory(args.config)) or DEFAULT_STATE_DIRECTORY
    rc, done = 0, set()
    for path in handback.records_in(state):
        try:
            record = handback.read_record(path)
        except ConfigError as exc:
            _err(f"unusable hand-back record: {exc}")
            rc = 1
            continue
        if _hand_back(record.config, args.attempts, hardware, f"from {path}"):
            done.add(record.target)
            _remove(path)
        else:
            rc = 1
    if config is None:
        if done or rc:
            if problem:
                _err(f"the config does not validate (the records were used): {problem}",
                     SD_WARNING)
            return rc
        _err(f"{problem} (and no hand-back record in {state}: nothing known to hand back)")
        return EXIT_CONFIG
    ones = [one for one in per_driver(config)  # fan_control.drivers: each in turn
            if one.fan_control.driver != specs.NONE and one.fan_control.zones]
    if not ones:
        if not done:
            print("fan control is off in the config: nothing to hand back")
        return rc
    for one in ones:
        if (one.fan_control.bmc or one.fan_control.driver) in done:
            continue
        if not _hand_back(one, args.attempts, hardware, "from the config"):
            rc = 1
    return rc


def _hand_back(config: Config, attempts: int, hardware: Hw, source: str) -> bool:
    """Release the fan driver ``config`` builds, retried; True once the BMC confirmed."""
    last = ""
    for attempt in range(attempts):
        if attempt:
            time.sleep(1.0)
        try:
            built = make_driver(config, hardware(), recovering=True)
        except GpuwatchdError as exc:
            last = str(exc)
            continue
        try:
            built.driver.release()
        except GpuwatchdError as exc:
            last = str(exc)
            continue
        finally:
            built.close()
        print(f"fans handed back to {built.driver.target} ({built.driver.name}): automatic "
              f"control ({source})")
        return True
    target = config.fan_control.bmc or config.fan_control.driver
    _err(f"could not hand the fans back after {attempts} attempt(s) to {target} ({source}): "
         f"{last}")
    return False


def _remove(path: str) -> None:
    try:
        statefile.remove_durably(path)
    except OSError as exc:
        _err(f"cannot remove the hand-back record {path} ({exc.strerror})", SD_WARNING)


def calibrate_arguments(p: argparse.ArgumentParser) -> None:
    _common_arguments(p)
    p.add_argument("--settle", type=float, default=15.0, metavar="SECONDS",
                   help="wait this long at each duty before reading the fans (default 15)")
    p.add_argument("--margin", type=float, default=0.2,
                   help="keep every fan this much above its lower threshold (default 0.2)")


def read_fans(config: Config, hw: Hardware) -> Callable[[], Sequence[FanReading]]:
    """Fan speeds and lower thresholds of the fan-control BMC: the chassis collector's own
    readings, thresholds included (``ipmitool sdr type Fan`` / ``ipmitool sensor``)."""
    bmc = bmc_of(config)
    if bmc is None:
        raise ConfigError("fan_control.bmc is not set")
    collector = ChassisIpmiCollector(bmc, ipmi_link(bmc, hw))

    def read() -> list[FanReading]:
        return [f for f in collector.collect().readings if isinstance(f, FanReading)]

    return read


def gpu_watch(config: Config, hw: Hardware) -> Callable[[], str | None]:
    """Why calibration must stop now: a GPU past the lowest zone setpoint (the fans are
    stepping down; the ceiling is above it) or no longer readable once it was; None while
    every GPU is cooler (``nvidia-smi --query-gpu=temperature.gpu``). Without GPUs (off in the
    config, or no NVML) nothing is watched."""
    zones = config.fan_control.zones
    if config.gpus.enabled is False or not zones:
        return lambda: None
    limit = min(z.setpoint_celsius for z in zones)
    collector = GpuCollector(nvml.lease(hw, config.gpus), hw.clock, config.gpus)
    seen = False

    def watch() -> str | None:
        nonlocal seen
        try:
            gpus = [r for r in collector.collect().readings if isinstance(r, GpuReading)]
        except GpuwatchdError as exc:
            return f"GPU temperatures unreadable: {exc}" if seen else None
        seen = seen or bool(gpus)
        for g in gpus:
            temp = g.temperature_celsius
            if temp is not None and temp > limit:
                return f"GPU {g.index} at {temp:.0f} C passed the setpoint {limit:g} C"
        return None

    return watch


def calibrate_cmd(args: argparse.Namespace, hardware: Hw = real,
                  sleep: Callable[[float], None] = time.sleep) -> int:
    """``gpuwatchctl calibrate``: measure duty -> rpm, store the floor."""
    config = _config(args.config)
    if config is None:
        return EXIT_CONFIG
    fc = config.fan_control
    if not calibratable(fc.driver):
        names = [s.name for s in specs.DRIVERS.values() if s.calibratable]
        if calibratable(specs.AUTO):
            names.append(specs.AUTO)
        _err(f"calibrate needs an IPMI fan driver ({', '.join(names)}), not {fc.driver}")
        return 2
    if _daemon_running(config):
        _err("gpuwatchd is running: stop it first (both would write the fans)")
        return 1
    hw = hardware()
    try:
        built = make_driver(config, hw)
        try:
            cal = calibrate.run(built.driver, read_fans(config, hw), sleep, hw.clock.time,
                                settle_seconds=args.settle, margin=args.margin, report=print,
                                watch=gpu_watch(config, hw))
        finally:
            built.close()
        if cal.failed_fans:
            print(f"failed fans (left out of the floor): {', '.join(cal.failed_fans)}")
        if not cal.floor_found:
            _err("no floor: no duty below 100 % keeps the healthy fans clear of their lower "
                 "thresholds (nothing stored)" if cal.points else
                 "no floor: no healthy fan reports a speed (nothing stored)")
            return 1
        path = calibrate.save(cal, fc.state_directory)
    except (GpuwatchdError, OSError) as exc:
        _err(f"calibration failed (the fans were handed back to the BMC): {exc}")
        return 1
    print(f"floor {cal.floor_duty:.0%}: every zone's min_duty is raised to it; saved {path}")
    return 0



def calibratable(driver: str) -> bool:
    """Whether ``gpuwatchctl calibrate`` can step fan_control.driver (the DRIVERS table's
    calibratable column; auto: every driver auto may detect is)."""
    if driver == specs.NONE:
        return False
    return all(s.calibratable for s in specs.candidates(driver))


def _daemon_running(config: Config) -> bool:
    try:
        query(config.status_socket or default_socket(), 1.0)
    except QueryError:
        return False
    return True


def tune_arguments(p: argparse.ArgumentParser) -> None:
    failsafe_arguments(p)
    p.add_argument("--zone", help="the zone to tune (default: the first)")
    p.add_argument("--from-duty", type=float, default=0.8, metavar="RATIO",
                   help="hold this duty first (default 0.8)")
    p.add_argument("--to-duty", type=float, default=0.5, metavar="RATIO",
                   help="then step to this one (default 0.5)")
    p.add_argument("--hold", type=float, default=120.0, metavar="SECONDS",
                   help="seconds at the first duty (default 120)")
    p.add_argument("--run", type=float, default=1200.0, metavar="SECONDS",
                   help="seconds recorded after the step (default 1200; >= 3 time constants)")


def zone_temperature(zone: ZoneConfig, gpus: Sequence[GpuReading]) -> float | None:
    """The hottest GPU temperature the zone's ``gpu:`` inputs name (None: none reads)."""
    temps = [g.temperature_celsius for sel in zone.inputs if isinstance(sel, GpuSelector)
             and sel.quantity is GpuQuantity.TEMPERATURE for g in gpus
             if (sel.index is None or sel.index == g.index) and g.temperature_celsius is not None]
    return max(temps) if temps else None


def tune_cmd(args: argparse.Namespace, hardware: Hw = real,
             sleep: Callable[[float], None] = time.sleep) -> int:
    """``gpuwatchctl tune``: step test, model, gains, stored for the daemon."""
    config = _config(args.config)
    if config is None:
        return EXIT_CONFIG
    fc = config.fan_control
    zones = {z.name: z for z in fc.zones}
    zone = zones.get(args.zone) if args.zone else next(iter(zones.values()), None)
    if zone is None or not calibratable(fc.driver) or config.gpus.enabled is False:
        _err("tune needs an IPMI fan driver, GPUs and a zone with gpu: inputs "
             f"(zones: {', '.join(zones) or 'none'})")
        return 2
    if not 0.0 < args.to_duty < args.from_duty <= 1.0:
        _err("tune steps down: 0 < --to-duty < --from-duty <= 1")
        return 2
    if _daemon_running(config):
        _err("gpuwatchd is running: stop it first (both would write the fans)")
        return 1
    hw = hardware()
    collector = GpuCollector(nvml.lease(hw, config.gpus), hw.clock, config.gpus)

    def read() -> float | None:
        gpus = [r for r in collector.collect().readings if isinstance(r, GpuReading)]
        for other in fc.zones:
            temp = zone_temperature(other, gpus)
            if other is not zone and temp is not None and temp > other.setpoint_celsius:
                raise tuning.TuningAborted(f"zone {other.name} at {temp:.0f} C passed its "
                                           f"setpoint {other.setpoint_celsius:g} C")
        return zone_temperature(zone, gpus)

    try:
        built = make_driver(config, hw)
        try:
            built.driver.take_control()
            try:
                samples = tuning.step_test(
                    lambda d: built.driver.write(dict.fromkeys(built.driver.channels(), d)),
                    read, sleep, duty_from=args.from_duty, duty_to=args.to_duty,
                    setpoint_celsius=zone.setpoint_celsius, hold_seconds=args.hold,
                    run_seconds=args.run, report=print)
            except tuning.TuningAborted:
                built.driver.failsafe()  # at once: the BMC's automatic control
                raise
            finally:
                built.driver.release()
        finally:
            built.close()
        model = tuning.identify(samples, args.hold, args.from_duty, args.to_duty)
        gains = tuning.simc(model)
        path = tuning.save(fc.state_directory, zone.name, model, gains)
    except (GpuwatchdError, OSError, ValueError) as exc:
        _err(f"tuning failed (the fans were handed back to the BMC): {exc}")
        return 1
    print(f"zone {zone.name}: gain {model.gain_celsius_per_duty:.1f} C per unit duty, dead "
          f"time {model.dead_time_seconds:.0f} s, time constant "
          f"{model.time_constant_seconds:.0f} s -> kp {gains.kp:.4g}, ki {gains.ki:.4g} "
          f"(SIMC); the daemon uses them from its next start; saved {path}")
    return 0
