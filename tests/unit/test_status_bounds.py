"""The status server under hostile clients and a hostile filesystem (issue 10 item 5), and the
``reload`` command's server side (issue 16)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gpuwatchd.status.client import ProtocolError, query
from gpuwatchd.status.paths import client_socket
from gpuwatchd.status.server import MAX_CONNECTIONS, MAX_REQUEST_DEPTH, nesting_depth
from tests.unit.test_status import raw_exchange, serving, socket_dir

DOC: dict[str, Any] = {"schema": 1, "health": {"status": "healthy"}}


@pytest.fixture
def sockdir() -> Iterator[Path]:
    with socket_dir() as path:
        yield path


def test_idle_connections_are_evicted_so_status_always_answers(sockdir: Path) -> None:
    """Eight idle connections used to make every query answer "busy"."""
    path = sockdir / "s.sock"
    with serving(path, lambda: DOC, timeout_seconds=30.0):
        idle = []
        try:
            for _ in range(3 * MAX_CONNECTIONS):
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.connect(str(path))
                idle.append(sock)
            for _ in range(5):
                assert query(str(path), timeout_seconds=2.0) == DOC
            opened_more = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            idle.append(opened_more)
            opened_more.connect(str(path))
            assert query(str(path), timeout_seconds=2.0) == DOC
        finally:
            for sock in idle:
                sock.close()


def test_an_evicted_idle_client_sees_the_connection_closed(sockdir: Path) -> None:
    path = sockdir / "s.sock"
    with serving(path, lambda: DOC, timeout_seconds=30.0, max_connections=1), \
            socket.socket(socket.AF_UNIX) as first:
        first.connect(str(path))
        assert query(str(path)) == DOC
        first.settimeout(2.0)
        assert first.recv(10) == b""


@pytest.mark.parametrize("payload", [b"[" * 4000, b'{"command": ' + b"[" * 2000 + b"]" * 2000
                                     + b"}", b"{\"a\":" * 600 + b"1" + b"}" * 600])
def test_deep_nesting_is_refused_without_recursion(sockdir: Path, payload: bytes,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    """4,000 ``[`` used to get no reply and a RecursionError in the log."""
    path = sockdir / "s.sock"
    with caplog.at_level(logging.DEBUG), serving(path, lambda: DOC):
        reply = json.loads(raw_exchange(path, payload + b"\n"))
        assert reply == {"schema": 1, "error": "request refused: nested deeper than "
                                               f"{MAX_REQUEST_DEPTH}"}
        assert query(str(path)) == DOC
    assert "RecursionError" not in caplog.text


def test_nesting_depth_ignores_brackets_inside_strings() -> None:
    assert nesting_depth(b'{"command": "status"}') == 1
    assert nesting_depth(b'{"command": "[[[[[[[[[[[[\\"[[["}') == 1
    assert nesting_depth(b"[[[]]]") == 3
    assert nesting_depth(b"[" * 50) == 50


def test_a_removed_socket_directory_is_recreated(sockdir: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    path = sockdir / "run" / "s.sock"
    with serving(path, lambda: DOC) as server:
        assert server.ensure() is False  # in place: nothing to do
        shutil.rmtree(path.parent)
        with caplog.at_level(logging.WARNING):
            assert server.ensure() is True
        assert f"status socket {path} was removed; recreated it" in caplog.text
        assert query(str(path)) == DOC
        assert server.ensure() is False
    assert not path.exists()


def test_a_replaced_socket_file_is_taken_back(sockdir: Path) -> None:
    path = sockdir / "s.sock"
    with serving(path, lambda: DOC) as server:
        path.unlink()
        with socket.socket(socket.AF_UNIX) as squatter:  # dead: nobody listens
            squatter.bind(str(path))
        assert server.ensure() is True
        assert query(str(path)) == DOC


def test_a_socket_that_cannot_be_recreated_is_logged_once(
        sockdir: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = sockdir / "d" / "s.sock"
    with serving(path, lambda: DOC) as server:
        shutil.rmtree(path.parent)
        path.parent.write_text("not a directory")
        with caplog.at_level(logging.WARNING):
            assert server.ensure() is False
            assert server.ensure() is False
        assert caplog.text.count("is gone and cannot be recreated") == 1
        path.parent.unlink()
        assert server.ensure() is True
        assert query(str(path)) == DOC


def test_reload_is_refused_for_a_peer_that_is_not_root(sockdir: Path) -> None:
    """The gpuwatchd group may read the status, not make the daemon reload."""
    path = sockdir / "s.sock"
    calls: list[int] = []

    def reload() -> dict[str, Any]:
        calls.append(1)
        return {"schema": 1, "reload": "applied", "source": "x"}

    with serving(path, lambda: DOC, peer=lambda _conn: 1000) as server:
        server.commands["reload"] = reload
        with pytest.raises(ProtocolError,
                           match="permission denied: reload needs root or the daemon's own"):
            query(str(path), command="reload")
        assert query(str(path)) == DOC  # status is for the group
    with serving(path, lambda: DOC) as server:  # the real SO_PEERCRED: this process's uid
        server.commands["reload"] = reload
        assert query(str(path), command="reload")["reload"] == "applied"
    assert calls == [1]


def test_a_slow_command_still_gets_its_reply_after_the_request_deadline(sockdir: Path) -> None:
    """The exchange deadline bounds the request; a reload may take longer to run."""
    path = sockdir / "s.sock"
    with serving(path, lambda: DOC, timeout_seconds=0.2) as server:
        server.commands["reload"] = slow_doc
        assert query(str(path), timeout_seconds=3.0, command="reload") == DOC


def slow_doc() -> dict[str, Any]:
    time.sleep(0.5)
    return DOC


def _denied(_path: str) -> os.stat_result:
    raise PermissionError(13, "Permission denied")


def _missing(_path: str) -> os.stat_result:
    raise FileNotFoundError(2, "No such file or directory")


def test_an_unenterable_system_socket_directory_is_not_not_running() -> None:
    """A user outside the gpuwatchd group cannot stat /run/gpuwatchd/status.sock (the
    directory is 0750): ask there and be told permission denied, not look under /tmp."""
    system = "/srv/gpuwatchd-test/status.sock"  # as root the default is /run/gpuwatchd's
    assert client_socket(None, {}, system, stat_fn=_denied) == system
    assert client_socket(None, {}, system, stat_fn=_missing) != system
    assert client_socket("/x.sock", {}, system, stat_fn=_denied) == "/x.sock"
