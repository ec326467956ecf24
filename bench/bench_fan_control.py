"""Fan-control benchmark: gpuwatchd's PID zones against the BMC's own behaviour and a fixed
curve, on the simulated node (two Tesla P40s, Dell R730-class chassis, gpuwatchd.sim).

The whole daemon runs (GPU collector over the simulated NVML, chassis collector and Dell
driver over the simulated iDRAC through the real IpmiLink), ticked on a manual clock at the
production interval (2 s); the plant is sampled every second of simulated time. Anchors,
measured in the same run on the same plant and load:

- ``bmc``: the iDRAC's own control, an 80 % floor for the GPUs it does not recognise (Dell
  13G, third-party PCIe response on): the noise reference (0 dB);
- ``curve``: a fixed step curve as home-lab scripts use (15 % below 50 C, then 25/35/45/60/
  80/100 % at 50/60/70/75/80/85 C, 2 C down-hysteresis; reference/fan-control.md (e));
- ``oracle``: the lowest duty that holds the setpoint for the instantaneous load on the same
  plant (gpuwatchd.sim.plant.ThermalPlant.oracle_duty, never below min_duty).

Per scenario: peak GPU temperature; seconds above setpoint + 3 C and above the ceiling; mean
duty and rpm; noise vs the BMC (50 log10 of the mean-rpm ratio, dB); mean duty / oracle (in
the steady window, after ``--warmup`` seconds); BMC writes per minute; time to failsafe from
the fault; duty peak to peak and reversals (changes of direction) per minute over the steady
window; settling time to within 1 C of the setpoint after the step (issue 12). Targets are
checked at the end.

Also ``legacy``: the PID zone as it was before issue 12 (kp 0.03, ki 0.0015, kd 0.5 on the
last whole-degree reading and a two-point difference, no dead bands, no dwell, no
feed-forward), selectable in this benchmark only, run in the same session on the same plant.
Plants (``--plant``): gpuwatchd.sim.plant.PLANT_VARIANTS (fast x0.5, default, slow x3 time
constants), whole-degree readings through the simulated NVML.

Usage: ``.venv/bin/python bench/bench_fan_control.py [--minutes 30] [--warmup 600]
[--plant default|fast|slow|all]``
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gpuwatchd.clock import ManualClock  # noqa: E402
from gpuwatchd.config import Config, loads  # noqa: E402
from gpuwatchd.daemon.service import Daemon  # noqa: E402
from gpuwatchd.sim import profiles  # noqa: E402
from gpuwatchd.sim.node import SimNode  # noqa: E402
from gpuwatchd.sim.plant import PLANT_VARIANTS  # noqa: E402

INTERVAL = 2.0
SETPOINT, CEILING, MIN_DUTY = 75.0, 85.0, 0.15
INJECT_AT = 900.0  # faults start 15 minutes in
LEGACY = {"kp": 0.03, "ki": 0.0015, "kd": 0.5, "derivative_window_seconds": 0.0,
          "error_deadband_celsius": 0.0, "feedforward_duty_per_watt": 0.0,
          "write_deadband_ratio": 0.0, "min_dwell_seconds": 0.0}
CURVE = ((85, 1.0), (80, 0.8), (75, 0.6), (70, 0.45), (60, 0.35), (50, 0.25))


def config(legacy: bool = False) -> Config:
    text = resources.files("gpuwatchd.sim").joinpath("demo.yaml").read_text()
    text = text.replace("interval_seconds: 1", f"interval_seconds: {INTERVAL:g}")
    text = text.replace("  enabled: true", "  enabled: true\n  deadline_seconds: 0.05\n"
                        "  xid_events: false")
    if legacy:
        text += "".join(f"      {k}: {v}\n" for k, v in LEGACY.items())
    return loads(text, "bench.yaml")


@dataclass
class Scenario:
    name: str
    load: Callable[[int], profiles.Profile]
    steady: bool = False
    setup: Callable[[SimNode], None] = lambda node: None
    inject: Callable[[SimNode], None] | None = None
    recover: Callable[[SimNode], None] | None = None
    recover_after: float = 120.0


def _bmc(node: SimNode) -> object:
    return node.bmcs["idrac"]


def _cap(node: SimNode) -> None:
    for i in range(node.gpu_count):
        node.set_power_limit(i, 125.0)


SCENARIOS = [
    Scenario("idle", lambda i: profiles.Constant(50.0), steady=True),
    Scenario("step 50->250 W", lambda i: profiles.Step(at_seconds=600.0)),
    Scenario("sustained 250 W", lambda i: profiles.Constant(250.0), steady=True),
    Scenario("125 W power cap", lambda i: profiles.Constant(250.0), steady=True, setup=_cap),
    Scenario("slowly varying", lambda i: profiles.Sine(160.0, 90.0, 600.0, 150.0 * i),
             steady=True),
    Scenario("NVML dropout", lambda i: profiles.Constant(250.0),
             inject=lambda n: n.nvml.hang("nvmlDeviceGetTemperature", 600.0),
             recover=lambda n: n.nvml.unhang()),
    Scenario("BMC reverts to auto", lambda i: profiles.Constant(250.0),
             inject=lambda n: _bmc(n).revert()),  # type: ignore[attr-defined]
    Scenario("0xd4 refusal", lambda i: profiles.Constant(250.0),
             setup=lambda n: setattr(_bmc(n).faults, "refuse_manual", 0xd4)),  # type: ignore[attr-defined]
    Scenario("BMC cold reset", lambda i: profiles.Constant(250.0),
             inject=lambda n: _bmc(n).cold_reset(30.0, 70.0)),  # type: ignore[attr-defined]
]


@dataclass
class Result:
    peak_celsius: float = 0.0
    above_band_seconds: float = 0.0
    above_ceiling_seconds: float = 0.0
    duties: list[float] = field(default_factory=list)
    rpms: list[float] = field(default_factory=list)
    oracles: list[float] = field(default_factory=list)
    steady_duties: list[float] = field(default_factory=list)
    steady_oracles: list[float] = field(default_factory=list)
    writes: int = 0
    failsafe_after: float | None = None
    detected_after: float | None = None
    modes: set[str] = field(default_factory=set)
    peak_after_step: float = 0.0
    window_duties: list[float] = field(default_factory=list)  # the steady window, any scenario
    last_outside: float | None = None  # the last time after the step more than 1 C off

    def duty_ptp(self) -> float:
        d = self.window_duties
        return max(d) - min(d) if d else 0.0

    def reversals_per_minute(self) -> float:
        count, sign = 0, 0
        for a, b in zip(self.window_duties, self.window_duties[1:], strict=False):
            if abs(b - a) > 1e-9:
                s = 1 if b > a else -1
                count += 1 if sign and s != sign else 0
                sign = s
        return count / max(len(self.window_duties) / 60.0, 1e-9)

    @property
    def mean_rpm(self) -> float:
        return sum(self.rpms) / len(self.rpms)

    @property
    def mean_duty(self) -> float:
        return sum(self.duties) / len(self.duties)

    def oracle_ratio(self) -> float:
        duties, oracles = (self.steady_duties, self.steady_oracles) if self.steady_duties \
            else (self.duties, self.oracles)
        return (sum(duties) / len(duties)) / (sum(oracles) / len(oracles))


class Curve:
    """The fixed-curve anchor: reads the hottest GPU, writes the step's duty."""

    def __init__(self) -> None:
        self.duty = 0.8
        self.writes = 0

    def tick(self, node: SimNode) -> None:
        temp = max(round(node.gpu_view(i).temperature_celsius) for i in range(node.gpu_count))
        wanted = next((d for t, d in CURVE if temp >= t), MIN_DUTY)
        if wanted < self.duty:  # down only once 2 C below the step's threshold
            lower = next((d for t, d in CURVE if temp + 2 >= t), MIN_DUTY)
            wanted = max(wanted, lower)
        if wanted != self.duty:
            self.duty = wanted
            node.set_duty(wanted)
            self.writes += 1


