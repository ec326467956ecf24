"""No libnvidia-ml.so.1 at all: the GPU collector runs without GPUs, or fails cleanly.

Each case runs in a new process (tests/fakes/fakenvml/child.py builds the collector the way
the daemon does, with the real pynvml module), because pynvml's library lookup happens once
per process and this test process may already hold the fake library.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

from tests.fakes.fakenvml import collect_in_subprocess

pytestmark = pytest.mark.peer

MISSING = "/nonexistent/gpuwatchd-test/libnvidia-ml.so.1"
GPU_SERIES = ("gpuwatchd_gpu_", "gpuwatchd_gpus")


def _env(**extra: str) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **extra}


def _names(record: dict[str, Any]) -> set[str]:
    return {name for name, _, _ in record["samples"]}


def _value(record: dict[str, Any], name: str) -> float:
    [found] = [v for n, _, v in record["samples"] if n == name]
    return float(found)


def _loader_finds_a_real_driver() -> bool:
    """True where the default lookup finds a libnvidia-ml.so.1 (a node with the driver)."""
    probe = "import ctypes; ctypes.CDLL('libnvidia-ml.so.1')"
    done = subprocess.run([sys.executable, "-c", probe], env=_env(), capture_output=True,
                          timeout=30, check=False)
    return done.returncode == 0


def _assert_runs_without_gpus(records: list[dict[str, Any]], stderr: str) -> None:
    assert "Traceback" not in stderr
    for record in records:
        assert record["ok"], record["error"]
        assert _value(record, "gpuwatchd_nvml_up") == 0
        assert not [n for n in _names(record) if n.startswith(GPU_SERIES)], _names(record)
    assert stderr.count("running without GPUs") == 1, stderr  # said once, not every tick


def _assert_fails_not_installed(records: list[dict[str, Any]], stderr: str) -> None:
    assert "Traceback" not in stderr
    for record in records:
        assert not record["ok"]
        assert record["error"].startswith("NotInstalled: "), record["error"]
        assert record["samples"] == []


def test_library_path_to_a_missing_file_runs_without_gpus_when_auto() -> None:
    records, stderr = collect_in_subprocess({"enabled": "auto", "library_path": MISSING},
                                            _env(LD_LIBRARY_PATH=""), ticks=2)
    _assert_runs_without_gpus(records, stderr)
    assert MISSING in stderr


def test_library_path_to_a_missing_file_fails_with_not_installed_when_true() -> None:
    records, stderr = collect_in_subprocess({"enabled": True, "library_path": MISSING},
                                            _env(LD_LIBRARY_PATH=""), ticks=2)
    _assert_fails_not_installed(records, stderr)
    assert MISSING in records[0]["error"]


def test_default_lookup_on_a_machine_without_the_driver() -> None:
    auto, auto_err = collect_in_subprocess({"enabled": "auto"}, _env(), ticks=2)
    if _loader_finds_a_real_driver():  # a GPU node: the same lookup must find and use it
        assert "Traceback" not in auto_err
        assert all(record["ok"] for record in auto), auto
        if _value(auto[0], "gpuwatchd_nvml_up") == 1:
            assert "gpuwatchd_gpus" in _names(auto[0])
        return
    _assert_runs_without_gpus(auto, auto_err)
    strict, strict_err = collect_in_subprocess({"enabled": True}, _env(), ticks=1)
    _assert_fails_not_installed(strict, strict_err)
    assert "NVML Shared Library Not Found" in strict[0]["error"]
    assert "library_not_found" in strict[0]["error"]
