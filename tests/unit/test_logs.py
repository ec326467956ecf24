"""Logging: logfmt or JSON with fields on stderr; the journal handler only when stderr really
is the journal; --log.level and --log.format on the command line."""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import re
import subprocess
import sys

import pytest

from gpuwatchd.daemon import logs


def _emit(formatter: logging.Formatter) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    log = logging.getLogger("test.logs")
    log.handlers = [handler]
    log.propagate = False
    log.warning("GPU %d lost", 1, extra={"GPU": "GPU-abc", "COLLECTOR": "gpu"})
    return stream.getvalue()


def test_logfmt_carries_structured_fields() -> None:
    line = _emit(logs.LogfmtFormatter())
    assert re.fullmatch(r'ts=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=warn '
                        r'msg="GPU 1 lost" COLLECTOR=gpu GPU=GPU-abc\n', line), line


def test_json_carries_structured_fields() -> None:
    doc = json.loads(_emit(logs.JsonFormatter()))
    assert doc["level"] == "warn" and doc["msg"] == "GPU 1 lost"
    assert doc["GPU"] == "GPU-abc" and doc["COLLECTOR"] == "gpu" and doc["ts"].endswith("Z")


def test_log_level_accepts_the_prometheus_spelling() -> None:
    assert logs.level("warn") == "warning" and logs.level("DEBUG") == "debug"
    with pytest.raises(argparse.ArgumentTypeError):
        logs.level("verbose")


CHILD = """
import logging, sys
from gpuwatchd.daemon import logs
logs.setup("info")
print(type(logging.getLogger().handlers[0]).__name__, flush=True)
logging.getLogger("x").info("hello", extra={"GPU": "GPU-1"})
"""


def run_child(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True,
                          text=True, check=False, timeout=30)


def test_journal_only_when_journal_stream_matches_stderr() -> None:
    base = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    plain = run_child(base)
    assert plain.stdout.strip() == "StreamHandler"
    assert 'level=info msg=hello GPU=GPU-1' in plain.stderr
    mismatched = run_child({**base, "JOURNAL_STREAM": "1:1"})
    assert mismatched.stdout.strip() == "StreamHandler"


def test_journal_handler_when_stderr_is_the_journal() -> None:
    """systemd sets JOURNAL_STREAM to stderr's device:inode; then logs go to the journal."""
    read_fd, write_fd = os.pipe()
    st = os.fstat(write_fd)
    env = {**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
    proc = subprocess.Popen([sys.executable, "-c", CHILD], env=env, stdout=subprocess.PIPE,
                            stderr=write_fd, text=True)
    os.close(write_fd)
    out, _ = proc.communicate(timeout=30)
    with os.fdopen(read_fd) as err:
        stderr = err.read()
    assert out.strip() == "JournalHandler", "install systemd-python (pip) / python3-systemd"
    assert "hello" not in stderr
