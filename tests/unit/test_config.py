"""Config: every error path names file:line: key, with a hint; good files load typed."""

from __future__ import annotations

import os
import socket
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
    ("a: 1\na: 2", "test.yaml:2: duplicate key 'a' (first on line 1)"),
    ("gpus: {enabled: [", "test.yaml:1:18: YAML syntax error"),
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


# -- issue 10: hostile input --------------------------------------------------------------

_ZONE = "fan_control:\n  zones:\n    - name: z\n      {key}: {value}\n"
_SAFETY_KEYS = [  # (YAML template, key path in the message, line)
    (_ZONE.replace("{key}", "max_duty"), "fan_control.zones[0].max_duty", 4),
    (_ZONE.replace("{key}", "min_duty"), "fan_control.zones[0].min_duty", 4),
    (_ZONE.replace("{key}", "setpoint_celsius"), "fan_control.zones[0].setpoint_celsius", 4),
    (_ZONE.replace("{key}", "ceiling_celsius"), "fan_control.zones[0].ceiling_celsius", 4),
    (_ZONE.replace("{key}", "stale_after_seconds"),
     "fan_control.zones[0].stale_after_seconds", 4),
    (_ZONE.replace("{key}", "failsafe_hold_seconds"),
     "fan_control.zones[0].failsafe_hold_seconds", 4),
    (_ZONE.replace("{key}", "kp"), "fan_control.zones[0].kp", 4),
    (_ZONE.replace("{key}", "slew_up_per_second"), "fan_control.zones[0].slew_up_per_second", 4),
    (_ZONE.replace("{key}", "margin_reference_celsius"),
     "fan_control.zones[0].margin_reference_celsius", 4),
    ("interval_seconds: {value}\n", "interval_seconds", 1),
    ("gpus:\n  deadline_seconds: {value}\n", "gpus.deadline_seconds", 2),
    ("gpus:\n  plausible_max_celsius: {value}\n", "gpus.plausible_max_celsius", 2),
    ("fan_control:\n  write_deadline_seconds: {value}\n", "fan_control.write_deadline_seconds",
     2),
    ("fan_control:\n  reassert_seconds: {value}\n", "fan_control.reassert_seconds", 2),
    ("licence:\n  token_max_age_seconds: {value}\n", "licence.token_max_age_seconds", 2),
]


@pytest.mark.parametrize("value", [".nan", ".NaN", ".inf", "-.inf", "+.Inf", "1.0e+400"])
@pytest.mark.parametrize(("template", "key", "line"), _SAFETY_KEYS,
                         ids=[k for _, k, _ in _SAFETY_KEYS])
def test_non_finite_numbers_are_refused_in_every_float_key(
        template: str, key: str, line: int, value: str) -> None:
    """NaN passes every range check (all comparisons are false) and inf passes an open one:
    `max_duty: .nan` ran the fans at 0 % in "control"; both are refused, naming the key."""
    message = error_of(template.replace("{value}", value))
    assert message.startswith(f"test.yaml:{line}: {key}: must be a finite number"), message


