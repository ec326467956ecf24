"""Config: every error path names file:line: key, with a hint; good files load typed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gpuwatchd import config
from gpuwatchd.config import EXIT_CONFIG, ConfigError
from gpuwatchd.config.selectors import GpuQuantity, GpuSelector

ROOT = Path(__file__).resolve().parents[2]


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        config.loads(text, "test.yaml")
    return str(info.value)


def test_documented_example_is_valid() -> None:
    """config/gpuwatchd.yaml, the file shipped as /etc/gpuwatchd/gpuwatchd.yaml, loads."""
    cfg = config.load(ROOT / "config" / "gpuwatchd.yaml")
    assert cfg.interval_seconds == 2
    assert cfg.exporter.listen == ("127.0.0.1:10045",)
    assert cfg.source.endswith("gpuwatchd.yaml")


def test_empty_file_gives_defaults() -> None:
    cfg = config.loads("", "empty.yaml")
    assert cfg.gpus.enabled == "auto"
    assert cfg.fan_control.driver == "none"
    assert cfg.exporter.listen == (config.DEFAULT_LISTEN,)


def test_design_sketch_loads() -> None:
    """The sketch in DESIGN.md is a valid config (with its placeholder port filled)."""
    cfg = config.loads("""
interval_seconds: 2
gpus: {enabled: auto}
bmcs:
  - name: idrac
    protocol: ipmi
    transport: lan
    host: 192.0.2.10
    port: 623
    username: root
    password_file: /etc/gpuwatchd/idrac.password
fan_control:
  driver: auto
  bmc: idrac
  zones:
    - name: gpu
      fans: all
      inputs: ["gpu:*"]
      setpoint_celsius: 75
      ceiling_celsius: 85
      min_duty: 0.15
      max_duty: 1.0
licence: {enabled: auto}
exporter: {listen: ["127.0.0.1:10045"], web_config_file: null}
""")
    assert cfg.bmcs[0].host == "192.0.2.10"
    assert cfg.fan_control.zones[0].inputs == (GpuSelector(GpuQuantity.TEMPERATURE, None),)


@pytest.mark.parametrize(("text", "expected"), [
    ("intervall_seconds: 2", "test.yaml:1: intervall_seconds: unknown key (did you mean "
                             "'interval_seconds'?)"),
    ("gpus:\n  enabled: auto\n  xid_event: true",
     "test.yaml:3: gpus.xid_event: unknown key (did you mean 'xid_events'?)"),
    ("interval_seconds: 0.01", "test.yaml:1: interval_seconds: 0.01 is out of range [0.2, 60]"),
    ("interval_seconds: fast", "test.yaml:1: interval_seconds: expected a number, got string"),
    ("gpus: {enabled: yes-please}", "gpus.enabled: expected 'auto' or true or false"),
    ("gpus: [1, 2]", "test.yaml:1: gpus: expected a mapping, got a list"),
    ("fan_control: {driver: del}", "fan_control.driver: 'del' is not one of auto, dell, "
                                   "supermicro, redfish-dell, nvml, hwmon, none "
                                   "(did you mean 'dell'?)"),
    ("bmcs:\n  - host: 10.0.0.1", "test.yaml:2: bmcs[0].name: required key is missing"),
    ("bmcs:\n  - name: a\n    transport: lan", "bmcs[0].host: required for transport: lan"),
    ("bmcs:\n  - {name: a, host: h}\n  - {name: a, host: h}",
     "test.yaml:3: bmcs[1].name: duplicate BMC name 'a'"),
    ("bmcs:\n  - {name: a, host: h, port: 70000}",
     "bmcs[0].port: 70000 is out of range [1, 65535]"),
    ("bmcs:\n  - {name: a, host: h, password_file: /x, password_credential: y}",
     "give password_file or password_credential, not both"),
    ("fan_control:\n  bmc: idrac", "test.yaml:2: fan_control.bmc: no BMC named 'idrac'"),
    ("fan_control:\n  zones:\n    - {name: z, min_duty: 0.9, max_duty: 0.5}",
     "fan_control.zones[0].min_duty: min_duty 0.9 is above max_duty 0.5"),
    ("fan_control:\n  zones:\n    - {name: z, setpoint_celsius: 90, ceiling_celsius: 85}",
     "setpoint 90.0 must be below the ceiling 85.0"),
    ("fan_control:\n  zones:\n    - {name: z, min_duty: 1.5}",
     "fan_control.zones[0].min_duty: 1.5 is out of range [0, 1]"),
    ("exporter:\n  listen: ['0.0.0.0']", "test.yaml:2: exporter.listen[0]: '0.0.0.0' is not "
                                         "HOST:PORT"),
    ("exporter:\n  telemetry_path: metrics", "exporter.telemetry_path: must start with '/'"),
    ("a: 1\na: 2", "test.yaml: line 2: duplicate key 'a'"),
    ("gpus: {enabled: [", "test.yaml:1: YAML syntax error"),
    ("source: x", "source: unknown key"),
    ("- 1\n- 2", "(top level): expected a mapping, got a list"),
])
def test_errors_name_file_line_key(text: str, expected: str) -> None:
    assert expected in error_of(text)


def test_missing_file_is_named() -> None:
    with pytest.raises(ConfigError, match=r"/nonexistent/x.yaml: cannot read the config file"):
        config.load("/nonexistent/x.yaml")


def test_unreadable_bytes_are_config_errors(tmp_path: Path) -> None:
    """Non-UTF-8 bytes and control characters are ConfigErrors naming the file, not tracebacks."""
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"interval_seconds: 2 # caf\xe9\n")
    with pytest.raises(ConfigError, match=rf"{latin}: not UTF-8 text"):
        config.load(latin)
    control = tmp_path / "control.yaml"
    control.write_bytes(b"interval_seconds: 2\x07\n")
    with pytest.raises(ConfigError, match=rf"{control}: not valid YAML"):
        config.load(control)


def test_listen_forms() -> None:
    assert config.parse_listen("127.0.0.1:10045") == ("127.0.0.1", 10045)
    assert config.parse_listen("[::1]:9") == ("::1", 9)
    assert config.parse_listen(":10045") == ("0.0.0.0", 10045)
    assert config.parse_listen("host.example:1") is None
    assert config.parse_listen("127.0.0.1:0") is None


def test_check_config_exit_codes(tmp_path: Path) -> None:
    """`gpuwatchd --check-config` exits 0 on a good file, 6 with a one-line error otherwise."""
    good = subprocess.run([sys.executable, "-m", "gpuwatchd", "--check-config",
                           str(ROOT / "config" / "gpuwatchd.yaml")],
                          capture_output=True, text=True, check=False)
    assert good.returncode == 0, good.stderr
    assert "OK" in good.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("gpus:\n  enabld: true\n")
    res = subprocess.run([sys.executable, "-m", "gpuwatchd", "--check-config",
                          str(bad)], capture_output=True, text=True, check=False)
    assert res.returncode == EXIT_CONFIG
    assert f"{bad}:2: gpus.enabld: unknown key (did you mean 'enabled'?)" in res.stderr
    assert "Traceback" not in res.stderr
