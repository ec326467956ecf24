"""The fan controller's metric catalogue, rendered from its published readings.

Every control series has a ``zone`` label (or ``driver``/``bmc`` for the write side); the mode
is one-hot over monitor/control/failsafe so an alert can say ``mode="failsafe" == 1``.
Command-line equivalent: ``curl -s localhost:10045/metrics | grep ^gpuwatchd_fan_``.
"""

from __future__ import annotations

from gpuwatchd.control.state import FailsafeReason, FanControlReading, ZoneMode, ZoneReading
from gpuwatchd.model import Collected, FamilyBuilder, Kind

CATALOGUE: dict[str, tuple[Kind, str]] = {
    "gpuwatchd_fan_zone_mode": (
        "gauge", "1 for the zone's mode (monitor: no writes; control: gpuwatchd regulates; "
                 "failsafe: fans handed back to the BMC), 0 for the others."),
    "gpuwatchd_fan_zone_duty_ratio": (
        "gauge", "The fan duty the zone commands (0-1); absent when it does not command "
                 "(monitor, failsafe)."),
    "gpuwatchd_fan_zone_input_celsius": (
        "gauge", "The zone's controlling input (the hottest of its inputs)."),
    "gpuwatchd_fan_zone_setpoint_celsius": ("gauge", "The temperature the zone regulates to."),
    "gpuwatchd_fan_zone_ceiling_celsius": (
        "gauge", "At or above this the zone goes to failsafe at once."),
    "gpuwatchd_fan_zone_duty_limit_ratio": (
        "gauge", "The zone's duty limits (limit=min includes the calibrated floor, limit=max)."),
    "gpuwatchd_fan_zone_pid_term_ratio": (
        "gauge", "The PID's proportional, integral and derivative terms and the feed-forward "
                 "from the GPUs' power (f), in duty units."),
    "gpuwatchd_fan_zone_tuned": (
        "gauge", "1 when the zone runs the PI gains of its stored step test (gpuwatchctl tune), "
                 "0 when the config's gains."),
    "gpuwatchd_fan_zone_failsafe_entries_total": (
        "counter", "Times the zone went to failsafe, by reason."),
    "gpuwatchd_fan_control_info": ("gauge", "The fan driver and what it drives; always 1."),
    "gpuwatchd_fan_control_manual": (
        "gauge", "1 while gpuwatchd holds manual fan control, else 0."),
    # as the BMC got it: a whole percent, as a ratio (gpuwatchd.control.output)
    "gpuwatchd_fan_control_channel_duty_ratio": (
        "gauge", "The duty last written to each fan channel."),
    "gpuwatchd_fan_control_writes_total": (
        "counter", "Successful fan-control writes to the BMC or device."),
    "gpuwatchd_fan_control_write_errors_total": (
        "counter", "Failed fan-control calls, by kind (no_reply, deadline, refused_0xNN, "
                   "unsupported)."),
    "gpuwatchd_fan_control_reverts_total": (
        "counter", "Times the BMC was found back in automatic mode behind gpuwatchd's back "
                   "(then re-asserted)."),
}


def render(zones: list[ZoneReading], control: FanControlReading,
           others: tuple[FanControlReading, ...] = ()) -> Collected:
    """The families for one tick (the exporter renders them from ``Snapshot.control``);
    ``others``: the further drivers of fan_control.drivers, each with its own series."""
    b = FamilyBuilder(CATALOGUE)
    for z in zones:
        for mode in ZoneMode:
            b.add("gpuwatchd_fan_zone_mode", 1 if z.mode == mode else 0, zone=z.zone, mode=mode)
        b.add("gpuwatchd_fan_zone_duty_ratio", z.duty, zone=z.zone)
        if z.input_celsius is not None:
            b.add("gpuwatchd_fan_zone_input_celsius", z.input_celsius, zone=z.zone,
                  input=z.input_id)
        b.add("gpuwatchd_fan_zone_setpoint_celsius", z.setpoint_celsius, zone=z.zone)
        b.add("gpuwatchd_fan_zone_ceiling_celsius", z.ceiling_celsius, zone=z.zone)
        b.add("gpuwatchd_fan_zone_duty_limit_ratio", z.min_duty, zone=z.zone, limit="min")
        b.add("gpuwatchd_fan_zone_duty_limit_ratio", z.max_duty, zone=z.zone, limit="max")
        for term, value in (("p", z.p), ("i", z.i), ("d", z.d), ("f", z.f)):
            b.add("gpuwatchd_fan_zone_pid_term_ratio", value, zone=z.zone, term=term)
        b.add("gpuwatchd_fan_zone_tuned", 1 if z.tuned else 0, zone=z.zone)
        counts = dict(z.failsafe_entries)
        for reason in FailsafeReason:
            b.add("gpuwatchd_fan_zone_failsafe_entries_total", counts.get(reason, 0),
                  zone=z.zone, reason=reason)
    for one in (control, *others):
        lb = {"driver": one.driver, "target": one.target}
        b.add("gpuwatchd_fan_control_info", 1, **lb)
        b.add("gpuwatchd_fan_control_manual", one.manual, **lb)
        for channel, duty in one.channels:
            b.add("gpuwatchd_fan_control_channel_duty_ratio", duty, **lb, channel=channel)
        b.add("gpuwatchd_fan_control_writes_total", one.writes, **lb)
        for kind, count in one.write_errors:
            b.add("gpuwatchd_fan_control_write_errors_total", count, **lb, error=kind)
        b.add("gpuwatchd_fan_control_reverts_total", one.reverts, **lb)
    return Collected(families=b.build())
