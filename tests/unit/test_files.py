"""The bounded reader (gpuwatchd.config.files): regular files only, a size cap, no hang."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from gpuwatchd.clock import ManualClock
from gpuwatchd.config import BmcConfig
from gpuwatchd.config.files import FileRefused, check_regular, read_regular
from gpuwatchd.errors import ConfigError
from gpuwatchd.links.credentials import Secret
from gpuwatchd.links.redfish import RedfishLink
from tests.fakes.redfish import FakeRedfish
from tests.fakes.redfish_trees import dell_legacy


def test_a_regular_file_is_read_up_to_the_cap(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 100)
    assert read_regular(path, 100) == b"x" * 100
    with pytest.raises(FileRefused) as info:
        read_regular(path, 99)
    assert info.value.problem == "it is larger than 99 bytes"
    assert str(info.value) == f"{path}: it is larger than 99 bytes"
    assert check_regular(path, 100) & 0o777 == path.stat().st_mode & 0o777


def test_proc_files_with_size_zero_are_read(tmp_path: Path) -> None:
    """st_size is not trusted: /proc reports 0 and has content."""
    assert read_regular("/proc/self/status", 1 << 16).startswith(b"Name:")


@pytest.mark.parametrize("kind", ["fifo", "socket", "directory", "device", "missing", "empty",
                                  "nul"])
def test_everything_else_is_refused_by_kind(tmp_path: Path, kind: str) -> None:
    path: str | Path = tmp_path / kind
    sock = socket.socket(socket.AF_UNIX)
    try:
        expected = {"fifo": "it is a FIFO (named pipe), not a regular file",
                    "socket": "it is a socket, not a regular file",
                    "directory": "it is a directory, not a regular file",
                    "device": "it is a character device, not a regular file",
                    "missing": "No such file or directory", "empty": "the file name is empty",
                    "nul": "the file name contains a NUL byte"}[kind]
        if kind == "fifo":
            os.mkfifo(path)
        elif kind == "socket":
            sock.bind(str(path))
        elif kind == "directory":
            path = tmp_path
        elif kind == "device":
            path = "/dev/zero"
        elif kind == "empty":
            path = ""
        elif kind == "nul":
            path = "a\0b"
        for read in (lambda p: read_regular(p, 10), lambda p: check_regular(p, 10)):
            with pytest.raises(FileRefused) as info:
                read(path)
            assert info.value.problem == expected
            assert isinstance(info.value, ConfigError)
    finally:
        sock.close()


def test_a_redfish_ca_file_that_is_a_fifo_is_refused(tmp_path: Path) -> None:
    """OpenSSL (through requests) would block the login thread on it for ever."""
    fifo = tmp_path / "ca.fifo"
    os.mkfifo(fifo)
    cfg = BmcConfig(name="idrac", protocol="redfish", host="192.0.2.20", username="root",
                    password_file="/x", ca_file=str(fifo))  # noqa: S106 - a path
    svc = FakeRedfish(dell_legacy())
    link = RedfishLink(cfg, ManualClock(), client_factory=svc.factory,
                       password=lambda: Secret("calvin"), sleep=lambda s: None)
    with pytest.raises(ConfigError,
                       match=rf"BMC idrac \(192.0.2.20\): ca_file {fifo}: it is a FIFO"):
        link.login()
    assert not svc.clients
