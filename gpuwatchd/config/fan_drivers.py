"""The fan drivers as the configuration knows them: one :data:`DRIVERS` table, one row each.

A row (:class:`DriverSpec`) says what the config checks, detection (``driver: auto``),
calibration and reload need of a driver, and nothing that touches hardware: the BMC protocol
it needs (or none: a local device), the grammar of its channels, the IANA enterprise number
that ``driver: auto`` recognises in Get Device ID (``ipmitool mc info``: "Manufacturer ID"),
its settings section under ``fan_control:``, and whether ``gpuwatchctl calibrate`` can drive
it. The code that builds a driver is filled in one layer up, in
gpuwatchd.control.drivers.registry (a test checks both tables name the same drivers).

A zone's ``fans`` are parsed once, at config load, into typed :class:`Channel` values
(``fan3`` -> Channel(FAN, index=3)); drivers receive and return Channels, and the name is
only written out again for metrics and messages (``str(channel)``).

==============  ====================================  =======================================
driver          channels                              ``fans: all`` means
==============  ====================================  =======================================
dell            fan1 ... fanN (N = dell.fan_count)     every fan (selector 0xff)
supermicro      zone0 ... zone15, cpu (0), peripheral  ``supermicro.zones`` (default 0 and 1)
                (1)
redfish-dell    all                                   the iDRAC's minimum fan speed / offset
nvml            gpu0, gpu1, ... (GPUs with fans)       every GPU fan
hwmon           <chip or hwmonN>/pwmN                 (must be listed)
==============  ====================================  =======================================
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from gpuwatchd.compat import StrEnum
from gpuwatchd.config.yamlload import rng
from gpuwatchd.config.yamlparse import show
from gpuwatchd.errors import ConfigError

AUTO, NONE = "auto", "none"  # the choices of fan_control.driver that are no driver of their own


class ChannelKind(StrEnum):
    """What a channel's index counts (the value is the prefix of its written name)."""

    FAN = "fan"  # a Dell fan, 1-based (the IPMI fan number is index - 1)
    ZONE = "zone"  # a Supermicro fan zone (0 CPU, 1 peripheral)
    GPU = "gpu"  # an NVML GPU index
    PWM = "pwm"  # pwmN of a hwmon chip
    ALL = "all"  # one setting for every fan (Redfish OEM attributes)


@dataclass(frozen=True, order=True)
class Channel:
    """One fan channel, typed: what a driver writes a duty to."""

    kind: ChannelKind
    chip: str = ""  # hwmon: the chip's name (nct6798) or its directory (hwmon3)
    index: int = 0

    def __str__(self) -> str:
        """The name as the config writes it: fan3, zone0, gpu1, nct6798/pwm2, all."""
        head = f"{self.chip}/" if self.chip else ""
        return head + (self.kind.value if self.kind is ChannelKind.ALL else
                       f"{self.kind.value}{self.index}")


class ChannelError(ValueError):
    """A channel name the driver does not have; the message says what it expects."""


@dataclass(frozen=True)
class ChannelGrammar:
    """How a driver's channels are written in ``fans``, parsed once into a Channel."""

    pattern: re.Pattern[str]
    make: Callable[[re.Match[str]], Channel]
    expected: str  # for messages: what the pattern accepts
    example: str  # for messages: one channel

    def parse(self, text: str) -> Channel | None:
        """The channel ``text`` names, or None when it is not of this grammar."""
        match = self.pattern.fullmatch(text)
        return None if match is None else self.make(match)


def _indexed(kind: ChannelKind, aliases: Mapping[str, int] | None = None
             ) -> Callable[[re.Match[str]], Channel]:
    def make(match: re.Match[str]) -> Channel:
        text = match.group(0)
        if aliases and text in aliases:
            return Channel(kind, index=aliases[text])
        return Channel(kind, index=int(match.group("index")))
    return make


def _pwm(match: re.Match[str]) -> Channel:
    return Channel(ChannelKind.PWM, chip=match.group("chip"), index=int(match.group("index")))


