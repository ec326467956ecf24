"""``gpuwatchctl failsafe`` and ``gpuwatchctl calibrate``: fan control without the daemon.

``failsafe`` hands every fan back to the BMC directly, reading only the config: systemd runs
it as ``ExecStopPost=`` so the fans are restored after SIGKILL, a crash or a watchdog kill
(when the daemon stopped cleanly it has already done the same). It tries ``--attempts``
times, a second apart, and exits 0 once the BMC confirmed, 1 if it never did. A Dell's
third-party PCIe response is turned back on (unless ``third_party_pcie_on_exit: leave``) when
the daemon left its marker file in ``state_directory``: it disabled the response and never
restored it.

``calibrate`` needs the daemon stopped (both would write the fans): see
gpuwatchd.control.calibrate. So does ``tune``: a bounded duty step of every fan with a zone's
GPU temperatures recorded, the plant model and SIMC gains stored for the daemon (see
gpuwatchd.control.tuning); any zone past its setpoint ends it at once, into the BMC's
automatic control. Exit codes as gpuwatchctl's: 0 done, 1 failed, 2 usage,
6 invalid config.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence

from gpuwatchd.collectors.chassis_ipmi import ChassisIpmiCollector
from gpuwatchd.collectors.gpu import GpuCollector
from gpuwatchd.config import Config, ConfigError, ZoneConfig, load
from gpuwatchd.config import fan_drivers as specs
from gpuwatchd.config.selectors import GpuQuantity, GpuSelector
from gpuwatchd.control import calibrate, tuning
from gpuwatchd.control.factory import bmc_of, ipmi_link, make_driver
from gpuwatchd.ctl.common import EXIT_CONFIG
from gpuwatchd.ctl.common import err as _err
from gpuwatchd.errors import GpuwatchdError
from gpuwatchd.hardware import Hardware, real
from gpuwatchd.links import nvml
from gpuwatchd.model import FanReading, GpuReading
from gpuwatchd.status.client import QueryError, query
from gpuwatchd.status.paths import default_socket

DEFAULT_CONFIG = "/etc/gpuwatchd/gpuwatchd.yaml"
Hw = Callable[[], Hardware]


def _config(path: str) -> Config | None:
    try:
        return load(path)
    except ConfigError as exc:
        _err(str(exc))
        return None


def failsafe_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", default=DEFAULT_CONFIG,
                   help=f"the daemon's config file (default {DEFAULT_CONFIG})")
    p.add_argument("--attempts", type=int, default=3, choices=range(1, 31), metavar="N",
                   help="tries, a second apart, before giving up (default 3)")


def failsafe(args: argparse.Namespace, hardware: Hw = real) -> int:
    """``gpuwatchctl failsafe``: the BMC's automatic fan control, now."""
    config = _config(args.config)
    if config is None:
        return EXIT_CONFIG
    fc = config.fan_control
    if fc.driver == specs.NONE or not fc.zones:
        print("fan control is off in the config: nothing to hand back")
        return 0
    last = ""
    for attempt in range(args.attempts):
        if attempt:
            time.sleep(1.0)
        try:
            built = make_driver(config, hardware())
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
              "control")
        return 0
    _err(f"could not hand the fans back after {args.attempts} attempt(s): {last}")
    return 1


def calibrate_arguments(p: argparse.ArgumentParser) -> None:
    failsafe_arguments(p)
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
