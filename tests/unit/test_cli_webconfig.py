"""A bad ``exporter.web_config_file`` is a configuration error: exit 6, file:line, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpuwatchd import cli
from gpuwatchd.config import EXIT_CONFIG
from tests.procs import free_port


def _config(tmp_path: Path, web_text: str) -> Path:
    (tmp_path / "web.yml").write_text(web_text)
    path = tmp_path / "gpuwatchd.yaml"
    path.write_text("gpus: {enabled: false}\nlicence: {enabled: false}\n"
                    f"exporter:\n  listen: ['127.0.0.1:{free_port()}']\n"
                    f"  web_config_file: {tmp_path}/web.yml\n"
                    f"status_socket: {tmp_path}/status.sock\n")
    return path


def test_check_config_validates_the_web_config(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """--check-config follows web_config_file: a misspelt key there fails with its line."""
    path = _config(tmp_path, "basic_auth_users: {}\nhttp_server_config:\n  header: {}\n")
    assert cli.run(["--check-config", str(path)]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert f"{tmp_path}/web.yml:3: http_server_config.header: unknown key" in err
    assert "Traceback" not in err


def test_check_config_accepts_the_shipped_web_config(tmp_path: Path) -> None:
    """The commented config/web-config.yml (plain HTTP) passes."""
    shipped = Path(__file__).resolve().parents[2] / "config" / "web-config.yml"
    path = _config(tmp_path, shipped.read_text())
    assert cli.run(["--check-config", str(path)]) == 0


def test_daemon_refuses_to_start_with_a_bad_web_config(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """A missing TLS key stops the daemon before it binds anything, with exit 6."""
    path = _config(tmp_path, f"tls_server_config:\n  cert_file: {tmp_path}/none.crt\n"
                             f"  key_file: {tmp_path}/none.key\n")
    assert cli.run(["--config", str(path)]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "web.yml: tls_server_config: cannot load cert_file" in err
    assert "Traceback" not in err
    assert not (tmp_path / "status.sock").exists()
