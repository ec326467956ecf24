"""Fuzzing every config door: load() returns a Config or raises ConfigError, nothing else.

A seeded mutation corpus over the shipped examples (config/gpuwatchd.yaml, the demo's
gpuwatchd/sim/demo.yaml, the web config) and a hypothesis strategy of YAML fragments, both
bounded in time; then ``gpuwatchd --check-config`` on a handful of nasty files must exit 6
with no traceback. The outside audit of issue 10 found tracebacks on 162 of 3,240 fuzzed
files (RecursionError, TypeError, ValueError, MemoryError on /dev/zero) and a hang on a FIFO.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpuwatchd import config
from gpuwatchd.config import EXIT_CONFIG, Config, ConfigError
from gpuwatchd.exporter import webconfig

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = (ROOT / "config" / "gpuwatchd.yaml").read_text(encoding="utf-8")
DEMO = (ROOT / "gpuwatchd" / "sim" / "demo.yaml").read_text(encoding="utf-8")
# The shipped web config is all comments: uncommented, it is the full example.
_WEB_FILE = (ROOT / "config" / "web-config.yml").read_text(encoding="utf-8")
WEB = re.sub(r"^# ?(?=[a-z ]+[a-z_]+:)", "", _WEB_FILE[_WEB_FILE.index("# tls_server_config:"):],
             flags=re.M).replace("$2y$10$...", "$2y$10$" + "a" * 53)
WEB_SMALL = ("http_server_config:\n  headers:\n    X-Frame-Options: deny\n"
             "basic_auth_users:\n  prometheus: $2y$10$" + "b" * 53 + "\n")
SEED = 20261002
BUDGET_SECONDS = 2.0  # per corpus; the whole file stays under 20 s on the shared machine

# Values that broke a door once (issue 10) or that a YAML parser treats specially.
HOSTILE = [
    ".nan", ".NaN", ".inf", "-.inf", "1.0e+400", "9" * 5000, ":".join(["59"] * 40),
    "0x" + "f" * 70, "[" * 1000, "{" * 50, "]]]", "{[1]: 2}", "? [a, b]\n: 1", "*a", "&a x",
    "&a [*a]", "!!python/object:os.system x", "!!binary =", "!!set [a]", "!!map [a]",
    "!!seq {a: b}", "!!bool maybe", "!!float abc", "!!int x", "!!timestamp x", "2001-13-45",
    "<<: {a: 1}", "'unterminated", '"\\q"', "\t", "\x00", "\x07", "\u2028", "\ufeff", "%TAG",
    "---", "...", "- - - -", "x" * 5000, "?", ":", "|", ">", "@", "`", "null", "~", "[]", "{}",
    "-1", "0", "1e3", "1_000", "0o777", "+12:30", "yes", "NO", "\"a\\r\\nSet-Cookie: x\"",
    "$2y$31$" + "c" * 53, "$2b$99$" + "c" * 53, "TLS10", "TLS11", "gpu:*", "bmc:idrac:",
    "/dev/zero", "../../../../etc/shadow",
]


def _mutate(text: str, rng: random.Random) -> str:
    """One to three random edits: a hostile value at a key, a cut, a paste, a moved line."""
    for _ in range(rng.randint(1, 3)):
        lines = text.split("\n")
        i = rng.randrange(len(lines))
        op = rng.randrange(7)
        if op <= 2 and ":" in lines[i]:  # replace a value (most mutants stay YAML)
            key = lines[i].split(":", 1)[0]
            lines[i] = f"{key}: {rng.choice(HOSTILE)}"
        elif op == 3:
            lines.insert(i, lines[rng.randrange(len(lines))])
        elif op == 4:
            j = rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == 5:
            cut = rng.randrange(len(lines[i]) + 1)
            lines[i] = lines[i][:cut] + rng.choice(HOSTILE) + lines[i][cut:]
        else:
            lines[i] = " " * rng.randint(0, 6) + lines[i].lstrip()
        text = "\n".join(lines)
    return text


def _never_anything_but_config_error(load: Callable[[str], object], text: str) -> None:
    try:
        load(text)
    except ConfigError as exc:
        assert "\n" not in str(exc), f"a multi-line message for {text[:200]!r}"
    except Exception as exc:  # noqa: BLE001 - the assertion is that none arrives here
        pytest.fail(f"{type(exc).__name__}: {exc} for mutant {text[:300]!r}")


@pytest.mark.parametrize(("name", "corpus", "load"), [
    ("gpuwatchd.yaml", EXAMPLE, lambda t: config.loads(t, "fuzz.yaml")),
    ("demo.yaml", DEMO, lambda t: config.loads(t, "fuzz.yaml")),
    ("web-config.yml", WEB, lambda t: webconfig.loads(t, "web.yml")),
    ("small web config", WEB_SMALL, lambda t: webconfig.loads(t, "web.yml")),
])
def test_seeded_mutants_load_or_raise_config_error(
        name: str, corpus: str, load: Callable[[str], object]) -> None:
    load(corpus)  # the unmutated example is valid
    rng = random.Random(f"{SEED}:{name}")
    started, count = time.monotonic(), 0
    while time.monotonic() - started < BUDGET_SECONDS and count < 1500:
        _never_anything_but_config_error(load, _mutate(corpus, rng))
        count += 1
    assert count >= 100, f"only {count} mutants in {BUDGET_SECONDS} s"


_FRAGMENT = st.recursive(
    st.one_of(st.sampled_from(HOSTILE), st.integers(), st.floats(),
              st.text(max_size=20)).map(str),
    lambda inner: st.one_of(st.lists(inner, max_size=4).map(lambda xs: "[" + ", ".join(xs) + "]"),
                            st.dictionaries(st.sampled_from(["a", "name", "zones", "max_duty"]),
                                            inner, max_size=3).map(
                                lambda d: "{" + ", ".join(f"{k}: {v}" for k, v in d.items())
                                + "}")),
    max_leaves=12)
_KEYS = ["interval_seconds", "gpus", "bmcs", "fan_control", "licence", "exporter", "hwmon",
         "status_socket", "tls_server_config", "basic_auth_users", "http_server_config"]


@settings(max_examples=150, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(_KEYS), _FRAGMENT), min_size=1, max_size=4))
def test_generated_documents_load_or_raise_config_error(
        items: list[tuple[str, str]]) -> None:
    text = "\n".join(f"{key}: {value}" for key, value in items)
    _never_anything_but_config_error(lambda t: config.loads(t, "fuzz.yaml"), text)
    _never_anything_but_config_error(lambda t: webconfig.loads(t, "web.yml"), text)


# -- the NaN/inf cases on the safety keys, in the shipped demo config ---------------------

_DEMO_KEYS = {  # key -> the line of demo.yaml it replaces
    "max_duty": "      max_duty: 1.0", "min_duty": "      min_duty: 0.15",
    "setpoint_celsius": "      setpoint_celsius: 75",
    "ceiling_celsius": "      ceiling_celsius: 85",
    "stale_after_seconds": "      max_duty: 1.0", "failsafe_hold_seconds": "      max_duty: 1.0",
    "interval_seconds": "interval_seconds: 1",
}


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
@pytest.mark.parametrize("key", list(_DEMO_KEYS))
def test_non_finite_safety_keys_in_the_demo_config_are_refused(key: str, value: str) -> None:
    """NaN max_duty ran the fans at 0 % in "control"; NaN stale_after_seconds meant no
    failsafe after an NVML hang; NaN ceiling_celsius no failsafe at 86 C; NaN
    interval_seconds spun a core."""
    line = _DEMO_KEYS[key]
    assert line in DEMO
    indent = line[:len(line) - len(line.lstrip())]
    replacement = f"{indent}{key}: {value}"
    if not line.lstrip().startswith(key + ":"):
        replacement = f"{line}\n{replacement}"
    text = DEMO.replace(line, replacement, 1)
    with pytest.raises(ConfigError, match=rf"^fuzz.yaml:\d+: (fan_control\.zones\[0\]\.)?{key}: "
                                          "must be a finite number"):
        config.loads(text, "fuzz.yaml")


# -- the command line on nasty files -------------------------------------------------------

def _nasty_files(tmp: Path) -> list[Path]:
    files = {
        "nan.yaml": DEMO.replace("max_duty: 1.0", "max_duty: .nan"),
        "inf.yaml": DEMO.replace("ceiling_celsius: 85", "ceiling_celsius: .inf"),
        "unhashable.yaml": "? [a, b]\n: 1\n",
        "digits.yaml": "interval_seconds: " + "9" * 5000 + "\n",
        "deep.yaml": "gpus: " + "[" * 1000 + "]" * 1000 + "\n",
        "laughs.yaml": "\n".join(
            ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
            + [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]),
        "crlf-web.yml": "http_server_config:\n  headers:\n    Content-Security-Policy: "
                        "\"x\\r\\nSet-Cookie: a=b\"\n",
        "cost-web.yml": "basic_auth_users:\n  a: $2b$31$" + "d" * 53 + "\n",
    }
    paths = []
    for name, text in files.items():
        path = tmp / name
        path.write_text(text)
        paths.append(path)
    for web in ("crlf-web.yml", "cost-web.yml"):  # web configs are reached through a config
        path = tmp / f"uses-{web}.yaml"
        path.write_text(f"exporter:\n  web_config_file: {tmp / web}\n")
        paths.append(path)
    fifo = tmp / "fifo.yaml"
    os.mkfifo(fifo)
    web_fifo = tmp / "web-fifo.yaml"
    web_fifo.write_text(f"exporter:\n  web_config_file: {fifo}\n")
    return [*paths, fifo, web_fifo, Path("/dev/zero"), tmp]


def test_check_config_on_nasty_files_exits_6_without_a_traceback(tmp_path: Path) -> None:
    files = _nasty_files(tmp_path)
    procs = [(path, subprocess.Popen(  # in parallel: each start costs ~0.5 s
        [sys.executable, "-m", "gpuwatchd", "--check-config", str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)) for path in files]
    for path, proc in procs:
        try:
            _, stderr = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail(f"--check-config {path} hung")
        assert proc.returncode == EXIT_CONFIG, (path, stderr)
        assert "Traceback" not in stderr, (path, stderr)
        assert stderr.count("\n") == 1, (path, stderr)


def test_the_examples_still_load() -> None:
    assert isinstance(config.loads(EXAMPLE), Config)
    assert isinstance(config.loads(DEMO), Config)
    assert webconfig.loads(WEB).auth_required
