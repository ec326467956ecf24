"""gpuwatchctl against a real StatusServer on a unix socket: output and exit codes."""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import os
import pwd
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gpuwatchd import __version__
from gpuwatchd.ctl.common import err
from gpuwatchd.ctl.main import SUBCOMMANDS, main, parser
from gpuwatchd.ctl.status import exit_code_for
from gpuwatchd.status.client import AccessDenied, NotRunning, ProtocolError, QueryError, query
from gpuwatchd.status.document import build_status
from gpuwatchd.status.paths import client_socket
from gpuwatchd.status.table import render
from tests.unit.test_status import (
    NOW,
    make_gpu,
    make_info,
    make_result,
    make_snapshot,
    serving,
    socket_dir,
)


@pytest.fixture
def sockdir() -> Iterator[Path]:
    with socket_dir() as path:
        yield path


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


@contextlib.contextmanager
def fake_peer(path: Path, reply: bytes | None) -> Iterator[None]:
    """Not gpuwatchd: answers one client with ``reply`` (None: accepts and never answers)."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen()
    done = threading.Event()

    def answer_once() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(4096)
            if reply is None:
                done.wait(5.0)
            else:
                conn.sendall(reply)

    thread = threading.Thread(target=answer_once, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        listener.close()
        thread.join(5.0)


# --- status -------------------------------------------------------------------------------


def test_status_json_is_the_document_and_healthy_exits_0(
        sockdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    snap, info = make_snapshot(), make_info()
    path = sockdir / "s.sock"
    with serving(path, lambda: build_status(snap, info, NOW)):
        code, out, err = run(["status", "--json", "--socket", str(path)], capsys)
    assert code == 0
    assert err == ""
    assert json.loads(out) == build_status(snap, info, NOW)


def test_status_table_shows_the_daemon_health_and_both_gpus(
        sockdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = build_status(make_snapshot(), make_info(), NOW)
    path = sockdir / "s.sock"
    with serving(path, lambda: doc):
        code, out, _ = run(["status", "--socket", str(path)], capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("gpuwatchd 0.1.0  running  pid 1234  up 1h01m  interval 2s")
    assert "health  healthy" in lines
    gpu_rows = [line.split() for line in lines if line.lstrip().startswith(("0 ", "1 "))]
    assert [row[3] for row in gpu_rows] == ["54C", "61C"]  # index, Tesla, P40, TEMP
    assert "120W / 250W" in out
    assert "35%" in out
    assert "\x1b[" not in out  # not a terminal: no colour


@pytest.mark.parametrize(("snapshot", "reason"), [
    (make_snapshot(gpus=(make_gpu(0, 54.0), make_gpu(1, 0, up=False, error="GPU is lost"))),
     "GPU 1 (GPU-0001) down: GPU is lost"),
    (make_snapshot(extra=(make_result("chassis_ipmi", ok=False, age=20.0,
                                      error="Transient: no reply"),)),
     "collector chassis_ipmi failing: Transient: no reply"),
    (make_snapshot(age=30.0), "collector gpu stale: last data 30 s old"),
])
def test_degraded_exits_1_and_says_why(sockdir: Path, capsys: pytest.CaptureFixture[str],
                                       snapshot: Any, reason: str) -> None:
    path = sockdir / "s.sock"
    with serving(path, lambda: build_status(snapshot, make_info(), NOW)):
        code, out, _ = run(["status", "--socket", str(path)], capsys)
        json_code, json_out, _ = run(["status", "--json", "--socket", str(path)], capsys)
    assert (code, json_code) == (1, 1)
    assert "health  degraded" in out
    assert f"  - {reason}" in out.splitlines()
    assert json.loads(json_out)["health"]["reasons"] == [reason]


def test_no_socket_exits_3(sockdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = sockdir / "missing.sock"
    code, out, err = run(["status", "--socket", str(path)], capsys)
    assert code == 3
    assert out == ""
    assert err == f"gpuwatchctl: gpuwatchd is not running (no socket at {path})\n"


def test_stale_socket_exits_3(sockdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = sockdir / "s.sock"
    with socket.socket(socket.AF_UNIX) as dead:
        dead.bind(str(path))
    code, _, err = run(["status", "--socket", str(path)], capsys)
    assert code == 3
    assert "gpuwatchd is not running (nothing listens on" in err


def test_socket_from_the_environment(sockdir: Path, capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    path = sockdir / "env.sock"
    monkeypatch.setenv("GPUWATCHD_SOCKET", str(path))
    code, _, err = run(["status"], capsys)
    assert code == 3
    assert str(path) in err


@pytest.mark.parametrize(("reply", "message"), [
    (b"SSH-2.0-OpenSSH_9.2\r\n", "answered something that is not JSON"),
    (b"[1, 2]\n", "answered a JSON list, not an object"),
    (b'{"schema": 1, "error": "busy: too many status clients"}\n',
     "gpuwatchd answered with an error: busy"),
    (b'{"schema": 1}\n', "the answer has no health verdict"),
    (None, "no answer from"),
])
def test_protocol_errors_exit_4(sockdir: Path, capsys: pytest.CaptureFixture[str],
                                reply: bytes | None, message: str) -> None:
    path = sockdir / "s.sock"
    with fake_peer(path, reply):
        code, _, err = run(["status", "--socket", str(path), "--timeout", "0.3"], capsys)
    assert code == 4
    assert message in err


def test_an_unreadable_document_exits_4_without_a_traceback(
        sockdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = sockdir / "s.sock"
    doc = {"schema": 1, "health": {"status": "healthy", "reasons": []}, "daemon": {"pid": 1}}
    with serving(path, lambda: doc):
        code, _, err = run(["status", "--socket", str(path)], capsys)
    assert code == 4
    assert "cannot read the status document (KeyError: 'state'); try --json" in err


def run_as_nobody(argv: list[str]) -> tuple[int, str]:
    """Fork, drop to ``nobody`` and run main() in the child (the interpreter may live under
    /root, so exec'ing it as nobody is not possible); returns its exit code and output."""
    return call_as_nobody(lambda: main(argv))


def call_as_nobody(fn: Callable[[], int]) -> tuple[int, str]:
    """``fn()`` in a forked child running as ``nobody``: its return value and output."""
    nobody = pwd.getpwnam("nobody")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 99
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            sys.stdout = sys.stderr = os.fdopen(write_end, "w")
            code = fn()
            sys.stderr.flush()
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        output = pipe.read()
    _, wait_status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(wait_status), output


def test_permission_denied_exits_4_and_names_the_socket_and_the_group(
        capsys: pytest.CaptureFixture[str]) -> None:
    """As root (CI), the client runs as ``nobody``; otherwise the socket is chmod 000."""
    doc = build_status(make_snapshot(), make_info(), NOW)
    with socket_dir(0o755) as directory, serving(directory / "s.sock", lambda: doc):
        path = directory / "s.sock"
        argv = ["status", "--socket", str(path)]
        if os.geteuid() == 0:
            code, output = run_as_nobody(argv)
        else:
            path.chmod(0)
            code, _, output = run(argv, capsys)
    assert code == 4, output
    assert output == (f"gpuwatchctl: permission denied on {path}: run as root or as a "
                      "member of the gpuwatchd group\n")


def test_a_non_member_is_told_permission_denied_for_the_system_socket() -> None:
    """/run/gpuwatchd is 0750 root:gpuwatchd: a non-member could not see the socket, was sent
    to /tmp/gpuwatchd-<uid>/ and told "not running" (3). Now: 4, naming the group."""
    if os.geteuid() != 0:  # never skipped: the suite runs as root (scripts/test.sh, CI)
        pytest.fail("needs root to drop to nobody: run the suite as root (scripts/test.sh)")
    doc = build_status(make_snapshot(), make_info(), NOW)
    with socket_dir(0o750) as directory, serving(directory / "status.sock", lambda: doc):
        system = str(directory / "status.sock")

        def ctl_status_without_socket_option() -> int:  # what `gpuwatchctl status` does
            try:
                query(client_socket(None, {}, system_socket=system))
            except QueryError as exc:
                err(str(exc))
                return exit_code_for(exc)
            return 0

        code, output = call_as_nobody(ctl_status_without_socket_option)
    assert code == 4, output
    assert output == (f"gpuwatchctl: permission denied on {system}: run as root or as a "
                      "member of the gpuwatchd group\n")


# --- reload -------------------------------------------------------------------------------


@pytest.mark.parametrize(("reply", "expected"), [
    (b'{"schema": 1, "reload": "applied", "source": "/etc/g.yaml"}\n',
     (0, "configuration reloaded from /etc/g.yaml\n", "")),
    (b'{"schema": 1, "reload": "refused", "reason": "/etc/g.yaml:3: bogus: unknown key"}\n',
     (6, "", "gpuwatchctl: reload refused, the daemon keeps its running configuration: "
             "/etc/g.yaml:3: bogus: unknown key\n")),
    (b'{"schema": 1, "error": "permission denied: reload needs root"}\n', (4, "",
     "gpuwatchctl: gpuwatchd answered with an error: permission denied: reload needs root\n")),
    (b'{"schema": 1}\n', (4, "", "the answer says neither applied nor refused")),
])
def test_reload_exit_codes(sockdir: Path, capsys: pytest.CaptureFixture[str], reply: bytes,
                           expected: tuple[int, str, str]) -> None:
    code, stdout, stderr = expected
    path = sockdir / "s.sock"
    with fake_peer(path, reply):
        got, out, errout = run(["reload", "--socket", str(path)], capsys)
    assert (got, out) == (code, stdout)
    assert stderr in errout if stderr else errout == ""


def test_reload_sends_the_reload_command(sockdir: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    path = sockdir / "s.sock"
    with serving(path, lambda: {"schema": 1}) as server:
        server.commands["reload"] = lambda: {"schema": 1, "reload": "applied", "source": "f"}
        assert run(["reload", "--socket", str(path)], capsys)[:2] == (
            0, "configuration reloaded from f\n")


def test_reload_without_a_daemon_exits_3(sockdir: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    code, _, errout = run(["reload", "--socket", str(sockdir / "none.sock")], capsys)
    assert code == 3
    assert "gpuwatchd is not running" in errout


def test_not_running_from_the_console_script_has_no_traceback(sockdir: Path) -> None:
    path = sockdir / "none.sock"
    proc = subprocess.run([sys.executable, "-m", "gpuwatchd.ctl.main", "status", "--socket",
                           str(path)], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 3
    assert proc.stderr == f"gpuwatchctl: gpuwatchd is not running (no socket at {path})\n"


def test_exit_code_mapping() -> None:
    assert exit_code_for(NotRunning("x", "/p")) == 3
    assert exit_code_for(AccessDenied("x", "/p")) == 4
    assert exit_code_for(ProtocolError("x", "/p")) == 4


def test_colour_on_a_terminal_and_not_with_no_color(
        sockdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = build_status(make_snapshot(gpus=(make_gpu(0, 0, up=False, error="lost"),)),
                       make_info(), NOW)
    path = sockdir / "s.sock"
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    outputs = []
    with serving(path, lambda: doc):
        for extra in ([], ["--no-color"]):
            master, slave = os.openpty()
            with os.fdopen(slave, "w") as tty:
                monkeypatch.setattr(sys, "stdout", tty)
                assert main(["status", "--socket", str(path), *extra]) == 1
                tty.flush()
            outputs.append(os.read(master, 65536).decode())
            os.close(master)
    coloured, plain = outputs
    assert "\x1b[1;31mdegraded\x1b[0m" in coloured
    assert "\x1b[" not in plain
    assert "degraded" in plain


def test_render_is_plain_text_without_colour() -> None:
    doc = build_status(make_snapshot(), make_info(), NOW)
    assert "\x1b[" not in render(doc, make_info().started_wall + 10)
    assert "\x1b[32mhealthy\x1b[0m" in render(doc, 0.0, color=True)


# --- version, check-config, usage ---------------------------------------------------------


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["version"], capsys) == (0, f"gpuwatchctl {__version__}\n", "")
    assert run(["--version"], capsys) == (0, f"gpuwatchctl {__version__}\n", "")


@pytest.mark.parametrize(("text", "code", "message"), [
    ("interval_seconds: 2\n", 0, None),
    ("interval_seconds: 99\n", 6, "cfg.yaml:1: interval_seconds: 99 is out of range"),
    ("intervall_seconds: 2\n", 6, "cfg.yaml:1: intervall_seconds"),
    ("gpus: [\n", 6, "YAML syntax error"),
    ("a: \x01\n", 6, "not valid YAML: unacceptable character #x0001"),
    (b"\xff\xfe\x00", 6, "not UTF-8 text"),
])
def test_check_config(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                      text: str | bytes, code: int, message: str | None) -> None:
    path = tmp_path / "cfg.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    got, out, err = run(["check-config", str(path)], capsys)
    assert got == code
    if message is None:
        assert (out, err) == (f"{path}: OK\n", "")
    else:
        assert out == ""
        assert message in err


def test_check_config_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["check-config", str(tmp_path / "nope.yaml")], capsys)
    assert code == 6
    assert "cannot read the config file" in err


@pytest.mark.parametrize("argv", [
    [], ["frobnicate"], ["status", "--bogus"], ["check-config"], ["status", "--timeout", "x"],
    ["status", "--timeout", "0"], ["status", "--timeout", "-1"], ["status", "--timeout", "nan"],
])
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(argv, capsys)
    assert code == 2
    assert out == ""
    assert "usage: gpuwatchctl" in err


# --- the package ----------------------------------------------------------------------------


def test_one_subcommand_table_drives_the_parser_and_the_help(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert list(SUBCOMMANDS) == ["status", "reload", "version", "check-config", "failsafe",
                                 "calibrate", "tune", "dump"]
    subs = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert list(subs.choices) == list(SUBCOMMANDS)
    code, out, _ = run(["--help"], capsys)
    assert code == 0
    for name, sub in SUBCOMMANDS.items():
        assert name in out
        assert sub.help.split()[0] in out
    for name in SUBCOMMANDS:
        assert run([name, "--help"], capsys)[0] == 0


def test_ctl_and_status_have_no_function_level_imports_of_the_project() -> None:
    """Imports of gpuwatchd modules sit at the top of each module (hidden edges hide cycles)."""
    package = Path(__file__).resolve().parents[2] / "gpuwatchd"
    late = []
    for source in [*(package / "ctl").rglob("*.py"), *(package / "status").rglob("*.py")]:
        tree = ast.parse(source.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                late += [f"{source.name}:{inner.lineno}" for inner in ast.walk(node)
                         if isinstance(inner, ast.Import | ast.ImportFrom)]
    assert late == []
