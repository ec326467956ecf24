"""Loading and validating the configuration: YAML -> :mod:`gpuwatchd.config.schema` objects.

Every error names the file, the line and the key path (``file:line: key``) and is a
:class:`gpuwatchd.errors.ConfigError` (exit code :data:`gpuwatchd.config.schema.EXIT_CONFIG`).
"""

from __future__ import annotations

import dataclasses
import ipaddress
from pathlib import Path

from gpuwatchd.config import fan_drivers
from gpuwatchd.config.files import MAX_CONFIG_BYTES, FileRefused, read_regular
from gpuwatchd.config.schema import (
    DEFAULT_LISTEN,
    DEFAULT_PORT,
    BmcConfig,
    Config,
    FanControlConfig,
    FanDriverConfig,
    ZoneConfig,
)
from gpuwatchd.config.selectors import BmcSensorSelector, SshSelector
from gpuwatchd.config.yamlload import Builder, parse
from gpuwatchd.config.yamlparse import show
from gpuwatchd.errors import ConfigError


def load(path: str | Path) -> Config:
    """Read and validate a config file; raise ConfigError naming file:line: key.

    Only a regular file of at most MAX_CONFIG_BYTES is read (a FIFO, a device or a directory
    is refused by name, never waited on: gpuwatchd.config.files).
    """
    source = str(path)
    try:
        text = read_regular(path, MAX_CONFIG_BYTES).decode("utf-8")
    except FileRefused as exc:
        raise ConfigError(f"{source}: cannot read the config file: {exc.problem}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: not UTF-8 text (byte {exc.start}): {exc.reason}") from None
    return loads(text, source)


def loads(text: str, source: str = "<string>") -> Config:
    """Validate config text; ``source`` names it in error messages."""
    data = parse(text, source)
    builder = Builder(source)
    if isinstance(data, dict) and "source" in data:
        builder.fail(data.key_lines.get("source", 0), "source", "unknown key")  # type: ignore[attr-defined]
    config = builder.build(Config, data)
    config = _named_drivers(dataclasses.replace(config, source=source))
    _check(config, data, builder)
    return _with_channels(config, data, builder)


def _line(data: object, *path: str | int) -> int:
    """Best-effort line of a key path in the parsed YAML (0 when unknown)."""
    line = getattr(data, "line", 0)
    node = data
    for key in path:
        if isinstance(key, int) and isinstance(node, list) and key < len(node):
            line = getattr(node, "item_lines", [line] * (key + 1))[key]
            node = node[key]
        elif isinstance(node, dict) and key in node:
            line = getattr(node, "key_lines", {}).get(key, line)
            node = node[key]
        else:
            break
    return line


def _check(config: Config, data: object, b: Builder) -> None:
    """Cross-field checks that one key's type and range cannot express."""
    for i, addr in enumerate(config.exporter.listen):
        if parse_listen(addr) is None:
            b.fail(_line(data, "exporter", "listen", i), f"exporter.listen[{i}]",
                   f"{show(addr, 80)} is not HOST:PORT "
                   f"(e.g. {DEFAULT_LISTEN} or [::1]:{DEFAULT_PORT})")
    if not config.exporter.telemetry_path.startswith("/"):
        b.fail(_line(data, "exporter", "telemetry_path"), "exporter.telemetry_path",
               "must start with '/'")
    _check_bmcs(config, data, b)
    _check_fan_control(config, data, b)
    _check_licence(config, data, b)
    _check_notify(config, data, b)
    _check_remote_gpus(config, data, b)


def _check_bmcs(config: Config, data: object, b: Builder) -> None:
    seen: set[str] = set()
    for i, bmc in enumerate(config.bmcs):
        where = f"bmcs[{i}]"
        if bmc.name in seen:
            b.fail(_line(data, "bmcs", i, "name"), f"{where}.name",
                   f"duplicate BMC name {bmc.name!r}")
        seen.add(bmc.name)
        if bmc.transport == "lan" and not bmc.host:
            b.fail(_line(data, "bmcs", i), f"{where}.host", "required for transport: lan")
        if bmc.password_file and bmc.password_credential:
            b.fail(_line(data, "bmcs", i, "password_credential"), f"{where}.password_credential",
                   "give password_file or password_credential, not both")
        _check_bmc_protocol(bmc, where, _line(data, "bmcs", i), b)