@pytest.mark.parametrize(("text", "expected"), [
    ("interval_seconds: " + "9" * 5000, "test.yaml:1: interval_seconds: integer too long"),
    ("interval_seconds: " + ":".join(["59"] * 3000), "test.yaml:1: interval_seconds: integer "
                                                    "too long"),
    ("bmcs:\n  - {name: a, host: h, port: 99999999999999999999}",
     "test.yaml:2: bmcs[0].port: integer out of bounds"),
    ("bmcs:\n  - {name: a, host: h, port: 0x" + "f" * 40 + "}", "integer out of bounds"),
    ("bmcs:\n  - {name: a, host: h, port: 0x" + "f" * 80 + "}", "port: integer too long"),
    ("a: " + "[" * 1000 + "]" * 1000, "test.yaml:1: nested deeper than 32 levels"),
    ("a:\n" + "".join(" " * i + "- \n" for i in range(1, 600)), "nested deeper than 32"),
    ("a: " + "{b: " * 5000 + "}" * 5000, "nested deeper than 32 levels"),
    ("? [a, b]\n: 1", "test.yaml:1: a mapping key must be a string or number, not a list"),
    ("{[1]: 2}", "test.yaml:1: a mapping key must be a string or number, not a list"),
    ("? {a: 1}\n: 1", "a mapping key must be a string or number, not a mapping"),
    ("gpus:\n  enabled: true\n  enabled: false",
     "test.yaml:3: duplicate key 'enabled' (first on line 2)"),
    ("interval_seconds: 2001-13-45", "test.yaml:1: interval_seconds: not a valid timestamp"),
    ("gpus: {enabled: !!bool maybe}", "test.yaml:1: gpus.enabled: not a valid bool"),
    ("interval_seconds: !!float abc", "test.yaml:1: interval_seconds: not a valid float"),
    ("interval_seconds: !!int [1]", "test.yaml:1: expected an integer, got a list"),
    ("gpus: !!set [a]", "test.yaml:1: expected a mapping, got a list"),
    ("gpus: !!map [a]", "test.yaml:1: expected a mapping, got a list"),
    ("bmcs: !!seq {a: b}", "test.yaml:1: expected a list, got a mapping"),
    ("gpus: !!binary =", "test.yaml:1: gpus: expected a mapping, got a bytes value"),
    ("a: !!python/object:os.system x", "test.yaml:1:4: YAML syntax error: could not determine "
                                       "a constructor for the tag (...)"),
    ("a: &a [*a]", "test.yaml:1: an alias refers to its own anchor"),
    ("<<: {interval_seconds: 1}", "test.yaml:1: merge keys (<<) are not supported"),
    ("bmcs:\n  - {name: " + "n" * 5000 + ", host: h}", "bmcs[0].name: longer than 4096"),
    ("fan_control:\n  zones:\n    - {name: z, inputs: [" + "'gpu:0', " * 2000 + "]}",
     "fan_control.zones[0].inputs: more than 1000 items"),
    ("exporter:\n  listen: ['1.2.3.4:\u00b2']", "exporter.listen[0]: '1.2.3.4:\u00b2' is not HOST"),
    ("exporter:\n  listen: ['1.2.3.4:" + "1" * 4000 + "']", "is not HOST:PORT"),
    ("fan_control: {driver: [1, 2]}", "fan_control.driver: expected a non-empty string, got a"),
    ("fan_control: {driver: " + "x" * 3000 + "}", "fan_control.driver: '" + "x" * 30),
])
def test_hostile_structures_are_config_errors(text: str, expected: str) -> None:
    """5,000-digit integers, deep nesting, unhashable keys, bad tags, huge strings and lists:
    each a ConfigError naming file:line (a ValueError, RecursionError or TypeError before)."""
    message = error_of(text)
    assert expected in message
    assert len(message) < 600, "an error message stays one readable line"