# -- the settings sections (fan_control.<section>) ---------------------------------------------

@dataclass(frozen=True)
class DellConfig:
    """Dell 11G-13G raw IPMI fan control (``fan_control.dell:``)."""

    # The iDRAC's "third-party PCIe card default cooling response" (an 80 % floor for an
    # unrecognised x16 card): unchanged, or disable it while gpuwatchd regulates (13G).
    third_party_pcie_response: Literal["unchanged", "disable"] = "unchanged"
    # What it becomes on exit: restore (as found), enable (Dell's default), leave (as is).
    third_party_pcie_on_exit: Literal["restore", "enable", "leave"] = "restore"
    # Fans addressed one by one where the iDRAC refuses "all fans" (selector 0xff, R510).
    fan_count: int = field(default=6, metadata=rng(1, 16))


@dataclass(frozen=True)
class SupermicroConfig:
    """Supermicro raw IPMI fan control (``fan_control.supermicro:``)."""

    generation: Literal["auto", "x9", "x10"] = "auto"  # x10: X10-X13/H10-H13
    zones: tuple[int, ...] = field(default=(0, 1), metadata=rng(0, 15))  # "all" fans
    # The fan mode handed back on exit: the one found at start, or a fixed one.
    release_mode: Literal["previous", "standard", "full", "optimal", "heavyio"] = "previous"


@dataclass(frozen=True)
class RedfishDellConfig:
    """iDRAC9/10 Redfish OEM attributes: a coarse floor where raw control is gone."""

    attribute: Literal["minimum_fan_speed", "offset"] = "minimum_fan_speed"
    min_write_interval_seconds: float = field(default=60.0, metadata=rng(5, 3600))


@dataclass(frozen=True)
class NvmlConfig:
    """GPU fans through NVML (``fan_control.nvml:``)."""

    # Below this card temperature, while the zone asks for no more than the card's minimum,
    # the fans are handed back to the card's own curve (its idle fan-stop included); they
    # are written again from 2 C above it. None: always written.
    card_curve_below_celsius: float | None = field(default=None, metadata=rng(0, 100))


@dataclass(frozen=True)
class DriverSections:
    """Every driver's settings section; FanControlConfig is built on this (one field each)."""

    dell: DellConfig = field(default_factory=DellConfig)
    supermicro: SupermicroConfig = field(default_factory=SupermicroConfig)
    redfish_dell: RedfishDellConfig = field(default_factory=RedfishDellConfig)
    nvml: NvmlConfig = field(default_factory=NvmlConfig)


# -- the table -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class DriverSpec:
    """One fan driver, as the config checks, detection, calibration and reload see it."""

    name: str  # fan_control.driver
    bmc_protocol: Literal["ipmi", "redfish"] | None  # None: a local device, no BMC
    channels: ChannelGrammar
    expands_all: bool  # ``fans: all`` lists every channel the driver finds
    vendor_iana: int | None  # Get Device ID manufacturer that driver: auto maps here
    section: Callable[[DriverSections], object] | None  # its settings, if it has any
    calibratable: bool  # gpuwatchctl calibrate can step it (reads fans from the same BMC)
    all_hint: str = ""  # why ``fans: all`` will not do, where it will not

    def parse_channel(self, text: str) -> Channel:
        """The Channel ``text`` names; ChannelError saying what is expected otherwise."""
        channel = self.channels.parse(text)
        if channel is None:
            raise ChannelError(f"{text!r} is not a {self.name} fan channel: expected "
                               f"{self.channels.expected}")
        return channel


DELL = DriverSpec(
    "dell", "ipmi",
    ChannelGrammar(re.compile(r"fan(?P<index>[1-9]|1[0-6])"), _indexed(ChannelKind.FAN),
                   "fan1 ... fan16", "fan1"),
    expands_all=True, vendor_iana=674, section=lambda s: s.dell, calibratable=True)
