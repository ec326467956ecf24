"""The configuration: one YAML file -> frozen dataclasses, validated once, here.

Every error names the file, the line and the key path, with a "did you mean" for a misspelt
key, and makes ``gpuwatchd --check-config`` (and the daemon) exit with :data:`EXIT_CONFIG`.
Units are in the key names (``_seconds``, ``_celsius``); duties are ratios 0-1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from gpuwatchd.config.fan_drivers import Channel, DriverSections
from gpuwatchd.config.selectors import ALL_GPUS, Selector, parse_selector
from gpuwatchd.config.yamlload import parsed, rng
from gpuwatchd.model import ConditionKind, Severity

EXIT_CONFIG = 6  # as smfc-client and the reference's CLI table: 6 = invalid configuration
DEFAULT_PORT = 10045  # no clash with 9100 node, 9290 ipmi, 9400 dcgm, 9835 nvidia_gpu, 8000, 9099
DEFAULT_LISTEN = f"127.0.0.1:{DEFAULT_PORT}"


@dataclass(frozen=True)
class GpuConfig:
    """NVML GPU telemetry (``gpus:``)."""

    enabled: Literal["auto"] | bool = "auto"  # auto: GPUs if the NVIDIA driver is there
    library_path: str | None = None  # a libnvidia-ml.so.1 other than the loader's choice
    deadline_seconds: float = field(default=1.5, metadata=rng(0.05, 30))
    slow_interval_seconds: float = field(default=30.0, metadata=rng(1, 3600))
    xid_events: bool = True
    plausible_min_celsius: float = field(default=-20.0, metadata=rng(-100, 0))
    plausible_max_celsius: float = field(default=150.0, metadata=rng(50, 300))
    reinit_max_backoff_seconds: float = field(default=60.0, metadata=rng(1, 3600))


@dataclass(frozen=True)
class BmcConfig:
    """One BMC (``bmcs: [...]``), reached over IPMI or Redfish."""

    name: str
    protocol: Literal["ipmi", "redfish"] = "ipmi"
    transport: Literal["lan", "inband"] = "lan"
    ipmi_version: Literal["2.0", "1.5"] = "2.0"
    host: str | None = None
    port: int | None = field(default=None, metadata=rng(1, 65535))
    username: str | None = None
    password_file: str | None = None
    password_credential: str | None = None  # a systemd credential name ($CREDENTIALS_DIRECTORY)
    cipher_suites: tuple[int, ...] = field(default=(17, 3), metadata=rng(0, 17))
    timeout_seconds: float = field(default=2.0, metadata=rng(0.1, 60))
    interval_seconds: float | None = field(default=None, metadata=rng(0.5, 3600))
    redfish_auth: Literal["session", "basic"] = "session"
    tls_verify: bool = True
    ca_file: str | None = None
    ipmi_device: str = "/dev/ipmi0"  # transport: inband
    privilege: Literal["user", "operator", "administrator"] = "administrator"
    max_requests_per_second: float = field(default=20.0, metadata=rng(0.5, 1000))  # Redfish


@dataclass(frozen=True)
class ZoneConfig:
    """One fan zone (``fan_control.zones: [...]``)."""

    name: str
    # The fan_control.drivers entry whose fans this zone drives (by its name); needed only
    # where there are several. The single-driver form (fan_control.driver) leaves it unset.
    driver: str | None = None
    fans: Literal["all"] | tuple[str, ...] = "all"  # as written; parsed into ``channels``
    inputs: tuple[Selector, ...] = field(default=(ALL_GPUS,), metadata=parsed(parse_selector))
    setpoint_celsius: float = field(default=75.0, metadata=rng(20, 110))
    ceiling_celsius: float = field(default=85.0, metadata=rng(25, 120))
    min_duty: float = field(default=0.15, metadata=rng(0, 1))
    max_duty: float = field(default=1.0, metadata=rng(0, 1))
    # PID (gpuwatchd.control.pid), in duty ratio per degree: hotter -> more duty.
    kp: float = field(default=0.04, metadata=rng(0, 10))  # per C of error
    ki: float = field(default=0.0003, metadata=rng(0, 10))  # per C of error per second
    kd: float = field(default=0.35, metadata=rng(0, 1000))  # per C/s of the input's rise
    derivative_filter_seconds: float = field(default=4.0, metadata=rng(0, 600))
    # P and D see a least-squares line over this window, not the last whole-degree reading
    # (gpuwatchd.control.estimate; 0: the last reading and a two-point difference).
    derivative_window_seconds: float = field(default=30.0, metadata=rng(0, 600))
    # An error within this (the sensor's resolution) is neither integrated nor acted on by P.
    error_deadband_celsius: float = field(default=0.5, metadata=rng(0, 10))
    # Feed-forward: duty per watt of the hottest GPU input's power (low-pass filtered).
    feedforward_duty_per_watt: float = field(default=0.0025, metadata=rng(0, 1))
    feedforward_filter_seconds: float = field(default=10.0, metadata=rng(0, 600))
    # The commanded duty holds through changes below this; smaller ones wait for the dwell.
    write_deadband_ratio: float = field(default=0.02, metadata=rng(0, 0.5))
    min_dwell_seconds: float = field(default=20.0, metadata=rng(0, 3600))
    # Slew limits of the commanded duty (ratio per second): up fast, down slow (as Dell's
    # firmware: ramp up 0.1, down 0.05).
    slew_up_per_second: float = field(default=0.1, metadata=rng(0.001, 10))
    slew_down_per_second: float = field(default=0.01, metadata=rng(0.001, 10))
    # An input older than this is stale: failsafe (default: 1.5 x interval_seconds).
    stale_after_seconds: float | None = field(default=None, metadata=rng(0.1, 3600))
    # Failsafe is left only after this long of good data.
    failsafe_hold_seconds: float = field(default=30.0, metadata=rng(0, 3600))
    # "gpu-margin:" inputs are seen as (this - margin); default: the GPU's slowdown temperature.
    margin_reference_celsius: float | None = field(default=None, metadata=rng(20, 150))
    # ``fans`` parsed for fan_control.driver at load (empty for ``fans: all``).
    channels: tuple[Channel, ...] = field(default=(), metadata={"internal": True})


@dataclass(frozen=True)
class FanDriverConfig(DriverSections):
    """One of several fan drivers (``fan_control.drivers: [...]``): the GPU's own fans
    (``nvml``) beside the case fans (``hwmon``), or one BMC each for several hosts. Each has
    its own zones (``zones[].driver`` names it), connection and safety state: one driver's
    failure fails only its own zones safe."""

    name: str = ""  # what zones[].driver says; default: the bmc's name, else the driver's
    driver: str = "auto"  # auto or a name in gpuwatchd.config.fan_drivers.DRIVERS
    bmc: str | None = None


@dataclass(frozen=True)
class FanControlConfig(DriverSections):
    """Closed-loop fan control (``fan_control:``); ``driver: none`` only monitors.

    The drivers' own sections (``dell:``, ``supermicro:``, ...) come from DriverSections, one
    field per row of gpuwatchd.config.fan_drivers.DRIVERS that has settings."""

    # auto, none or a name in gpuwatchd.config.fan_drivers.DRIVERS (checked at load).
    driver: str = "none"
    bmc: str | None = None
    # Several drivers, each with its zones (instead of driver/bmc and their sections above,
    # which mean one driver for every zone).
    drivers: tuple[FanDriverConfig, ...] = ()
    zones: tuple[ZoneConfig, ...] = ()
    # Consecutive failed writes (after retries of a missing reply) before failsafe.
    write_failures_to_failsafe: int = field(default=3, metadata=rng(1, 100))
    # Each BMC call must finish within this (capped at interval_seconds); a later answer is
    # a failed write.
    write_deadline_seconds: float = field(default=2.5, metadata=rng(0.1, 60))
    # Manual mode and the duty are written again this often even when nothing changed
    # (a BMC that reverted to automatic unnoticed is corrected within this).
    reassert_seconds: float = field(default=30.0, metadata=rng(1, 3600))
    # How often the BMC's fan mode is read back (Supermicro) or its fan speeds checked
    # against the commanded duty (Dell) to notice a revert to automatic.
    mode_check_seconds: float = field(default=10.0, metadata=rng(1, 3600))
    # Where `gpuwatchctl calibrate` stores the measured duty floor (calibration-<bmc>.json).
    state_directory: str = "/var/lib/gpuwatchd"


@dataclass(frozen=True)
class LicenceRemediationConfig:
    """Opt-in gridd restarts (``licence.remediation:``); limits are fixed: 1 per 30 min, 3/day."""

    restart_gridd: bool = False
    unlicensed_seconds: float = field(default=600.0, metadata=rng(60, 86400))
    state_file: str | None = "/var/lib/gpuwatchd/licence-remediation.json"


@dataclass(frozen=True)
class LicenceConfig:
    """vGPU licence watch (``licence:``)."""

    enabled: Literal["auto"] | bool = "auto"
    interval_seconds: float = field(default=60.0, metadata=rng(5, 3600))
    deadline_seconds: float = field(default=20.0, metadata=rng(1, 120))
    gridd_conf: str = "/etc/nvidia/gridd.conf"
    token_dir: str | None = None  # default: ClientConfigTokenPath, else beside gridd.conf
    journal: bool = True  # follow nvidia-gridd's journal (journalctl --follow)
    grace_seconds: float = field(default=1200.0, metadata=rng(60, 86400))
    unlicensed_warning_seconds: float = field(default=300.0, metadata=rng(0, 86400))
    unlicensed_critical_seconds: float = field(default=900.0, metadata=rng(0, 86400))
    expiring_seconds: float = field(default=86400.0, metadata=rng(60, 31_536_000))
    expiring_lease_ratio: float = field(default=0.15, metadata=rng(0.01, 0.9))
    renewing_late_lease_ratio: float = field(default=0.5, metadata=rng(0.1, 0.95))
    unknown_warning_cycles: int = field(default=3, metadata=rng(1, 1000))
    gridd_down_critical_seconds: float = field(default=60.0, metadata=rng(0, 86400))
    token_max_age_seconds: float | None = field(default=None, metadata=rng(3600, None))
    smi_interval_seconds: float = field(default=300.0, metadata=rng(30, 86400))
    smi_timeout_seconds: float = field(default=5.0, metadata=rng(1, 60))
    remediation: LicenceRemediationConfig = field(default_factory=LicenceRemediationConfig)


@dataclass(frozen=True)
class HwmonConfig:
    """Mainboard fans and temperatures from Linux hwmon sysfs (``hwmon:``)."""

    enabled: Literal["auto"] | bool = "auto"  # auto: read if /sys/class/hwmon has a chip
    interval_seconds: float | None = field(default=None, metadata=rng(0.5, 3600))


@dataclass(frozen=True)
class EnergyConfig:
    """Energy accounting (``energy:``): kWh per GPU in ``gpuwatchctl status``, with a cost."""

    price_per_kwh: float | None = field(default=None, metadata=rng(0, 1000))
    currency: str = "EUR"  # as shown beside the cost (any short text: EUR, USD, GBP)


@dataclass(frozen=True)
class ExporterConfig:
    """The Prometheus endpoint (``exporter:``)."""

    listen: tuple[str, ...] = (DEFAULT_LISTEN,)
    telemetry_path: str = "/metrics"
    web_config_file: str | None = None
    detail: Literal["default", "full"] = "default"  # the series budget: gpuwatchd.exporter.detail


@dataclass(frozen=True)
class HealthConfig:
    """The hardware verdict of ``gpuwatchctl status`` (``health:``; gpuwatchd.health).

    Every condition counts (exit 1) unless listed in ``ignore``; the default ignores only
    ``sensor_warning``, which no alert rule pages for either (monitoring/alerts.yaml)."""

    ignore: tuple[ConditionKind, ...] = ("sensor_warning",)
    # An XID counts this long after it was reported (GpuwatchdGpuXidErrors: increase[10m]).
    xid_window_seconds: float = field(default=600.0, metadata=rng(10, 86400))


@dataclass(frozen=True)
class NotifyConfig:
    """Optional notification of the journal's events (``notify:``; gpuwatchd.health.hook).

    Off unless ``command`` or ``webhook_url`` is set. The command gets the event as one JSON
    object on stdin; the webhook gets it as a JSON POST body, with ``Authorization: Bearer``
    from ``webhook_token_file`` if given."""

    command: tuple[str, ...] = ()  # argv, no shell: ["/usr/local/bin/page-me", "--json"]
    webhook_url: str | None = None  # http:// or https://, e.g. https://ntfy.sh/my-topic
    webhook_token_file: str | None = None  # the token, never in the config itself
    min_severity: Severity = "warning"  # recoveries are sent when their fault was
    max_per_hour: int = field(default=30, metadata=rng(1, 3600))
    timeout_seconds: float = field(default=5.0, metadata=rng(0.5, 60))


@dataclass(frozen=True)
class RemoteGpuConfig:
    """A host whose GPUs gpuwatchd reads over SSH (``remote_gpus: [...]``; ``ssh:<name>``
    zone inputs; gpuwatchd.collectors.remote_gpus), e.g. an ESXi host (docs/esxi.md).

    Key authentication only (BatchMode: never a password), the host key pinned in
    ``known_hosts_file`` (StrictHostKeyChecking=yes); the key's path goes to ``ssh -i``, its
    content is never read by gpuwatchd."""

    name: str
    host: str
    user: str = "root"
    port: int = field(default=22, metadata=rng(1, 65535))
    key_file: str | None = None
    key_credential: str | None = None  # a systemd credential name ($CREDENTIALS_DIRECTORY)
    known_hosts_file: str = "/etc/gpuwatchd/known_hosts"
    interval_seconds: float | None = field(default=None, metadata=rng(0.5, 3600))
    # One call's limit (the control loop waits at most this long on it): not above the interval.
    timeout_seconds: float = field(default=1.5, metadata=rng(0.2, 60))


@dataclass(frozen=True)
class Config:
    """The whole configuration. ``source`` is the file it came from (for messages)."""

    interval_seconds: float = field(default=2.0, metadata=rng(0.2, 60))
    status_socket: str | None = None  # default: see gpuwatchd.paths.default_socket()
    gpus: GpuConfig = field(default_factory=GpuConfig)
    bmcs: tuple[BmcConfig, ...] = ()
    fan_control: FanControlConfig = field(default_factory=FanControlConfig)
    licence: LicenceConfig = field(default_factory=LicenceConfig)
    exporter: ExporterConfig = field(default_factory=ExporterConfig)
    hwmon: HwmonConfig = field(default_factory=HwmonConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    energy: EnergyConfig = field(default_factory=EnergyConfig)
    remote_gpus: tuple[RemoteGpuConfig, ...] = ()
    source: str = field(default="<defaults>", metadata={"internal": True})
