"""The configuration: one YAML file -> frozen dataclasses, validated once.

``schema`` holds the dataclasses (units in the key names, duties as ratios 0-1), ``yamlload``
the line-tracking YAML reader and the typed builder, ``load`` the file reading and the
cross-field checks. The names below are the package's public face.
"""

from gpuwatchd.config.fan_drivers import DellConfig, RedfishDellConfig, SupermicroConfig
from gpuwatchd.config.load import load, loads, parse_listen
from gpuwatchd.config.schema import (
    DEFAULT_LISTEN,
    DEFAULT_PORT,
    EXIT_CONFIG,
    BmcConfig,
    Config,
    ExporterConfig,
    FanControlConfig,
    GpuConfig,
    HwmonConfig,
    LicenceConfig,
    LicenceRemediationConfig,
    ZoneConfig,
)
from gpuwatchd.errors import ConfigError

__all__ = [
    "DEFAULT_LISTEN", "DEFAULT_PORT", "EXIT_CONFIG", "BmcConfig", "Config", "ConfigError",
    "DellConfig", "ExporterConfig", "FanControlConfig", "GpuConfig", "HwmonConfig",
    "LicenceConfig", "LicenceRemediationConfig", "RedfishDellConfig", "SupermicroConfig",
    "ZoneConfig", "load", "loads", "parse_listen",
]
