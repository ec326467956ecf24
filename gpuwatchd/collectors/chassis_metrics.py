"""The chassis metric catalogue, rendered from the chassis readings (pure functions, no I/O).

Both chassis collectors (chassis_ipmi.py, chassis_redfish.py) make their readings once
(gpuwatchd.model: BmcReading, FanReading, ChassisTemperature, ChassisVoltage, ChassisCurrent,
ChassisPowerSensor, PsuReading, FanRedundancy, PsuRedundancy; ChassisEnergy from
chassis_energy.py) and :func:`render` turns them into the same families, so a dashboard, an
alert and a fan-control input do not care which protocol a BMC speaks. Command-line
equivalent: ``curl -s localhost:10045/metrics | grep -e ^gpuwatchd_bmc_ -e
^gpuwatchd_fan_speed -e ^gpuwatchd_psu_ -e ^gpuwatchd_chassis_``.
"""

from __future__ import annotations

from collections.abc import Iterable

from gpuwatchd.model import (
    SENSOR_STATES,
    BmcReading,
    ChassisCurrent,
    ChassisEnergy,
    ChassisPowerSensor,
    ChassisSensor,
    ChassisTemperature,
    ChassisVoltage,
    Family,
    FamilyBuilder,
    FanReading,
    FanRedundancy,
    Kind,
    PsuReading,
    PsuRedundancy,
)

CATALOGUE: dict[str, tuple[Kind, str]] = {
    "gpuwatchd_bmc_up": ("gauge", "1 if the BMC answered on this tick, else 0."),
    "gpuwatchd_bmc_info": ("gauge", "The BMC's vendor and firmware and the protocol used; "
                                    "always 1."),
    "gpuwatchd_fan_speed_rpm": ("gauge", "Chassis fan (rotor) speed in revolutions per minute."),
    "gpuwatchd_fan_speed_ratio": ("gauge", "Chassis fan speed as a ratio of full speed (0-1), "
                                           "where the BMC reports percent."),
    "gpuwatchd_fan_speed_threshold_rpm": ("gauge", "A BMC threshold of a fan's speed."),
    "gpuwatchd_temperature_celsius": ("gauge", "A BMC temperature sensor (inlet, exhaust, CPU, "
                                               "...)."),
    "gpuwatchd_temperature_threshold_celsius": ("gauge", "A BMC threshold of a temperature "
                                                         "sensor."),
    "gpuwatchd_voltage_volts": ("gauge", "A BMC voltage sensor."),
    "gpuwatchd_voltage_threshold_volts": ("gauge", "A BMC threshold of a voltage sensor."),
    "gpuwatchd_current_amperes": ("gauge", "A BMC current sensor."),
    "gpuwatchd_power_sensor_watts": ("gauge", "A BMC power sensor (watts)."),
    "gpuwatchd_bmc_sensor_state": ("gauge", "1 for the sensor's state as the BMC reports it "
                                            "(ok, warning, critical, no_reading), 0 for the "
                                            "others."),
    "gpuwatchd_psu_up": ("gauge", "1 if the power supply is present, has input power and has "
                                  "not failed, else 0."),
    "gpuwatchd_psu_state": ("gauge", "Power supply conditions: present, failed, "
                                     "predictive_failure, ac_lost (1 = asserted)."),
    "gpuwatchd_psu_power_watts": ("gauge", "Power supply input or output power."),
    "gpuwatchd_psu_capacity_watts": ("gauge", "Power supply rated output capacity."),
    "gpuwatchd_chassis_power_watts": ("gauge", "Whole-chassis power draw as the BMC measures it "
                                               "(DCMI Get Power Reading or Redfish)."),
    "gpuwatchd_chassis_energy_accounted_joules_total": (
        "counter", "Energy gpuwatchd accounted since it started: the chassis power draw "
                   "integrated over the sample interval (an estimate)."),
    "gpuwatchd_fan_redundancy_ok": ("gauge", "1 if the fan redundancy group is fully "
                                             "redundant."),
    "gpuwatchd_psu_redundancy_ok": ("gauge", "1 if the power supply redundancy group is fully "
                                             "redundant (0: redundancy lost or degraded)."),
    "gpuwatchd_bmc_requests_total": ("counter", "Requests sent to the BMC (IPMI commands or "
                                                "HTTP requests)."),
    "gpuwatchd_bmc_errors_total": ("counter", "Failed BMC requests, by kind of failure."),
    "gpuwatchd_bmc_sessions_opened_total": ("counter", "Sessions opened to the BMC (a rise "
                                                       "means re-logins: BMC reboots or "
                                                       "expiry)."),
    "gpuwatchd_bmc_sdr_reads_total": ("counter", "Full reads of the IPMI SDR repository."),
}