def test_alias_expansion_is_bounded() -> None:
    """A billion laughs: nine levels of ten aliases each expand to 10^9 values: refused fast."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    assert "more than 100000 values (aliases expanded)" in error_of("\n".join(lines))
    few = ("fan_control:\n  zones:\n    - {name: a, inputs: &x [gpu:0, gpu:1]}\n"
           "    - {name: b, inputs: *x}\n")
    assert [s.text for s in config.loads(few).fan_control.zones[1].inputs] == ["gpu:0", "gpu:1"]


def _fifo(tmp_path: Path) -> Path:
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    return fifo


def test_only_regular_files_are_read(tmp_path: Path) -> None:
    """A FIFO (it hung), a device (/dev/zero: MemoryError), a directory: each names the file."""
    fifo = _fifo(tmp_path)
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (2 << 20))
    for path, problem in ((fifo, "a FIFO (named pipe), not a regular file"),
                          (Path("/dev/zero"), "a character device, not a regular file"),
                          (tmp_path, "a directory, not a regular file"),
                          (big, "larger than 1048576 bytes")):
        with pytest.raises(ConfigError) as info:
            config.load(path)
        assert str(info.value) == f"{path}: cannot read the config file: it is {problem}" \
            or str(info.value) == f"{path}: cannot read the config file: {problem}"


def test_a_socket_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        with pytest.raises(ConfigError, match=rf"{path}: cannot read the config file: it is a "
                                              "socket, not a regular file"):
            config.load(path)


def test_check_config_on_a_fifo_does_not_hang(tmp_path: Path) -> None:
    fifo = _fifo(tmp_path)
    res = subprocess.run([sys.executable, "-m", "gpuwatchd", "--check-config", str(fifo)],
                         capture_output=True, text=True, check=False, timeout=20)
    assert res.returncode == EXIT_CONFIG
    assert f"{fifo}: cannot read the config file: it is a FIFO" in res.stderr


@pytest.mark.parametrize("flag", ["--check-config", "--config"])
def test_an_empty_file_name_is_a_usage_error(flag: str) -> None:
    """`--check-config ""` ran the daemon on the default config; now it is exit 2."""
    res = subprocess.run([sys.executable, "-m", "gpuwatchd", flag, ""], capture_output=True,
                         text=True, check=False, timeout=20)
    assert res.returncode == 2, res.stderr
    assert "empty" in res.stderr and "Traceback" not in res.stderr


SECRET = "hunter2-Sup3r"  # noqa: S105 - a made-up password, asserted never to be printed


@pytest.mark.parametrize("content", [
    f"{SECRET}\n",  # a plain password file: a YAML string
    f"root:$6${SECRET}$x:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n",  # /etc/shadow
    f"{SECRET}: {SECRET}\n",  # looks like a mapping
    f"[{SECRET}\n", f"'{SECRET}\n", f"@{SECRET}\n", f"`{SECRET}\n", f"{SECRET}: [\n",
    f"%{SECRET}\n", f"!{SECRET} x\n", f"&{SECRET} x\n", f"*{SECRET}\n", f"a: *{SECRET}\n",
    f"\"{SECRET}\\q\"\n", f"{SECRET}\t: x\n", f"- {SECRET}\n", f"a: b\n{SECRET}\n",
    f"!<{SECRET}> x\n", f"%TAG ! {SECRET}\n--- !{SECRET} x\n", f"{SECRET}\x07\n",
])
def test_errors_never_quote_a_file_that_is_not_a_config(tmp_path: Path, content: str) -> None:
    """`gpuwatchd --check-config /etc/credstore/bmc-password` printed the password."""
    path = tmp_path / "bmc-password"
    path.write_text(content)
    res = subprocess.run([sys.executable, "-m", "gpuwatchd", "--check-config", str(path)],
                         capture_output=True, text=True, check=False, timeout=20)
    assert res.returncode == EXIT_CONFIG
    assert str(path) in res.stderr
    assert SECRET not in res.stderr and "Sup3r" not in res.stderr, res.stderr
    assert "Traceback" not in res.stderr


def test_yaml_errors_give_line_and_column_without_the_snippet() -> None:
    message = error_of("gpus:\n  enabled: [true, 'unclosed\n")
    assert message == ("test.yaml:3:1: YAML syntax error: found unexpected end of stream "
                       "(while scanning a quoted scalar, at line 2, column 19)")


def test_a_web_config_file_that_is_a_secret_is_never_quoted(tmp_path: Path) -> None:
    """`web_config_file: ../../../../etc/shadow` printed shadow's first line (as root)."""
    shadow = tmp_path / "shadow"
    shadow.write_text(f"root:$6${SECRET}$x:19000:0:99999:7:::\n")
    cfg = tmp_path / "gpuwatchd.yaml"
    cfg.write_text(f"exporter:\n  web_config_file: {shadow}\n")
    res = subprocess.run([sys.executable, "-m", "gpuwatchd", "--check-config", str(cfg)],
                         capture_output=True, text=True, check=False, timeout=20)
    assert res.returncode == EXIT_CONFIG
    assert f"{shadow}:1: (top level): not a config file: none of its 1 top-level key(s) " \
           "is known" in res.stderr  # "...:7:::" ends in ': ', so YAML sees a mapping
    assert SECRET not in res.stderr and "Sup3r" not in res.stderr and "19000" not in res.stderr