def run(scenario: Scenario, kind: str, minutes: float, warmup: float,
        plant: str = "default") -> Result:
    clock = ManualClock()
    node = SimNode(clock=clock, profile=[scenario.load(i) for i in range(2)],
                   gpu_spec=PLANT_VARIANTS[plant])
    scenario.setup(node)
    with node.synced() as sim:
        sim.settle()  # start from steady state under the BMC's 80 % floor
    daemon = curve = None
    if kind in ("gpuwatchd", "legacy"):
        daemon = Daemon(config(kind == "legacy"), node.hardware())
        daemon._build(daemon.config)
    elif kind == "curve":
        curve = Curve()
    res = Result()
    duration = minutes * 60.0
    injected = recovered = False
    t = 0.0
    try:
        while t < duration:
            if scenario.inject and not injected and t >= INJECT_AT:
                scenario.inject(node)
                injected = True
            if scenario.recover and injected and not recovered and \
                    t >= INJECT_AT + scenario.recover_after:
                scenario.recover(node)
                recovered = True
            if daemon is not None:
                snap = daemon.tick()
                assert snap.control is not None
                zone, ctl = snap.control.zones[0], snap.control.driver
                res.modes.add(zone.mode)
                res.writes = ctl.writes
                if injected and res.failsafe_after is None and zone.mode == "failsafe":
                    res.failsafe_after = t - INJECT_AT
                if injected and res.detected_after is None and ctl.reverts:
                    res.detected_after = t - INJECT_AT
            elif curve is not None:
                curve.tick(node)
                res.writes = curve.writes
            for _ in range(int(INTERVAL)):
                clock.advance(1.0)
                t += 1.0
                _sample(node, res, t, warmup, scenario)
    finally:
        if daemon is not None:
            daemon._close_hardware()
        node.nvml.unhang()
    return res


