"""What ``gpuwatchctl failsafe`` needs to hand the fans back, recorded before gpuwatchd takes them.

The daemon writes :func:`record_path` in ``fan_control.state_directory`` every time it is
about to take manual control (the first ``ipmitool raw 0x30 0x30 0x01 0x00`` of a connected
driver): the driver, the BMC (name, protocol, transport, host, port, username), the
*source* of the credential (the ``password_file`` path or the ``password_credential`` name,
never the secret), the driver's settings (for a Dell the third-party PCIe response:
``third_party_pcie_response``, ``third_party_pcie_on_exit``) and the zones' fans. It is a
JSON document whose ``config`` member is a config subset that the ordinary config loader
validates again, so failsafe rebuilds exactly the driver the daemon used even when the
config file on disk no longer validates (issue 10: every ExecStopPost= failsafe refused to
run on an invalid file while the daemon, on its old config, held manual control). It is
removed once the daemon handed the fans back on exit.

Every file here (the record and the Dell PCIe marker) is written atomically and durably:
a temporary file in the same directory, fsync, rename, fsync of the directory
(:func:`write_durably`); a crash leaves the old file or the new one, never half of one.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass
from typing import Any

from gpuwatchd.config import Config, ConfigError, loads
from gpuwatchd.config.files import FileRefused, read_regular
from gpuwatchd.control.statefile import remove_durably, safe_name, write_durably

log = logging.getLogger(__name__)

SCHEMA = 1
RECORD_PREFIX = "handback-"
MAX_RECORD_BYTES = 64 * 1024
# BmcConfig fields a hand-back needs; the password itself is never a field (password_file
# and password_credential say where it is).
BMC_FIELDS = ("name", "protocol", "transport", "ipmi_version", "host", "port", "username",
              "password_file", "password_credential", "cipher_suites", "timeout_seconds",
              "redfish_auth", "tls_verify", "ca_file", "ipmi_device", "privilege")


def record_path(state_directory: str, target: str) -> str:
    """The hand-back record of the fans on ``target`` (a BMC name, ``nvml``, ``hwmon``)."""
    return os.path.join(state_directory, f"{RECORD_PREFIX}{safe_name(target)}.json")


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _non_default(value)
    return value


def _non_default(obj: Any, names: tuple[str, ...] | None = None) -> dict[str, Any]:
    """The fields of a config dataclass that differ from their defaults, as config keys."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        if f.metadata.get("internal") or (names is not None and f.name not in names):
            continue
        value = getattr(obj, f.name)
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else object())
        if value != default or f.name == "name":
            out[f.name] = _plain(value)
    return out


def config_subset(config: Config, driver: str) -> dict[str, Any]:
    """The part of ``config`` that builds and releases the fan driver ``driver`` (the
    detected one where the config says ``auto``), as config keys."""
    fc = config.fan_control
    sections = {f.name: _plain(getattr(fc, f.name))
                for f in dataclasses.fields(fc) if f.name in ("dell", "supermicro",
                                                              "redfish_dell")}
    fan_control: dict[str, Any] = {
        "driver": driver, "state_directory": fc.state_directory,
        "zones": [{"name": z.name, "fans": _plain(z.fans)} for z in fc.zones],
        **{k: v for k, v in sections.items() if v}}
    out: dict[str, Any] = {"fan_control": fan_control}
    if fc.bmc is not None:
        fan_control["bmc"] = fc.bmc
        out["bmcs"] = [_non_default(b, BMC_FIELDS) for b in config.bmcs if b.name == fc.bmc]
    gpus = _non_default(config.gpus, ("enabled", "library_path"))
    if gpus:
        out["gpus"] = gpus
    return out


@dataclass(frozen=True)
class Record:
    """One hand-back record as read back: where it is, and the config it holds."""

    path: str
    driver: str
    target: str
    config: Config


def write_record(config: Config, driver: str, target: str) -> str:
    """Record how to hand ``target``'s fans back; returns the path (raises OSError)."""
    doc = {"schema": SCHEMA, "what": "gpuwatchd fan hand-back record (gpuwatchctl failsafe)",
           "driver": driver, "target": target, "pid": os.getpid(),
           "config": config_subset(config, driver)}
    path = record_path(config.fan_control.state_directory, target)
    write_durably(path, json.dumps(doc, indent=1, sort_keys=True) + "\n")
    return path


def read_record(path: str) -> Record:
    """A record as written by :func:`write_record`; ConfigError naming the file otherwise
    (never its content)."""
    try:
        text = read_regular(path, MAX_RECORD_BYTES).decode("utf-8")
        doc = json.loads(text)
    except FileRefused as exc:
        raise ConfigError(f"{path}: cannot read the hand-back record: {exc.problem}") from None
    except (UnicodeDecodeError, ValueError):
        raise ConfigError(f"{path}: not a hand-back record (not JSON)") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA or not isinstance(
            doc.get("config"), dict):
        raise ConfigError(f"{path}: not a hand-back record of schema {SCHEMA}")
    config = loads(json.dumps(doc["config"]), path)
    return Record(path, str(doc.get("driver", "")), str(doc.get("target", "")), config)


def records_in(state_directory: str) -> list[str]:
    """The hand-back records in ``state_directory``, sorted (none if it is unreadable)."""
    try:
        names = os.listdir(state_directory)
    except OSError:
        return []
    return sorted(os.path.join(state_directory, n) for n in names
                  if n.startswith(RECORD_PREFIX) and n.endswith(".json"))


class Keeper:
    """The controller's record: written before it takes manual control, removed once it
    handed the fans back on exit."""

    def __init__(self) -> None:
        self.path: str | None = None

    def write(self, config: Config, driver: str, target: str) -> str:
        """Write the record; "" when done, else why manual control must not be taken."""
        try:
            self.path = write_record(config, driver, target)
        except OSError as exc:
            self.path = None
            return (f"cannot write the hand-back record in {config.fan_control.state_directory} "
                    f"({exc.strerror or exc}): without it gpuwatchctl failsafe could not hand "
                    "the fans back after a crash, so manual control is not taken")
        log.debug("hand-back record %s written", self.path)
        return ""

    def remove(self) -> None:
        """The fans were handed back for good: the record goes."""
        path, self.path = self.path, None
        if path is None:
            return
        try:
            remove_durably(path)
        except OSError as exc:
            log.warning("cannot remove the hand-back record %s (%s)", path, exc.strerror)
