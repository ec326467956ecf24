"""The series budget: which series ``exporter.detail: default`` exposes (the table below).

At fleet scale every series costs (10,000 nodes in one Mimir cluster: at most 300 series for an
8-GPU node with one BMC). ``exporter.detail: full`` exposes everything the collectors render;
``default`` (the default) trims by :data:`DEFAULT_SET`, one row per family that is trimmed:

- ``DROP``: static, derived or debugging values a dashboard rarely needs per node (maximum
  clocks, P-state, BMC temperature thresholds, per-call NVML error counters, the PID terms);
- ``ACTIVE_ONLY``: a one-hot family keeps its active sample (value 1) and drops the zeros, so
  ``gpuwatchd_bmc_sensor_state{state="critical"} == 1`` and ``gpuwatchd_vgpu_licence_state
  {state="licensed"} == 1`` still alert; a state change replaces one series with another;
- ``Keep(label, values)``: only the samples whose ``label`` is one of ``values`` (the clock
  events that mean throttling, the enforced power limit, the SM clock, the slowdown threshold
  and the fans' lower critical threshold that monitoring/alerts.yaml compares against).

Families not in the table are exposed in full. Pure: families in, families out; the data and
the status document are not affected (``gpuwatchctl status`` shows everything). Measured
counts: docs/PERFORMANCE.md ("Series budget"); held by tests/unit/test_series_budget.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from gpuwatchd.model import Family, Sample


class Rule(Enum):
    """A whole-family rule."""

    DROP = "drop"
    ACTIVE_ONLY = "active_only"


@dataclass(frozen=True)
class Keep:
    """Keep the samples whose ``label`` has one of ``values`` (and, ``active_only``, value 1)."""

    label: str
    values: frozenset[str]
    active_only: bool = False


DROP, ACTIVE_ONLY = Rule.DROP, Rule.ACTIVE_ONLY
# sw_power_cap is in gpuwatchd_gpu_throttle_seconds_total{reason="power"} (a counter: its
# rate is the fraction of time capped, which a one-hot sampled every scrape misses)
THROTTLING_EVENTS = frozenset({"hw_slowdown", "sw_thermal", "hw_thermal"})

DEFAULT_SET: dict[str, Rule | Keep] = {
    # GPU (gpuwatchd.collectors.gpu_metrics)
    "gpuwatchd_gpu_clock_event_active": Keep("reason", THROTTLING_EVENTS),
    "gpuwatchd_gpu_clock_hertz": Keep("clock", frozenset({"sm"})),  # graphics = sm on NVIDIA
    "gpuwatchd_gpu_clock_max_hertz": DROP,  # static
    "gpuwatchd_gpu_power_limit_watts": Keep("limit", frozenset({"enforced"})),
    "gpuwatchd_gpu_utilization_ratio": Keep("engine", frozenset({"gpu"})),
    "gpuwatchd_gpu_temperature_threshold_celsius": Keep("threshold", frozenset({"slowdown"})),
    "gpuwatchd_gpu_pstate": DROP,  # the clocks and utilisation say it
    "gpuwatchd_gpu_persistence_mode": DROP,  # a setting: gpuwatchctl status and the logs
    "gpuwatchd_gpu_pcie_link_generation": DROP,  # link trouble: XIDs and GPU health
    # per-GPU counter for diagnosing a link (no alert or dashboard reads it): opt in with full
    "gpuwatchd_gpu_pcie_replays_total": DROP,
    "gpuwatchd_gpu_pcie_link_width": DROP,  # static unless downtrained: opt in with full
    "gpuwatchd_gpu_implausible_readings_total": DROP,  # also logged at each rejection
    "gpuwatchd_gpu_mig_mode": Keep("which", frozenset({"current"})),
    "gpuwatchd_nvml_errors_total": DROP,  # per call and error: for debugging (also logged)
    # chassis (gpuwatchd.collectors.chassis_metrics)
    # a sensor's state only while it is not ok: a healthy chassis exports none; the
    # readings themselves (fan speed, temperatures) are always there
    "gpuwatchd_bmc_sensor_state": Keep("state", frozenset({"warning", "critical",
                                                           "no_reading"}), active_only=True),
    "gpuwatchd_psu_state": ACTIVE_ONLY,
    # GpuwatchdFanFailed (lower_critical) and GpuwatchdFanBelowThreshold (lower_non_critical)
    "gpuwatchd_fan_speed_threshold_rpm": Keep("threshold", frozenset(
        {"lower_critical", "lower_non_critical"})),
    # the upper ones: GpuwatchdTemperatureOverThreshold/Critical compare against them
    "gpuwatchd_temperature_threshold_celsius": Keep("threshold", frozenset(
        {"upper_critical", "upper_non_critical"})),
    # licence (gpuwatchd.licence.metrics)
    "gpuwatchd_vgpu_licence_state": ACTIVE_ONLY,
    "gpuwatchd_vgpu_licence_expiry_status": DROP,  # the state and the expiry timestamp say it
    "gpuwatchd_vgpu_licence_supported": DROP,  # gpuwatchd_vgpu_licence_info says it
    "gpuwatchd_vgpu_virtualization_mode": DROP,  # static per GPU
    "gpuwatchd_gridd_unit_state": ACTIVE_ONLY,
    # per gridd journal event kind (12 series per node; no rule or panel reads them): the
    # journal has each event, `exporter.detail: full` brings the counters back
    "gpuwatchd_gridd_events_total": DROP,
    "gpuwatchd_licence_token_problem": ACTIVE_ONLY,
    "gpuwatchd_licence_config_problem": ACTIVE_ONLY,
    "gpuwatchd_licence_node_problem": ACTIVE_ONLY,
    # fan control (gpuwatchd.control.metrics)
    "gpuwatchd_fan_zone_mode": ACTIVE_ONLY,
    "gpuwatchd_fan_zone_pid_term_ratio": DROP,
    "gpuwatchd_fan_control_channel_duty_ratio": DROP,  # per fan, = the zone's duty ratio
}


class Detail(Enum):
    """``exporter.detail``."""

    DEFAULT = "default"
    FULL = "full"


def trim(families: Iterable[Family], detail: Detail) -> list[Family]:
    """The families as ``detail`` exposes them (a family left with no sample is dropped)."""
    if detail is Detail.FULL:
        return list(families)
    out = []
    for fam in families:
        rule = DEFAULT_SET.get(fam.name)
        samples = fam.samples if rule is None else _apply(rule, fam.samples)
        if samples:
            out.append(fam if samples is fam.samples else
                       Family(fam.name, fam.kind, fam.help, samples))
    return out


def _apply(rule: Rule | Keep, samples: tuple[Sample, ...]) -> tuple[Sample, ...]:
    if rule is Rule.DROP:
        return ()
    if rule is Rule.ACTIVE_ONLY:
        return tuple(s for s in samples if s.value != 0)
    assert isinstance(rule, Keep)  # noqa: S101 - the table's third kind
    return tuple(s for s in samples if dict(s.labels).get(rule.label) in rule.values
                 and not (rule.active_only and s.value == 0))