_CIPHER_SUITES = (1, 2, 3, 15, 16, 17)  # the RMCP+ suites python-ipmi implements


def _check_bmc_protocol(bmc: BmcConfig, where: str, line: int, b: Builder) -> None:
    """Per-protocol checks of one BMC (chassis telemetry, issue 3)."""
    for suite in bmc.cipher_suites:
        if suite not in _CIPHER_SUITES:
            b.fail(line, f"{where}.cipher_suites",
                   f"cipher suite {suite} is not one of {', '.join(map(str, _CIPHER_SUITES))}")
    if bmc.protocol == "redfish" and bmc.transport != "lan":
        b.fail(line, f"{where}.transport", "redfish needs transport: lan")
    if bmc.ca_file and not bmc.tls_verify:
        b.fail(line, f"{where}.ca_file", "ca_file has no effect with tls_verify: false")


def _check_fan_control(config: Config, data: object, b: Builder) -> None:
    fc = config.fan_control
    names = {bmc.name for bmc in config.bmcs}
    if fc.bmc is not None and fc.bmc not in names:
        known = ", ".join(sorted(names)) or "none defined"
        b.fail(_line(data, "fan_control", "bmc"), "fan_control.bmc",
               f"no BMC named {fc.bmc!r} (bmcs: {known})")
    seen: set[str] = set()
    for i, zone in enumerate(fc.zones):
        where = f"fan_control.zones[{i}]"
        if zone.name in seen:
            b.fail(_line(data, "fan_control", "zones", i, "name"), f"{where}.name",
                   f"duplicate zone name {zone.name!r}")
        seen.add(zone.name)
        if zone.min_duty > zone.max_duty:
            b.fail(_line(data, "fan_control", "zones", i, "min_duty"), f"{where}.min_duty",
                   f"min_duty {zone.min_duty} is above max_duty {zone.max_duty}")
        if zone.setpoint_celsius >= zone.ceiling_celsius:
            b.fail(_line(data, "fan_control", "zones", i, "setpoint_celsius"),
                   f"{where}.setpoint_celsius",
                   f"setpoint {zone.setpoint_celsius} must be below the ceiling "
                   f"{zone.ceiling_celsius}")
    if fc.drivers:
        _check_fan_drivers(config, data, b)
    else:
        _check_fan_driver(config, fc.driver, fc.bmc, ("fan_control",), data=data, b=b,
                          has_zones=bool(fc.zones))
        for i, zone in enumerate(fc.zones):
            if zone.driver is not None:
                b.fail(_line(data, "fan_control", "zones", i, "driver"),
                       f"fan_control.zones[{i}].driver",
                       "names one of fan_control.drivers, and there are none (fan_control."
                       "driver drives every zone)")
    for i, zone in enumerate(fc.zones):
        _check_zone_control(config, zone, i, data, b)


def _check_fan_driver(config: Config, driver: str, bmc_name: str | None,
                      keys: tuple[str | int, ...], *, data: object, b: Builder,
                      has_zones: bool) -> None:
    """A driver of the DRIVERS table, and the right kind of BMC for it (fan control, issue 4).
    ``keys`` is where it is written: ``fan_control`` or ``fan_control.drivers[i]``."""
    where = keys[0] if len(keys) == 1 else f"{keys[0]}.{keys[1]}[{keys[2]}]"
    line = _line(data, *keys, "driver")
    if driver not in (fan_drivers.AUTO, fan_drivers.NONE):
        try:
            fan_drivers.spec_for(driver)
        except fan_drivers.UnknownDriver as exc:
            b.fail(line, f"{where}.driver", str(exc))
    if driver == fan_drivers.NONE or not has_zones:
        return
    bmc = next((m for m in config.bmcs if m.name == bmc_name), None)
    wanted = {s.bmc_protocol for s in fan_drivers.candidates(driver)}
    if None not in wanted and bmc is None:
        b.fail(line, f"{where}.bmc", f"driver {driver} needs a BMC: name one of bmcs")
    protocol = None if driver == fan_drivers.AUTO else fan_drivers.spec_for(
        driver).bmc_protocol
    if protocol is not None and bmc is not None and bmc.protocol != protocol:
        b.fail(_line(data, *keys, "bmc"), f"{where}.bmc",
               f"driver {driver} needs a BMC with protocol: {protocol}, and {bmc.name!r} "
               f"speaks {bmc.protocol}")