def _sample(node: SimNode, res: Result, t: float, warmup: float, scenario: Scenario) -> None:
    views = [node.gpu_view(i) for i in range(node.gpu_count)]
    temp = max(v.temperature_celsius for v in views)
    res.peak_celsius = max(res.peak_celsius, temp)
    load = scenario.load(0)
    if isinstance(load, profiles.Step) and t >= load.at_seconds:
        res.peak_after_step = max(res.peak_after_step, temp)
        if abs(temp - SETPOINT) > 1.0:
            res.last_outside = t - load.at_seconds
    res.above_band_seconds += 1.0 if temp > SETPOINT + 3.0 else 0.0
    res.above_ceiling_seconds += 1.0 if temp >= CEILING else 0.0
    rpms = node.fan_rpms()
    duty = node.duty(0)
    oracle = max(MIN_DUTY, *(node.oracle_duty(v.power_watts, SETPOINT) for v in views))
    res.duties.append(duty)
    res.rpms.append(sum(rpms) / len(rpms))
    res.oracles.append(oracle)
    if t > warmup:
        res.window_duties.append(duty)
    if scenario.steady and t > warmup:
        res.steady_duties.append(duty)
        res.steady_oracles.append(oracle)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=30.0, help="simulated minutes per run")
    p.add_argument("--warmup", type=float, default=600.0,
                   help="seconds before the steady window (duty / oracle) starts")
    p.add_argument("--plant", choices=[*PLANT_VARIANTS, "all"], default="default",
                   help="the plant's time constants (default: default)")
    args = p.parse_args()
    started = time.perf_counter()
    checks: list[tuple[str, bool]] = []
    plants = list(PLANT_VARIANTS) if args.plant == "all" else [args.plant]
    for plant in plants:
        print(f"plant {plant}")
        checks += _plant(plant, args.minutes, args.warmup)
    print("targets:")
    for text, ok in checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {text}")
    print(f"\n{args.minutes:g} simulated minutes x {len(SCENARIOS)} scenarios x 4 controllers "
          f"x {len(plants)} plant(s) in {time.perf_counter() - started:.1f} s")
    return 0 if all(ok for _, ok in checks) else 1


def _plant(plant: str, minutes: float, warmup: float) -> list[tuple[str, bool]]:
    print(f"{'scenario':22} {'ctl':9} {'peak C':>7} {'>sp+3 s':>8} {'>ceil s':>8} "
          f"{'duty':>6} {'rpm':>7} {'dB vs BMC':>9} {'duty/orc':>8} {'wr/min':>7} "
          f"{'ptp':>5} {'rev/min':>7} {'settle s':>8} {'failsafe s':>10}")
    checks: list[tuple[str, bool]] = []
    for sc in SCENARIOS:
        results = {kind: run(sc, kind, minutes, warmup, plant)
                   for kind in ("bmc", "curve", "legacy", "gpuwatchd")}
        base = results["bmc"].mean_rpm
        for kind, r in results.items():
            db = 50.0 * math.log10(r.mean_rpm / base)
            fs = "-" if r.failsafe_after is None else f"{r.failsafe_after:.0f}"
            if r.detected_after is not None:
                fs += f" (revert found {r.detected_after:.0f} s)"
            settle = "-" if r.last_outside is None else f"{r.last_outside:.0f}"
            print(f"{sc.name:22} {kind:9} {r.peak_celsius:7.1f} {r.above_band_seconds:8.0f} "
                  f"{r.above_ceiling_seconds:8.0f} {r.mean_duty:6.1%} {r.mean_rpm:7.0f} "
                  f"{db:9.1f} {r.oracle_ratio():8.2f} "
                  f"{r.writes / minutes:7.1f} {r.duty_ptp():5.2f} "
                  f"{r.reversals_per_minute():7.1f} {settle:>8} {fs:>10}")
        g = results["gpuwatchd"]
        name = f"{plant}: {sc.name}"
        checks.append((f"{name}: never above the ceiling", g.above_ceiling_seconds == 0))
        if sc.steady:
            checks.append((f"{name}: mean duty <= 1.15 x oracle ({g.oracle_ratio():.2f})",
                           g.oracle_ratio() <= 1.15))
        if sc.name == "idle":
            db = 50.0 * math.log10(g.mean_rpm / base)
            checks.append((f"{name}: >= 15 dB quieter than the Dell baseline ({db:.1f} dB)",
                           db <= -15.0))
        if sc.name.startswith("step"):
            over = g.peak_after_step - SETPOINT
            checks.append((f"{name}: overshoot <= 3 C ({over:.1f} C)", over <= 3.0))
        if sc.name == "NVML dropout":
            after = g.failsafe_after if g.failsafe_after is not None else math.inf
            checks.append((f"{name}: failsafe within 2 intervals ({after:.0f} s)",
                           after <= 2 * INTERVAL))
        if sc.steady and not isinstance(sc.load(0), profiles.Sine):  # a moving load moves it
            checks.append((f"{name}: duty within 5 % peak to peak, <= 2 reversals a minute "
                           f"({g.duty_ptp():.2f}, {g.reversals_per_minute():.1f})",
                           g.duty_ptp() <= 0.05 and g.reversals_per_minute() <= 2.0))
        print()
    return checks


if __name__ == "__main__":
    sys.exit(main())
