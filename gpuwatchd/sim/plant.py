"""A deterministic thermal plant: passive GPUs in a server chassis cooled by its fans.

Pure maths: no threads, no I/O, no clock; the caller passes simulated time in (:meth:`
ThermalPlant.advance_to`). The plant integrates in fixed sub-steps of at most
:data:`MAX_SUBSTEP_SECONDS`, each an exact exponential update of a first-order node, so any
step size is stable and the result hardly depends on how time was sliced.

Per GPU, two thermal nodes in series (the temperature NVML reports is the die's)::

    P -> [die, C_die] --R_die--> [heatsink, C_sink] --R_conv(airflow)--> inlet air

    C_die  dT_die/dt  = P - (T_die - T_sink) / R_die
    C_sink dT_sink/dt = (T_die - T_sink) / R_die - (T_sink - T_inlet) / R_conv
    R_conv = R_conv_ref * (rpm_ref / rpm) ** 0.8      forced convection, Nu ~ Re^0.8

so in steady state ``T_die = T_inlet + P * (R_die + R_conv)``. Every GPU sees the mean rpm of
the chassis fans (airflow is proportional to rpm, the first fan law). Each fan turns its duty
(0..1) into a target rpm and follows it with a first-order lag.

The numbers, for a Tesla P40 in a Dell R730-class chassis (no sourced P40 thermal measurement
exists, see reference/fan-control.md (e); these are chosen to meet the checks below):

- fans: rpm = 1,600 + 16,000 * duty. Fitted to the R720xd duty->rpm table
  (NoLooseEnds/Scripts#3: 20 % -> 4,800, 40 % -> 8,040, 50 % -> 9,600, about 160 rpm per %);
  it also gives 15 % -> 4,000 (R730 baseline 4,080 rpm) and 80 % -> 14,400 (R730 with a
  third-party card, about 14,800 rpm). Lag 3 s (assumed: fans spin up in a few seconds).
- R_die = 0.05 K/W, R_conv = 0.08 K/W at 17,600 rpm (all fans at 100 %). Inlet 24 C:
  * 80 % duty (the Dell floor for an unknown x16 card): R = 0.144 K/W, 250 W settles at 60 C;
  * 0 % duty (1,600 rpm): R = 0.595 K/W, 250 W would settle at 173 C (it throttles at 92 C),
    an idle 50 W card settles at 54 C;
  * holding 75 C at 250 W needs about 39 % duty (:meth:`ThermalPlant.oracle_duty`).
- C_sink = 800 J/K, about 1 kg of aluminium fins and copper base (c_Al = 0.9 J/(g K)):
  time constant R_conv * C_sink = 75 s at 80 % duty, 2 min at 39 %, 7 min at 0 %, matching the
  reference's "tau of 1-2 min". C_die = 40 J/K (package and vapour-chamber base, about 100 g
  of copper): tau = R_die * C_die = 2 s, the few-second die/TIM mode of a load step.
- With no airflow at all the heatsink still sheds heat by natural convection: R_conv is
  capped at 1.5 K/W (assumed).
- Slowdown: at or above 92 C (P40 slowdown threshold) the GPU throttles (HW slowdown): power
  drops to 40 % of the capped demand, never below idle, until the die is 2 C below the
  threshold. At or above 95 C (shutdown) the GPU halts: no power, and NVML reports it lost,
  until :meth:`ThermalPlant.reset_gpu`.

Seams for the simulated BMC (``gpuwatchd/sim/bmc.py``): it reads :meth:`fan_rpm`, :meth:`duty`,
:attr:`inlet_celsius` and :meth:`gpu` (temperatures), and writes :meth:`set_duty`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from gpuwatchd.sim.profiles import IDLE_WATTS, Constant, Profile

MAX_SUBSTEP_SECONDS = 0.25
CONVECTION_EXPONENT = 0.8
NATURAL_CONVECTION_K_PER_W = 1.5


@dataclass(frozen=True)
class GpuSpec:
    """A GPU model's thermal and power constants (defaults: Tesla P40, see module docstring)."""

    name: str = "Tesla P40"
    slowdown_celsius: float = 92.0
    shutdown_celsius: float = 95.0
    slowdown_release_celsius: float = 2.0  # hysteresis below the slowdown threshold
    hw_slowdown_power_ratio: float = 0.4
    power_limit_default_watts: float = 250.0
    power_limit_min_watts: float = 125.0
    power_limit_max_watts: float = 250.0
    idle_watts: float = IDLE_WATTS
    die_joules_per_kelvin: float = 40.0
    sink_joules_per_kelvin: float = 800.0
    die_kelvin_per_watt: float = 0.05
    conv_kelvin_per_watt: float = 0.08  # heatsink to air at reference_rpm
    reference_rpm: float = 17_600.0


