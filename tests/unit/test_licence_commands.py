"""The real command runner: no shell, C locale, hard timeout, errors mapped."""

from __future__ import annotations

import sys

import pytest

from gpuwatchd.errors import DeadlineExceeded, NotInstalled
from gpuwatchd.licence.commands import run_command


def test_runs_without_a_shell_in_the_c_locale() -> None:
    result = run_command((sys.executable, "-c", "import os; print(os.environ['LC_ALL'], '$HOME')"),
                         10.0)
    assert (result.returncode, result.stdout) == (0, "C $HOME\n")


def test_exit_status_and_stderr() -> None:
    result = run_command((sys.executable, "-c", "import sys; sys.exit('no')"), 10.0)
    assert (result.returncode, result.stderr) == (1, "no\n")


def test_timeout_and_missing_binary() -> None:
    with pytest.raises(DeadlineExceeded, match=r"no answer within 0\.2 s"):
        run_command((sys.executable, "-c", "import time; time.sleep(10)"), 0.2)
    with pytest.raises(NotInstalled, match="not installed"):
        run_command(("/nonexistent/nvidia-smi", "-q", "-x"), 1.0)