def _check_fan_drivers(config: Config, data: object, b: Builder) -> None:
    """The several-drivers form: no single driver beside it, unique names, each driver
    checked as the single one is, and every zone naming one of them."""
    fc = config.fan_control
    names = [d.name for d in fc.drivers]
    if fc.driver != fan_drivers.NONE or fc.bmc is not None:
        b.fail(_line(data, "fan_control", "drivers"), "fan_control.drivers",
               "give fan_control.driver/bmc (one driver for every zone) or drivers, not both")
    names_bmc = {m.name for m in config.bmcs}
    for i, d in enumerate(fc.drivers):
        if d.name in names[:i]:
            b.fail(_line(data, "fan_control", "drivers", i), f"fan_control.drivers[{i}].name",
                   f"duplicate driver name {d.name!r} (name each: zones[].driver says which)")
        if d.driver == fan_drivers.NONE:
            b.fail(_line(data, "fan_control", "drivers", i, "driver"),
                   f"fan_control.drivers[{i}].driver", "none is no driver: leave the entry out")
        if d.bmc is not None and d.bmc not in names_bmc:
            b.fail(_line(data, "fan_control", "drivers", i, "bmc"),
                   f"fan_control.drivers[{i}].bmc",
                   f"no BMC named {d.bmc!r} (bmcs: {', '.join(sorted(names_bmc)) or 'none'})")
        _check_fan_driver(config, d.driver, d.bmc, ("fan_control", "drivers", i), data=data,
                          b=b, has_zones=any(zone_driver(fc, z) is d for z in fc.zones))
    for i, zone in enumerate(fc.zones):
        if zone_driver(fc, zone) is None:
            why = (f"no driver named {zone.driver!r}" if zone.driver is not None else
                   "with several drivers every zone names its driver")
            b.fail(_line(data, "fan_control", "zones", i, "driver"),
                   f"fan_control.zones[{i}].driver", f"{why} (drivers: {', '.join(names)})")


def zone_driver(fc: FanControlConfig, zone: ZoneConfig) -> FanDriverConfig | None:
    """The fan_control.drivers entry a zone drives (the only one where it names none)."""
    if zone.driver is None:
        return fc.drivers[0] if len(fc.drivers) == 1 else None
    return next((d for d in fc.drivers if d.name == zone.driver), None)


def _zone_driver_name(fc: FanControlConfig, zone: ZoneConfig) -> str:
    """The DRIVERS name (or auto/none) whose channels the zone's ``fans`` are."""
    if not fc.drivers:
        return fc.driver
    entry = zone_driver(fc, zone)
    return entry.driver if entry is not None else fan_drivers.NONE


def _named_drivers(config: Config) -> Config:
    """Every fan_control.drivers entry named (default: its BMC, else its driver)."""
    fc = config.fan_control
    if not fc.drivers:
        return config
    named = tuple(d if d.name else dataclasses.replace(d, name=d.bmc or d.driver)
                  for d in fc.drivers)
    return dataclasses.replace(config, fan_control=dataclasses.replace(fc, drivers=named))


def per_driver(config: Config) -> tuple[Config, ...]:
    """The config once per fan driver, each in the single-driver form (fan_control.driver,
    bmc and that driver's sections, with its zones only): what one FanController runs.
    The single-driver form gives itself."""
    fc = config.fan_control
    if not fc.drivers:
        return (config,)
    sections = [f.name for f in dataclasses.fields(fan_drivers.DriverSections)]
    out = []
    for d in fc.drivers:
        zones = tuple(z for z in fc.zones if zone_driver(fc, z) is d)
        one = dataclasses.replace(fc, driver=d.driver, bmc=d.bmc, drivers=(), zones=zones,
                                  **{name: getattr(d, name) for name in sections})
        out.append(dataclasses.replace(config, fan_control=one))
    return tuple(out)