# the ``kind`` label of gpuwatchd_bmc_sensor_state, per reading type
SENSOR_KINDS: dict[type[ChassisSensor], str] = {
    ChassisTemperature: "temperature", FanReading: "fan", ChassisVoltage: "voltage",
    ChassisCurrent: "current", ChassisPowerSensor: "power"}


def render(readings: Iterable[object]) -> tuple[Family, ...]:
    """The families of one BMC's readings, in the readings' order within each family."""
    b = FamilyBuilder(CATALOGUE)
    for r in readings:
        if isinstance(r, BmcReading):
            _bmc(b, r)
        elif isinstance(r, PsuReading):
            _psu(b, r)
        elif isinstance(r, FanRedundancy):
            b.add("gpuwatchd_fan_redundancy_ok", r.redundant, bmc=r.bmc, group=r.group)
        elif isinstance(r, ChassisEnergy):
            b.add("gpuwatchd_chassis_energy_accounted_joules_total", r.joules_total,
                  bmc=r.bmc, chassis=r.chassis)
        elif isinstance(r, PsuRedundancy):
            b.add("gpuwatchd_psu_redundancy_ok", r.redundant, bmc=r.bmc, group=r.group)
        elif isinstance(r, ChassisSensor):
            _sensor(b, r)
    return b.build()


def _bmc(b: FamilyBuilder, r: BmcReading) -> None:
    b.add("gpuwatchd_bmc_up", r.up, bmc=r.bmc)
    if r.identity is not None:
        b.add("gpuwatchd_bmc_info", 1, bmc=r.bmc, vendor=r.identity.vendor,
              firmware=r.identity.firmware, protocol=r.protocol)
    counters = r.counters
    b.add("gpuwatchd_bmc_requests_total", counters.requests, bmc=r.bmc)
    b.add("gpuwatchd_bmc_sessions_opened_total", counters.sessions_opened, bmc=r.bmc)
    for error, count in counters.errors:
        b.add("gpuwatchd_bmc_errors_total", count, bmc=r.bmc, error=error)
    b.add("gpuwatchd_bmc_sdr_reads_total", counters.sdr_reads, bmc=r.bmc)
    for p in r.power:
        b.add("gpuwatchd_chassis_power_watts", p.watts, bmc=r.bmc, chassis=p.chassis)


def _sensor(b: FamilyBuilder, r: ChassisSensor) -> None:
    if isinstance(r, FanReading):
        b.add("gpuwatchd_fan_speed_rpm", r.rpm, bmc=r.bmc, fan=r.name)
        b.add("gpuwatchd_fan_speed_ratio", r.ratio, bmc=r.bmc, fan=r.name)
        for threshold, value in r.thresholds_rpm:
            b.add("gpuwatchd_fan_speed_threshold_rpm", value, bmc=r.bmc, fan=r.name,
                  threshold=threshold)
    elif isinstance(r, ChassisTemperature):
        b.add("gpuwatchd_temperature_celsius", r.celsius, bmc=r.bmc, sensor=r.name)
        for threshold, value in r.thresholds_celsius:
            b.add("gpuwatchd_temperature_threshold_celsius", value, bmc=r.bmc, sensor=r.name,
                  threshold=threshold)
    elif isinstance(r, ChassisVoltage):
        b.add("gpuwatchd_voltage_volts", r.volts, bmc=r.bmc, sensor=r.name)
        for threshold, value in r.thresholds_volts:
            b.add("gpuwatchd_voltage_threshold_volts", value, bmc=r.bmc, sensor=r.name,
                  threshold=threshold)
    elif isinstance(r, ChassisCurrent):  # no threshold series for currents and powers (yet)
        b.add("gpuwatchd_current_amperes", r.amperes, bmc=r.bmc, sensor=r.name)
    else:
        b.add("gpuwatchd_power_sensor_watts", r.watts, bmc=r.bmc, sensor=r.name)
    kind = SENSOR_KINDS[type(r)]
    for state in SENSOR_STATES:
        b.add("gpuwatchd_bmc_sensor_state", r.state == state, bmc=r.bmc, sensor=r.name,
              kind=kind, state=state)


def _psu(b: FamilyBuilder, r: PsuReading) -> None:
    b.add("gpuwatchd_psu_up", r.up, bmc=r.bmc, psu=r.name)
    for state, value in (("present", r.present), ("failed", r.failed),
                         ("predictive_failure", r.predictive_failure), ("ac_lost", r.ac_lost)):
        b.add("gpuwatchd_psu_state", value, bmc=r.bmc, psu=r.name, state=state)
    b.add("gpuwatchd_psu_power_watts", r.input_watts, bmc=r.bmc, psu=r.name, direction="input")
    b.add("gpuwatchd_psu_power_watts", r.output_watts, bmc=r.bmc, psu=r.name,
          direction="output")
    b.add("gpuwatchd_psu_capacity_watts", r.capacity_watts, bmc=r.bmc, psu=r.name)
