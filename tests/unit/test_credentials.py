"""BMC passwords: sources, permission warning, and a wrapper that never shows the secret."""

# ruff: noqa: S105, S106 - made-up test passwords, asserted never to leak
from __future__ import annotations

import logging
import os
import pickle
import threading
from pathlib import Path

import pytest

from gpuwatchd.config import BmcConfig
from gpuwatchd.errors import ConfigError
from gpuwatchd.links.credentials import Secret, describe, load_password

PASSWORD = "hunter2-Very-Secret"


def bmc(**kw: object) -> BmcConfig:
    return BmcConfig(name="idrac", host="192.0.2.10", **kw)  # type: ignore[arg-type]


def test_the_secret_never_shows_in_repr_str_format_or_pickle() -> None:
    secret = Secret(PASSWORD)
    for text in (repr(secret), str(secret), f"{secret}", f"{secret!r:>40}", "%s" % secret,  # noqa: UP031
                 repr([secret]), repr({"password": secret})):
        assert PASSWORD not in text
    with pytest.raises(TypeError):
        pickle.dumps(secret)
    assert secret.reveal() == PASSWORD


def test_password_file_one_trailing_newline_is_dropped(tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "idrac.password"
    path.write_text(f"  {PASSWORD} \n")
    path.chmod(0o600)
    secret = load_password(bmc(password_file=str(path)))
    assert secret is not None and secret.reveal() == f"  {PASSWORD} "
    assert "readable" not in caplog.text


def test_a_group_or_world_readable_file_is_warned_about(tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "idrac.password"
    path.write_text(PASSWORD)
    path.chmod(0o644)
    caplog.set_level(logging.DEBUG)
    assert load_password(bmc(password_file=str(path))) is not None
    assert "readable by group or others (mode 0644)" in caplog.text
    assert "BMC idrac (192.0.2.10)" in caplog.text and PASSWORD not in caplog.text


def test_systemd_credential(tmp_path: Path) -> None:
    (tmp_path / "idrac-password").write_text(PASSWORD)
    secret = load_password(bmc(password_credential="idrac-password"),
                           environ={"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert secret is not None and secret.reveal() == PASSWORD
    with pytest.raises(ConfigError, match=r"\$CREDENTIALS_DIRECTORY .*not set"):
        load_password(bmc(password_credential="idrac-password"), environ={})


@pytest.mark.parametrize(("content", "message"), [
    (None, "cannot read password file"), (b"", "is empty"), (b"\n", "is empty"),
    (b"\xff\xfe", "not UTF-8"), (b"x" * 5000, "larger than")])
def test_bad_password_files_name_the_bmc_and_file_not_the_content(
        tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "pw"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError) as info:
        load_password(bmc(password_file=str(path)))
    assert message in str(info.value)
    assert str(info.value).startswith("BMC idrac (192.0.2.10): ") and str(path) in str(info.value)


def test_no_source_means_no_password_and_descriptions() -> None:
    assert load_password(BmcConfig(name="local", transport="inband")) is None
    assert describe(bmc(port=6230)) == "BMC idrac (192.0.2.10:6230)"
    assert describe(BmcConfig(name="local", transport="inband")) == \
        "BMC local (in-band /dev/ipmi0)"


def _load_within(path: Path, seconds: float = 10) -> BaseException | None:
    """load_password in a thread: the error it raised, or a failure if it hangs."""
    result: list[BaseException | None] = []

    def run() -> None:
        try:
            load_password(bmc(password_file=str(path)))
            result.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the test to assert on
            result.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        with open(path, "wb"):  # a writer unblocks the reader (for a FIFO)
            pass
        pytest.fail(f"load_password hung on {path}")
    return result[0]


def test_a_fifo_password_file_is_refused_not_waited_on(tmp_path: Path) -> None:
    """`gpuwatchctl failsafe` hung on a FIFO password_file."""
    fifo = tmp_path / "pw.fifo"
    os.mkfifo(fifo)
    exc = _load_within(fifo)
    assert isinstance(exc, ConfigError)
    assert str(exc) == (f"BMC idrac (192.0.2.10): password file {fifo} is not a regular file "
                        "(it is a FIFO (named pipe), not a regular file)")


@pytest.mark.parametrize(("path", "kind"), [("/dev/zero", "a character device"),
                                            ("/tmp", "a directory")])
def test_devices_and_directories_are_refused(path: str, kind: str) -> None:
    exc = _load_within(Path(path))
    assert isinstance(exc, ConfigError) and f"it is {kind}" in str(exc)