def _check_zone_control(config: Config, zone: ZoneConfig, i: int, data: object,
                        b: Builder) -> None:
    """Selectors (parsed by the builder), fans and timing of one zone (fan control, issue 4)."""
    where = f"fan_control.zones[{i}]"
    names = {m.name for m in config.bmcs}
    for j, sel in enumerate(zone.inputs):
        if isinstance(sel, BmcSensorSelector) and sel.bmc not in names:
            b.fail(_line(data, "fan_control", "zones", i, "inputs", j), f"{where}.inputs[{j}]",
                   f"no BMC named {sel.bmc!r} (bmcs: {', '.join(sorted(names)) or 'none'})")
        if isinstance(sel, SshSelector):
            _check_ssh_input(config, zone, sel, b=b, where=f"{where}.inputs[{j}]",
                             line=_line(data, "fan_control", "zones", i, "inputs", j))
    if not zone.inputs:
        b.fail(_line(data, "fan_control", "zones", i, "inputs"), f"{where}.inputs",
               "a zone needs at least one input")
    stale = zone.stale_after_seconds
    if stale is not None and stale < config.interval_seconds:
        b.fail(_line(data, "fan_control", "zones", i, "stale_after_seconds"),
               f"{where}.stale_after_seconds",
               f"{stale} is shorter than interval_seconds ({config.interval_seconds}): "
               "every input would be stale")
    driver = _zone_driver_name(config.fan_control, zone)
    if zone.fans == "all" and driver != fan_drivers.NONE:
        spec = next((s for s in fan_drivers.candidates(driver) if not s.expands_all), None)
        if spec is not None:
            b.fail(_line(data, "fan_control", "zones", i, "fans"), f"{where}.fans",
                   spec.all_hint)


def _with_channels(config: Config, data: object, b: Builder) -> Config:
    """Every zone's ``fans`` parsed once into typed Channels of its driver."""
    fc = config.fan_control
    if fc.driver == fan_drivers.NONE and not fc.drivers:
        return config
    zones = []
    for i, zone in enumerate(fc.zones):
        channels = []
        driver = _zone_driver_name(fc, zone)
        for j, text in enumerate(() if zone.fans == "all" or driver == fan_drivers.NONE
                                 else zone.fans):
            try:
                channels.append(fan_drivers.parse_channel(driver, text))
            except fan_drivers.ChannelError as exc:
                b.fail(_line(data, "fan_control", "zones", i, "fans", j),
                       f"fan_control.zones[{i}].fans[{j}]", str(exc))
        zones.append(dataclasses.replace(zone, channels=tuple(channels)))
    return dataclasses.replace(config, fan_control=dataclasses.replace(fc, zones=tuple(zones)))


def _check_licence(config: Config, data: object, b: Builder) -> None:
    lic = config.licence
    if lic.unlicensed_warning_seconds > lic.unlicensed_critical_seconds:
        b.fail(_line(data, "licence", "unlicensed_warning_seconds"),
               "licence.unlicensed_warning_seconds",
               f"{lic.unlicensed_warning_seconds:g} is above unlicensed_critical_seconds "
               f"{lic.unlicensed_critical_seconds:g}")
    if lic.unlicensed_critical_seconds >= lic.grace_seconds:
        b.fail(_line(data, "licence", "unlicensed_critical_seconds"),
               "licence.unlicensed_critical_seconds",
               f"{lic.unlicensed_critical_seconds:g} must be below grace_seconds "
               f"{lic.grace_seconds:g}: the alert has to come before the GPU is restricted")
    if lic.remediation.restart_gridd and lic.remediation.unlicensed_seconds >= lic.grace_seconds:
        b.fail(_line(data, "licence", "remediation", "unlicensed_seconds"),
               "licence.remediation.unlicensed_seconds",
               f"{lic.remediation.unlicensed_seconds:g} must be below grace_seconds "
               f"{lic.grace_seconds:g}: a restart after the grace period is too late")
    for path, keys in ((lic.gridd_conf, ("gridd_conf",)), (lic.token_dir, ("token_dir",)),
                       (lic.remediation.state_file, ("remediation", "state_file"))):
        if path is not None and not path.startswith("/"):
            b.fail(_line(data, "licence", *keys), "licence." + ".".join(keys),
                   f"{path!r} must be an absolute path")