@dataclass(frozen=True)
class FanSpec:
    """A chassis fan: duty 0..1 -> rpm, linear, with a first-order lag (Dell R730-class)."""

    min_rpm: float = 1_600.0  # at duty 0
    max_rpm: float = 17_600.0  # at duty 1
    lag_seconds: float = 3.0

    def target_rpm(self, duty: float) -> float:
        return self.min_rpm + (self.max_rpm - self.min_rpm) * duty

    def duty_for_rpm(self, rpm: float) -> float:
        return min(1.0, max(0.0, (rpm - self.min_rpm) / (self.max_rpm - self.min_rpm)))


P40 = GpuSpec()
R730_FAN = FanSpec()
# A consumer card with its own two fans (the workstation demo): the plant's fans are then the
# card's. Assumed figures, chosen for plausible shapes: 175 W board power, slowdown 90 C
# (``nvidia-smi -q`` of RTX 2070s shows 89-93 C), fans 0-3,000 rpm (fan-stop at 0),
# R_conv 0.12 K/W at full speed: 175 W settles at 54 C at 100 %, holds 70 C at about 50 %.
RTX2070 = GpuSpec(name="NVIDIA GeForce RTX 2070", slowdown_celsius=90.0,
                  shutdown_celsius=96.0, power_limit_default_watts=175.0,
                  power_limit_min_watts=125.0, power_limit_max_watts=200.0, idle_watts=12.0,
                  die_joules_per_kelvin=25.0, sink_joules_per_kelvin=500.0,
                  conv_kelvin_per_watt=0.12, reference_rpm=3_000.0)
RTX2070_FAN = FanSpec(min_rpm=0.0, max_rpm=3_000.0, lag_seconds=2.0)


def scaled(spec: GpuSpec, factor: float) -> GpuSpec:
    """The same GPU with its time constants times ``factor`` (both heat capacities scaled:
    the gains and steady states are unchanged, only the speed differs)."""
    if not factor > 0:
        raise ValueError(f"time-constant factor {factor} must be positive")
    return replace(spec, die_joules_per_kelvin=spec.die_joules_per_kelvin * factor,
                   sink_joules_per_kelvin=spec.sink_joules_per_kelvin * factor)


# Plant variants for the fan-control tests and benchmark (issue 12). The default heatsink's
# time constant R_conv * C_sink is 120 s at 40 % duty (R_conv 0.150 K/W x 800 J/K); "fast"
# halves it (60 s), "slow" triples it (360 s). Every reading through the simulated NVML is a
# whole degree, as the real one's.
PLANT_VARIANTS: dict[str, GpuSpec] = {
    "fast": scaled(P40, 0.5), "default": P40, "slow": scaled(P40, 3.0)}


@dataclass(frozen=True)
class GpuView:
    """One GPU at one instant of simulated time (what the simulated NVML reports from)."""

    index: int
    time_seconds: float
    temperature_celsius: float  # the die
    heatsink_celsius: float
    demand_watts: float  # what the workload asks for
    power_watts: float  # what the GPU draws (capped, throttled)
    power_limit_watts: float
    power_capped: bool  # demand above the power limit (sw_power_cap)
    hw_slowdown: bool  # thermal slowdown active (hw_thermal, hw_slowdown, sw_thermal)
    halted: bool  # past the shutdown threshold
    energy_joules: float
    power_cap_seconds: float  # cumulative time power-capped
    thermal_seconds: float  # cumulative time in thermal slowdown


class _Fan:
    def __init__(self, duty: float, rpm: float) -> None:
        self.duty, self.rpm, self.failed = duty, rpm, False


class _Gpu:
    def __init__(self, profile: Profile, limit: float) -> None:
        self.profile, self.limit = profile, limit
        self.die = self.sink = 0.0
        self.demand = self.power = self.energy = self.cap_s = self.thermal_s = 0.0
        self.capped = self.throttled = self.halted = False


