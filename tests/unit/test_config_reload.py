"""SIGHUP with a hostile file on disk: the reload is refused and the daemon keeps regulating.

Before issue 10 an unhashable key, a 5,000-digit integer or nesting of 1,000 levels raised
TypeError/ValueError/RecursionError out of the reload, "internal error in the main loop",
exit 1 (and under Restart=on-failure the restart failed on the same file).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import pytest

from gpuwatchd import config
from gpuwatchd.daemon.service import EXIT_OK, Daemon
from gpuwatchd.sim.node import SimNode

DEMO = resources.files("gpuwatchd.sim").joinpath("demo.yaml").read_text(encoding="utf-8")


def _demo_text(state_directory: Path, interval: str = "0.2") -> str:
    text = DEMO.replace("interval_seconds: 1\n", f"interval_seconds: {interval}\n", 1)
    return text.replace("fan_control:\n", f"fan_control:\n  state_directory: {state_directory}\n",
                        1)


def _write(text: str | bytes) -> Callable[[Path], None]:
    def put(path: Path) -> None:
        path.unlink()
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)
    return put


def _fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def _dev_zero(path: Path) -> None:
    path.unlink()
    path.symlink_to("/dev/zero")


HOSTILE: dict[str, Callable[[Path], None]] = {
    "unhashable key": _write("? [a, b]\n: 1\n"),
    "5,000-digit integer": _write("interval_seconds: " + "9" * 5000 + "\n"),
    "nesting of 1,000": _write("a: " + "[" * 1000 + "]" * 1000 + "\n"),
    "billion laughs": _write("\n".join(
        ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
        + [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)])),
    "a bad timestamp": _write("interval_seconds: 2001-13-45\n"),
    "not UTF-8": _write(b"interval_seconds: 2 # caf\xe9\n"),
    "a FIFO": _fifo,
    "/dev/zero": _dev_zero,
}


def _wait(predicate: Callable[[], bool], thread: threading.Thread, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if not thread.is_alive():
            pytest.fail("the daemon stopped")
        if time.monotonic() > deadline:
            pytest.fail("the daemon did not get there in time")
        time.sleep(0.02)


def test_a_hostile_file_on_reload_is_refused_and_the_daemon_keeps_running(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "gpuwatchd.yaml"
    good = _demo_text(tmp_path)
    path.write_text(good)
    cfg = config.load(path)
    daemon = Daemon(cfg, SimNode(gpu_count=1).hardware(), config_path=str(path),
                    reload=lambda: config.load(path))
    daemon._build(cfg)
    control = daemon._control
    assert control is not None
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(daemon.run()), daemon=True)
    caplog.set_level(logging.INFO)
    thread.start()
    try:
        _wait(lambda: daemon._state.ticks >= 2, thread)
        for name, spoil in HOSTILE.items():
            spoil(path)
            ticks = daemon._state.ticks
            daemon.request_reload()
            _wait(lambda t=ticks: not daemon._reload_requested.is_set()  # type: ignore[misc]
                  and daemon._state.ticks >= t + 2, thread)
            assert thread.is_alive(), f"{name}: the daemon stopped"
            assert daemon.config is cfg, name
            assert daemon._control is control and control.regulating(), name
            assert "reload refused, keeping the running configuration" in caplog.text, name
            assert "internal error" not in caplog.text, name
            caplog.clear()
        _write(_demo_text(tmp_path, interval="0.25"))(path)  # a good file is still taken
        daemon.request_reload()
        _wait(lambda: daemon.config.interval_seconds == 0.25, thread)
    finally:
        daemon.request_stop()
        thread.join(10)
    assert result == [EXIT_OK]