SUPERMICRO = DriverSpec(
    "supermicro", "ipmi",
    ChannelGrammar(re.compile(r"zone(?P<index>[0-9]|1[0-5])|cpu|peripheral"),
                   _indexed(ChannelKind.ZONE, {"cpu": 0, "peripheral": 1}),
                   "zone0 ... zone15, cpu or peripheral", "zone0"),
    expands_all=True, vendor_iana=10876, section=lambda s: s.supermicro, calibratable=True)
REDFISH_DELL = DriverSpec(
    "redfish-dell", "redfish",
    ChannelGrammar(re.compile(r"all"), lambda _m: Channel(ChannelKind.ALL),
                   "all (the iDRAC sets one floor for every fan)", "all"),
    expands_all=True, vendor_iana=None, section=lambda s: s.redfish_dell, calibratable=False)
NVML = DriverSpec(
    "nvml", None,
    ChannelGrammar(re.compile(r"gpu(?P<index>[0-9]+)"), _indexed(ChannelKind.GPU),
                   "gpu0, gpu1, ...", "gpu0"),
    expands_all=True, vendor_iana=None, section=lambda s: s.nvml, calibratable=False)
HWMON = DriverSpec(
    "hwmon", None,
    ChannelGrammar(re.compile(r"(?P<chip>[^/\s]+)/pwm(?P<index>[0-9]+)"), _pwm,
                   "<chip or hwmonN>/pwmN", "nct6798/pwm2"),
    expands_all=False, vendor_iana=None, section=None, calibratable=False,
    all_hint="hwmon needs the PWM channels listed, e.g. [\"nct6798/pwm2\"]")

DRIVERS: Mapping[str, DriverSpec] = {s.name: s for s in (DELL, SUPERMICRO, REDFISH_DELL, NVML,
                                                          HWMON)}


class UnknownDriver(ConfigError):
    """A fan_control.driver that is not in :data:`DRIVERS`; the message names the known ones."""


def choices() -> tuple[str, ...]:
    """Every value fan_control.driver may take, in the order messages list them."""
    return (AUTO, *DRIVERS, NONE)


def spec_for(name: str) -> DriverSpec:
    """The row of driver ``name``; UnknownDriver (naming every known one) otherwise."""
    spec = DRIVERS.get(name)
    if spec is None:
        close = difflib.get_close_matches(name, choices(), n=1) if len(name) < 100 else []
        extra = f" (did you mean {close[0]!r}?)" if close else ""
        raise UnknownDriver(f"{show(name)} is not one of {', '.join(choices())}{extra}")
    return spec


def detectable() -> tuple[DriverSpec, ...]:
    """The drivers ``driver: auto`` can pick (those with a vendor id), in table order."""
    return tuple(s for s in DRIVERS.values() if s.vendor_iana is not None)


def for_vendor(iana: int | None) -> DriverSpec | None:
    """The driver for a BMC whose Get Device ID reports manufacturer ``iana``."""
    return next((s for s in detectable() if s.vendor_iana == iana), None)


def candidates(name: str) -> tuple[DriverSpec, ...]:
    """The drivers ``name`` may turn out to be: itself, or every detectable one for auto."""
    return detectable() if name == AUTO else (spec_for(name),)


def parse_channel(name: str, text: str) -> Channel:
    """A zone's ``fans`` entry as a Channel of driver ``name`` (auto: of any detectable
    driver; their grammars do not overlap). ChannelError says what is expected."""
    specs = candidates(name)
    for spec in specs:
        channel = spec.channels.parse(text)
        if channel is not None:
            return channel
    if len(specs) == 1:
        return specs[0].parse_channel(text)
    expected = "; ".join(f"{s.channels.expected} ({s.name})" for s in specs)
    raise ChannelError(f"{text!r} is not a fan channel of any driver {name} can detect: "
                       f"expected {expected}")


def settings_of(sections: DriverSections) -> tuple[object, ...]:
    """Every driver's settings (what a reload must find unchanged to keep the driver)."""
    return tuple(s.section(sections) for s in DRIVERS.values() if s.section is not None)
