"""Logging: fields on stderr; the journal handler only when stderr really is the journal."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys

from gpuwatchd.daemon import logs


def test_stderr_format_carries_structured_fields(monkeypatch: object) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs._FieldsFormatter("gpuwatchd: %(levelname)s: %(message)s"))
    log = logging.getLogger("test.logs")
    log.addHandler(handler)
    log.propagate = False
    log.warning("GPU %d lost", 1, extra={"GPU": "GPU-abc", "COLLECTOR": "gpu"})
    assert stream.getvalue() == "gpuwatchd: WARNING: GPU 1 lost COLLECTOR=gpu GPU=GPU-abc\n"


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
    assert "gpuwatchd: INFO: hello GPU=GPU-1" in plain.stderr
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
