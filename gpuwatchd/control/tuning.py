"""Self-tuning: a zone's plant identified from a duty step, and PI gains derived from it.

No I/O but the model file. ``gpuwatchctl tune`` (gpuwatchd.ctl.fan) holds the fans at one duty,
steps them down to a lower one and records the zone's temperature (whole degrees, as NVML
reports: ``nvidia-smi --query-gpu=temperature.gpu``) with the fans handed back at the end, and
at once when the temperature passes the setpoint. :func:`identify` fits a first order plus
dead time model to that response::

    T(t) = T0 + K * du * (1 - exp(-(t - theta) / tau))   for t > theta, else T0

``K`` in degrees per unit duty (negative: more duty, cooler), ``theta`` the dead time (fan
spin-up, the die's own few seconds), ``tau`` the heatsink's time constant at the lower duty.
The fit is least squares over a grid of ``theta`` and ``tau`` with ``K`` solved in closed form,
so integer steps in the readings average out over the whole response.

:func:`simc` turns the model into PI gains by Skogestad's SIMC rule (S. Skogestad, "Simple
analytic rules for model reduction and PID controller tuning", J. Process Control 13 (2003)
291-309): ``kp = tau / (|K| (tc + theta))``, integral time ``Ti = min(tau, 4 (tc + theta))``,
``ki = kp / Ti``, with the closed-loop time constant ``tc = tau / 2`` and never below
``theta``: a calm loop (the fans should not chase every degree), and room for the plant's
gain at the operating point, about twice the step's (on the simulated R730 at 250 W: 30 C per
unit duty from 80 % to 50 %, 63 at 40 %; a tc of tau / 3 measured 6-7 % of duty peak to peak
at a steady load there, tau / 2 0-4 %). No derivative: the heatsink is a
first-order lag with a short dead time, where SIMC gives PI.

The model and its gains are stored per zone as ``tuning-<zone>.json`` in
``fan_control.state_directory``; the daemon uses the stored gains for the zone's ``kp``/``ki``
(``kd`` 0) when present, and the config's otherwise (``gpuwatchd_fan_zone_tuned`` says which).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gpuwatchd.control.statefile import write_durably
from gpuwatchd.errors import GpuwatchdError

log = logging.getLogger(__name__)

SCHEMA = 1
DEAD_TIMES_SECONDS = tuple(float(s) for s in range(0, 31, 2))
TAU_GRID = tuple(5.0 * 1.04 ** k for k in range(160))  # 5 s .. about 2.6 h, 4 % apart


@dataclass(frozen=True)
class PlantModel:
    """A first order plus dead time model of a zone (see the module docstring)."""

    gain_celsius_per_duty: float
    dead_time_seconds: float
    time_constant_seconds: float
    duty_from: float
    duty_to: float


@dataclass(frozen=True)
class TunedGains:
    kp: float
    ki: float
    kd: float = 0.0


class TuningAborted(GpuwatchdError):
    """The step test stopped: the zone passed its setpoint (the caller hands the fans back)."""


def step_test(write: Callable[[float], object], read: Callable[[], float | None],
              sleep: Callable[[float], None], *, duty_from: float, duty_to: float,
              setpoint_celsius: float, hold_seconds: float, run_seconds: float,
              sample_seconds: float = 2.0,
              report: Callable[[str], None] = log.info) -> list[tuple[float, float]]:
    """Hold ``duty_from`` for ``hold_seconds``, step to ``duty_to`` and record the zone's
    temperature every ``sample_seconds`` for ``run_seconds``: ``(seconds since the start,
    celsius)``, the step at ``hold_seconds``. Raises :class:`TuningAborted` as soon as a
    reading passes the setpoint (or none comes): bounded in time and in temperature."""
    samples: list[tuple[float, float]] = []
    t = 0.0
    write(duty_from)
    while t < hold_seconds + run_seconds:
        if t >= hold_seconds and (t - sample_seconds < hold_seconds or not samples):
            write(duty_to)
            report(f"{t:5.0f} s: duty {duty_from:.0%} -> {duty_to:.0%}")
        sleep(sample_seconds)
        t += sample_seconds
        celsius = read()
        if celsius is None:
            raise TuningAborted(f"no temperature at {t:.0f} s")
        if celsius > setpoint_celsius:
            raise TuningAborted(f"{celsius:.0f} C at {t:.0f} s passed the setpoint "
                                f"{setpoint_celsius:g} C")
        samples.append((t, celsius))
    return samples


def identify(samples: Sequence[tuple[float, float]], step_at: float, duty_from: float,
             duty_to: float) -> PlantModel:
    """Fit the model to ``(time, temperature)`` samples around a duty step at ``step_at``.

    ValueError when the samples cannot say: no samples before or after the step, or no
    response at all."""
    before = [y for t, y in samples if t <= step_at]
    after = [(t - step_at, y) for t, y in samples if t > step_at]
    if not before or len(after) < 10:
        raise ValueError("too few samples around the step")
    du = duty_to - duty_from
    if du == 0:
        raise ValueError("no duty step")
    y0 = sum(before[-30:]) / len(before[-30:])
    best: tuple[float, float, float, float] | None = None  # (sse, K, theta, tau)
    for theta in DEAD_TIMES_SECONDS:
        for tau in TAU_GRID:
            g = [1.0 - math.exp(-(t - theta) / tau) if t > theta else 0.0 for t, _ in after]
            sgg = sum(x * x for x in g)
            if sgg <= 0:
                continue
            k = sum(x * (y - y0) for x, (_, y) in zip(g, after, strict=True)) / (du * sgg)
            sse = sum((y - y0 - k * du * x) ** 2 for x, (_, y) in zip(g, after, strict=True))
            if best is None or sse < best[0]:
                best = (sse, k, theta, tau)
    if best is None or best[1] == 0:
        raise ValueError("no response to the step")
    _, k, theta, tau = best
    return PlantModel(k, theta, tau, duty_from, duty_to)


def simc(model: PlantModel) -> TunedGains:
    """PI gains by SIMC with ``tc = max(tau / 2, theta)`` (see the module docstring)."""
    tau, theta = model.time_constant_seconds, model.dead_time_seconds
    gain = abs(model.gain_celsius_per_duty)
    if gain <= 0 or tau <= 0:
        raise ValueError("a model without gain or time constant gives no gains")
    tc = max(tau / 2.0, theta)
    kp = tau / (gain * (tc + theta))
    ti = min(tau, 4.0 * (tc + theta))
    return TunedGains(kp, kp / ti)


def path_for(directory: str, zone: str) -> str:
    safe_name = "".join(c if c.isalnum() or c in "-_." else "_" for c in zone)
    return os.path.join(directory, f"tuning-{safe_name}.json")


def save(directory: str, zone: str, model: PlantModel, gains: TunedGains) -> str:
    """Write atomically and durably (gpuwatchd.control.statefile); returns the path."""
    os.makedirs(directory, mode=0o755, exist_ok=True)
    path = path_for(directory, zone)
    doc = {"schema": SCHEMA, "zone": zone,
           "gain_celsius_per_duty": model.gain_celsius_per_duty,
           "dead_time_seconds": model.dead_time_seconds,
           "time_constant_seconds": model.time_constant_seconds,
           "duty_from": model.duty_from, "duty_to": model.duty_to,
           "kp": gains.kp, "ki": gains.ki, "kd": gains.kd}
    write_durably(path, json.dumps(doc, indent=2) + "\n", mode=0o644)
    return path


def load_gains(directory: str, zones: Sequence[str]) -> dict[str, TunedGains]:
    """The stored gains of every zone that has a usable model file (logged)."""
    out: dict[str, TunedGains] = {}
    for zone in zones:
        found = load(directory, zone)
        if found is not None:
            model, gains = found
            log.info("fan zone %s: tuned gains kp %.4g, ki %.4g from its step test (gain %.1f C "
                     "per unit duty, dead time %.0f s, time constant %.0f s; %s)", zone,
                     gains.kp, gains.ki, model.gain_celsius_per_duty, model.dead_time_seconds,
                     model.time_constant_seconds, path_for(directory, zone))
            out[zone] = gains
    return out


def load(directory: str, zone: str) -> tuple[PlantModel, TunedGains] | None:
    """The stored model and gains of ``zone``; None (a warning if unusable) otherwise.
    Gains must be finite and within the config's own ranges (kp, ki 0-10)."""
    path = path_for(directory, zone)
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("ignoring the fan tuning %s: %s", path, exc)
        return None
    try:
        return _parse(doc, zone)
    except (KeyError, TypeError, ValueError) as exc:
        log.warning("ignoring the fan tuning %s: %s", path, exc)
        return None


def _parse(doc: dict[str, object], zone: str) -> tuple[PlantModel, TunedGains]:
    if doc["schema"] != SCHEMA or doc["zone"] != zone:
        raise ValueError(f"schema {doc.get('schema')}, zone {doc.get('zone')}")
    model = PlantModel(*(float(doc[k]) for k in (  # type: ignore[arg-type]
        "gain_celsius_per_duty", "dead_time_seconds", "time_constant_seconds",
        "duty_from", "duty_to")))
    gains = TunedGains(*(float(doc[k]) for k in ("kp", "ki", "kd")))  # type: ignore[arg-type]
    for name, value in (("kp", gains.kp), ("ki", gains.ki), ("kd", gains.kd)):
        if not (math.isfinite(value) and 0.0 <= value <= 10.0):
            raise ValueError(f"{name} {value} outside 0-10")
    for value in (model.gain_celsius_per_duty, model.dead_time_seconds,
                  model.time_constant_seconds):
        if not math.isfinite(value):
            raise ValueError(f"model value {value} not finite")
    return model, gains
