"""gridd.conf lint and the ClientConfigToken folder, over real temporary directories."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

import pytest

from gpuwatchd.licence import griddconf, tokens
from gpuwatchd.licence.kinds import FeatureCode, VirtualizationMode

VGPU, PASS = VirtualizationMode.VGPU, VirtualizationMode.PASSTHROUGH
NOW = 1_750_000_000.0


def conf_of(text: str) -> griddconf.GriddConf:
    return griddconf.parse(text, "/etc/nvidia/gridd.conf")


def kinds(problems: list[griddconf.Problem]) -> list[str]:
    return [p.kind for p in problems]


def test_parse_keys_comments_and_lines() -> None:
    conf = conf_of("# comment\nServerAddress=\nfeaturetype = 1\n  EnableUI=FALSE\nFoo=bar\n")
    assert conf.feature_type == 1
    assert conf.get("ServerAddress") == ""
    assert conf.lines["FeatureType"] == 3
    assert conf.unknown == (("Foo", 5),)


# gridd.conf text, mode, offered feature codes, licensed feature, tokens, expected kinds
LINT_CASES = [
    ("FeatureType=1\n", VGPU, {FeatureCode.VGPU}, FeatureCode.VGPU, 1, []),
    # FeatureType=4 in a vGPU guest: by vGPU series in test_licence_realworld.py
    ("FeatureType=0\n", VGPU, set(), None, 1, ["feature_type_mismatch"]),
    ("FeatureType=1\n", PASS, {FeatureCode.COMPUTE}, None, 1, ["feature_type_mismatch"]),
    ("FeatureType=4\n", PASS, {FeatureCode.NVIDIA_RTX}, None, 1, ["feature_type_mismatch"]),
    ("FeatureType=2\n", PASS, {FeatureCode.NVIDIA_RTX, FeatureCode.COMPUTE},
     FeatureCode.COMPUTE, 1, ["feature_type_mismatch"]),
    ("FeatureType=4\n", PASS, {FeatureCode.COMPUTE}, FeatureCode.COMPUTE, 1, []),
    ("FeatureType=vws\n", VGPU, set(), None, 1, ["feature_type_invalid"]),
    ("FeatureType=9\n", VGPU, set(), None, 1, ["feature_type_invalid"]),
    ("FeatureType=1\n", VGPU, set(), None, 0, ["no_server"]),
    ("FeatureType=1\nServerAddress=192.0.2.7\n", VGPU, set(), None, 0, []),
    ("ServerAddres=192.0.2.7\n", VGPU, set(), None, 1, ["typo_key"]),
    ("IgnoreSP=TRUE\nSomethingElse=1\n", PASS, set(), None, 1, []),
    ("ServerPort=http\nLicenseInterval=5\nEnableUI=maybe\n", VGPU, set(), None, 1,
     ["bad_value", "bad_value", "bad_value"]),
]


@pytest.mark.parametrize("case", LINT_CASES)
def test_lint(case: tuple[str, VirtualizationMode, set[FeatureCode], FeatureCode | None, int,
                          list[str]]) -> None:
    text, mode, offered, licensed, tokens_n, want = case
    assert kinds(griddconf.lint(conf_of(text), mode, offered, licensed, tokens_n)) == want


def test_lint_messages_name_file_and_line() -> None:
    problems = griddconf.lint(conf_of("\n\nFeatureType=4\n"), VGPU, set(), None, 1,
                              vgpu_type="NVIDIA A40-8Q")
    assert problems[0].message.startswith("/etc/nvidia/gridd.conf:3: FeatureType=4")


def test_missing_and_unreadable_conf(tmp_path: Path) -> None:
    missing = griddconf.read(str(tmp_path / "gridd.conf"))
    assert kinds(griddconf.lint(missing, VGPU, set(), None, 1)) == ["missing"]
    folder = tmp_path / "gridd.conf.d"
    folder.mkdir()
    unreadable = griddconf.read(str(folder))  # a directory: IsADirectoryError, as root too
    assert kinds(griddconf.lint(unreadable, VGPU, set(), None, 1)) == ["unreadable"]
    real = tmp_path / "ok.conf"
    real.write_text("FeatureType=1\n")
    read = griddconf.read(str(real))
    assert read.feature_type == 1 and read.fingerprint is not None


def make_token(folder: Path, name: str = "client_configuration_token_01-01-2025-10-00-00.tok",
               body: bytes = b"secret-jws", mode: int = 0o744, mtime: float = NOW - 3600) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_bytes(body)
    path.chmod(mode)
    os.utime(path, (mtime, mtime))
    return path


def token_kinds(report: tokens.TokenReport) -> list[str]:
    return [p.kind for p in report.problems]


def test_one_good_token(tmp_path: Path) -> None:
    folder = tmp_path / "ClientConfigToken"
    make_token(folder)
    (folder / "README").write_text("not a token")
    report = tokens.check(str(folder), NOW)
    assert token_kinds(report) == []
    assert report.summary() == "1 token (0744)"
    assert report.newest_mtime == NOW - 3600
    assert report.usable


def test_token_contents_are_never_in_the_report(tmp_path: Path) -> None:
    folder = tmp_path / "t"
    make_token(folder, body=b"TOPSECRET", mode=0o666)
    make_token(folder, name="b.tok", body=b"TOPSECRET2")
    report = tokens.check(str(folder), NOW)
    assert "TOPSECRET" not in repr(report)


@pytest.mark.parametrize(("setup", "want"), [
    ("missing", ["missing"]),
    ("empty", ["empty"]),
    ("several", ["several"]),
    ("zero", ["zero_length"]),
    ("world_writable", ["permissions"]),
    ("owner_unreadable", ["permissions"]),
    ("folder_world_writable", ["permissions"]),
    ("future", ["future_mtime"]),
    ("old", ["old"]),
    ("broken_link", ["unreadable"]),
])
def test_token_problems(tmp_path: Path, setup: str, want: list[str]) -> None:
    folder = tmp_path / "ClientConfigToken"
    max_age = None
    if setup != "missing":
        folder.mkdir()
    if setup == "several":
        make_token(folder)
        make_token(folder, name="client_configuration_token_02.tok")
    elif setup == "zero":
        make_token(folder, body=b"")
    elif setup == "world_writable":
        make_token(folder, mode=0o666)
    elif setup == "owner_unreadable":
        make_token(folder, mode=0o044)
    elif setup == "folder_world_writable":
        make_token(folder)
        folder.chmod(0o777)
    elif setup == "future":
        make_token(folder, mtime=NOW + 3600)
    elif setup == "old":
        make_token(folder, mtime=NOW - 40 * 86400)
        max_age = 30 * 86400.0
    elif setup == "broken_link":
        (folder / "gone.tok").symlink_to(tmp_path / "nowhere.tok")
    report = tokens.check(str(folder), NOW, max_age)
    assert token_kinds(report) == want
    assert all(p.message for p in report.problems)


def test_unreadable_folder_and_file() -> None:
    """As root, permissions never deny a read: an injected listdir/stat plays the kernel."""

    def denied(path: str) -> list[str]:
        raise PermissionError(errno.EACCES, "Permission denied", path)

    report = tokens.check("/etc/nvidia/ClientConfigToken", NOW, listdir=denied)
    assert token_kinds(report) == ["unreadable"]
    assert "Permission denied" in report.problems[0].message
    assert "uid" in report.problems[0].message

    def stat_fn(path: str) -> os.stat_result:
        if path.endswith(".tok"):
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return os.stat("/")

    report = tokens.check("/x", NOW, listdir=lambda _: ["a.tok"], stat_fn=stat_fn)
    assert token_kinds(report) == ["unreadable"]
    assert report.summary() == "no token"


def test_a_fifo_or_device_as_gridd_conf_never_blocks_the_collector(tmp_path: Path) -> None:
    """gridd.conf, the remediation history and the fan calibration are read bounded and
    regular-only (a FIFO would block open() until a writer came; /dev/zero never ends)."""
    fifo = tmp_path / "gridd.conf"
    os.mkfifo(fifo)
    start = time.monotonic()
    conf = griddconf.read(str(fifo))
    assert conf.exists and "FIFO" in conf.error
    assert "not a regular file" in griddconf.read("/dev/zero").error
    assert not griddconf.read(str(tmp_path / "missing.conf")).exists
    assert time.monotonic() - start < 1.0