def _check_notify(config: Config, data: object, b: Builder) -> None:
    """notify: a URL gpuwatchd can POST to, an absolute command and token file path."""
    n = config.notify
    url = n.webhook_url
    if url is not None and not url.startswith(("http://", "https://")):
        b.fail(_line(data, "notify", "webhook_url"), "notify.webhook_url",
               f"{show(url, 80)} must start with http:// or https://")
    if n.command and not n.command[0].startswith("/"):
        b.fail(_line(data, "notify", "command"), "notify.command",
               f"{show(n.command[0], 80)} must be an absolute path (no shell, no $PATH)")
    token = n.webhook_token_file
    if token is not None and url is None:
        b.fail(_line(data, "notify", "webhook_token_file"), "notify.webhook_token_file",
               "has no effect without webhook_url")
    if token is not None and not token.startswith("/"):
        b.fail(_line(data, "notify", "webhook_token_file"), "notify.webhook_token_file",
               f"{token!r} must be an absolute path")


def parse_listen(addr: str) -> tuple[str, int] | None:
    """``'127.0.0.1:10045'`` or ``'[::1]:10045'`` -> (host, port); None if malformed."""
    host, sep, port_text = addr.rpartition(":")
    if (not sep or not port_text.isascii() or not port_text.isdigit() or len(port_text) > 5
            or not 0 < int(port_text) < 65536):
        return None
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if host in ("", "localhost"):
        return (host or "0.0.0.0", int(port_text))  # noqa: S104 - an explicit ':PORT' asks for all
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None
    return (host, int(port_text))


def _check_ssh_input(config: Config, zone: ZoneConfig, sel: SshSelector, *, line: int,
                     where: str, b: Builder) -> None:
    """An ``ssh:<name>`` input names a ``remote_gpus`` entry read often enough for the zone."""
    remote = next((r for r in config.remote_gpus if r.name == sel.remote), None)
    if remote is None:
        known = ", ".join(sorted(r.name for r in config.remote_gpus)) or "none"
        b.fail(line, where, f"no remote_gpus entry named {sel.remote!r} (remote_gpus: {known})")
        return
    interval = remote.interval_seconds or config.interval_seconds
    stale = zone.stale_after_seconds or 1.5 * config.interval_seconds  # control.zones default
    if interval > stale:
        b.fail(line, where, f"remote_gpus {remote.name!r} is read every {interval:g} s, longer "
               f"than the zone's stale limit ({stale:g} s): the zone would be failsafe between "
               "reads (lower interval_seconds there or raise stale_after_seconds)")


def _check_remote_gpus(config: Config, data: object, b: Builder) -> None:
    """``remote_gpus``: unique names, one key source, nothing ssh would take as an option."""
    seen: set[str] = set()
    for i, remote in enumerate(config.remote_gpus):
        where, line = f"remote_gpus[{i}]", _line(data, "remote_gpus", i)
        if remote.name in seen or not remote.name:
            b.fail(line, f"{where}.name", f"duplicate or empty name {remote.name!r}")
        seen.add(remote.name)
        if (remote.key_file is None) == (remote.key_credential is None):
            b.fail(line, f"{where}.key_file", "give key_file or key_credential (exactly one): "
                   "key authentication only, never a password")
        for key in ("host", "user"):
            value = getattr(remote, key)
            if not value or value.startswith("-") or any(c in value for c in "@ \t\n\x00"):
                b.fail(_line(data, "remote_gpus", i, key), f"{where}.{key}",
                       f"{show(value, 80)} is not a host or user name")
        for key in ("key_file", "known_hosts_file"):
            value = getattr(remote, key)
            if value is not None and not value.startswith("/"):
                b.fail(_line(data, "remote_gpus", i, key), f"{where}.{key}",
                       "must be an absolute path")
        interval = remote.interval_seconds or config.interval_seconds
        if remote.timeout_seconds > interval:
            b.fail(_line(data, "remote_gpus", i, "timeout_seconds"), f"{where}.timeout_seconds",
                   f"{remote.timeout_seconds:g} s is longer than the interval ({interval:g} s)")