class ThermalPlant:
    """GPUs and chassis fans; advance it with :meth:`advance_to`, read it with :meth:`gpu`."""

    def __init__(self, gpu_count: int = 2, fan_count: int = 8, *, gpu_spec: GpuSpec = P40,
                 fan_spec: FanSpec = R730_FAN, inlet_celsius: float = 24.0,
                 profiles: Sequence[Profile] | None = None, duty: float = 0.8) -> None:
        if fan_count < 1:
            raise ValueError("a chassis needs at least one fan")
        if profiles is not None and len(profiles) != gpu_count:
            raise ValueError(f"{len(profiles)} load profiles for {gpu_count} GPUs")
        self.gpu_spec, self.fan_spec = gpu_spec, fan_spec
        self.time_seconds = 0.0
        self.inlet_celsius = inlet_celsius
        duty = _ratio(duty)
        self._fans = [_Fan(duty, fan_spec.target_rpm(duty)) for _ in range(fan_count)]
        idle = Constant(gpu_spec.idle_watts)
        self._gpus = [_Gpu(p, gpu_spec.power_limit_default_watts)
                      for p in (profiles if profiles is not None else [idle] * gpu_count)]
        self.settle()

    # --- fans (the BMC's side) ---
    @property
    def fan_count(self) -> int:
        return len(self._fans)

    def set_duty(self, duty: float, fan: int | None = None) -> None:
        """Set one fan's duty (0..1, clamped), or every fan's with ``fan=None``."""
        for f in self._fans if fan is None else [self._fans[fan]]:
            f.duty = _ratio(duty)

    def duty(self, fan: int) -> float:
        return self._fans[fan].duty

    def fan_rpm(self, fan: int) -> float:
        return self._fans[fan].rpm

    def fan_rpms(self) -> tuple[float, ...]:
        return tuple(f.rpm for f in self._fans)

    def fail_fan(self, fan: int, failed: bool = True) -> None:
        """A failed fan spins down to 0 rpm whatever its duty."""
        self._fans[fan].failed = failed

    def airflow_rpm(self) -> float:
        """The mean rpm of the chassis fans: the airflow every GPU sees."""
        return sum(f.rpm for f in self._fans) / len(self._fans)

    # --- load and GPUs ---
    @property
    def gpu_count(self) -> int:
        return len(self._gpus)

    def set_profile(self, gpu: int, profile: Profile) -> None:
        self._gpus[gpu].profile = profile

    def set_power_limit(self, gpu: int, watts: float) -> None:
        """Like ``nvidia-smi -i N -pl WATTS``: within the min/max constraints or ValueError."""
        spec = self.gpu_spec
        if not spec.power_limit_min_watts <= watts <= spec.power_limit_max_watts:
            raise ValueError(f"power limit {watts} W outside {spec.power_limit_min_watts}-"
                             f"{spec.power_limit_max_watts} W")
        self._gpus[gpu].limit = watts

    def reset_gpu(self, gpu: int) -> None:
        """Bring a halted GPU back (like a reboot after an over-temperature shutdown)."""
        self._gpus[gpu].halted = False

    def gpu(self, index: int) -> GpuView:
        g = self._gpus[index]
        return GpuView(
            index=index, time_seconds=self.time_seconds, temperature_celsius=g.die,
            heatsink_celsius=g.sink, demand_watts=g.demand, power_watts=g.power,
            power_limit_watts=g.limit, power_capped=g.capped, hw_slowdown=g.throttled,
            halted=g.halted, energy_joules=g.energy, power_cap_seconds=g.cap_s,
            thermal_seconds=g.thermal_s)

    # --- physics ---
    def conv_resistance(self, rpm: float) -> float:
        """Heatsink-to-air thermal resistance (K/W) at a mean fan speed."""
        spec = self.gpu_spec
        if rpm <= 0.0:
            return NATURAL_CONVECTION_K_PER_W
        forced = spec.conv_kelvin_per_watt * (spec.reference_rpm / rpm) ** CONVECTION_EXPONENT
        return min(forced, NATURAL_CONVECTION_K_PER_W)

    def steady_state_celsius(self, power_watts: float, duty: float,
                             inlet_celsius: float | None = None) -> float:
        """Where a GPU drawing ``power_watts`` settles with every fan at ``duty``."""
        inlet = self.inlet_celsius if inlet_celsius is None else inlet_celsius
        r_conv = self.conv_resistance(self.fan_spec.target_rpm(_ratio(duty)))
        return inlet + power_watts * (self.gpu_spec.die_kelvin_per_watt + r_conv)

    def oracle_duty(self, power_watts: float, setpoint_celsius: float,
                    inlet_celsius: float | None = None) -> float:
        """The lowest steady-state duty (every fan alike) that holds the die at the setpoint.

        0.0 when even the lowest duty keeps it at or below the setpoint; 1.0 when even full
        duty cannot (the setpoint is out of reach at that power and inlet temperature).
        """
        inlet = self.inlet_celsius if inlet_celsius is None else inlet_celsius
        if power_watts <= 0.0:
            return 0.0
        r_conv = (setpoint_celsius - inlet) / power_watts - self.gpu_spec.die_kelvin_per_watt
        if r_conv >= self.conv_resistance(self.fan_spec.min_rpm):
            return 0.0
        if r_conv <= self.conv_resistance(self.fan_spec.max_rpm):
            return 1.0
        spec = self.gpu_spec
        rpm = spec.reference_rpm * (spec.conv_kelvin_per_watt / r_conv) ** (
            1.0 / CONVECTION_EXPONENT)
        return self.fan_spec.duty_for_rpm(rpm)

    def settle(self) -> None:
        """Jump to steady state at the current load and duties (fans at target, no lag).

        A GPU whose steady state is past the slowdown threshold is left just below it.
        """
        for fan in self._fans:
            fan.rpm = 0.0 if fan.failed else self.fan_spec.target_rpm(fan.duty)
        r_conv = self.conv_resistance(self.airflow_rpm())
        spec = self.gpu_spec
        for g in self._gpus:
            g.demand = max(0.0, g.profile(self.time_seconds))
            g.power = 0.0 if g.halted else min(g.demand, g.limit)
            g.capped = g.demand > g.limit
            g.sink = self.inlet_celsius + g.power * r_conv
            g.die = g.sink + g.power * spec.die_kelvin_per_watt
            if g.die >= spec.slowdown_celsius:
                g.die = spec.slowdown_celsius - spec.slowdown_release_celsius
                g.sink = g.die - g.power * spec.die_kelvin_per_watt

    def advance_to(self, t: float) -> None:
        """Integrate up to simulated time ``t`` (seconds); earlier times are ignored."""
        while self.time_seconds < t - 1e-9:
            self._substep(min(MAX_SUBSTEP_SECONDS, t - self.time_seconds))
        self.time_seconds = max(self.time_seconds, t)

    def step(self, seconds: float) -> None:
        self.advance_to(self.time_seconds + seconds)

    def _substep(self, h: float) -> None:
        lag = 1.0 - math.exp(-h / self.fan_spec.lag_seconds)
        for fan in self._fans:
            target = 0.0 if fan.failed else self.fan_spec.target_rpm(fan.duty)
            fan.rpm += (target - fan.rpm) * lag
        r_conv = self.conv_resistance(self.airflow_rpm())
        for g in self._gpus:
            self._heat(g, h, r_conv)
        self.time_seconds += h

    def _heat(self, g: _Gpu, h: float, r_conv: float) -> None:
        spec = self.gpu_spec
        g.demand = max(0.0, g.profile(self.time_seconds))
        g.capped = g.demand > g.limit and not g.halted
        power = 0.0 if g.halted else min(g.demand, g.limit)
        if g.throttled:
            power = min(power, max(spec.idle_watts, power * spec.hw_slowdown_power_ratio))
        g.power = power
        r_die = spec.die_kelvin_per_watt
        g.die += (g.sink + power * r_die - g.die) * (
            1.0 - math.exp(-h / (r_die * spec.die_joules_per_kelvin)))
        heat_flow = (g.die - g.sink) / r_die
        g.sink += (self.inlet_celsius + heat_flow * r_conv - g.sink) * (
            1.0 - math.exp(-h / (r_conv * spec.sink_joules_per_kelvin)))
        g.energy += power * h
        g.cap_s += h if g.capped else 0.0
        g.thermal_s += h if g.throttled else 0.0
        if g.die >= spec.shutdown_celsius:
            g.halted, g.throttled = True, False
        elif g.die >= spec.slowdown_celsius:
            g.throttled = True
        elif g.die < spec.slowdown_celsius - spec.slowdown_release_celsius:
            g.throttled = False


def _ratio(duty: float) -> float:
    return min(1.0, max(0.0, float(duty)))
