"""A bad ``exporter.web_config_file`` is a configuration error: exit 6, file:line, no traceback.

Runs this checkout's ``gpuwatchd`` as a child process (its logging set-up stays out of pytest).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from gpuwatchd.config import EXIT_CONFIG
from tests.procs import ROOT, free_port, gpuwatchd_cmd


def _config(tmp_path: Path, web_text: str) -> Path:
    (tmp_path / "web.yml").write_text(web_text)
    path = tmp_path / "gpuwatchd.yaml"
    path.write_text("gpus: {enabled: false}\nlicence: {enabled: false}\n"
                    f"exporter:\n  listen: ['127.0.0.1:{free_port()}']\n"
                    f"  web_config_file: {tmp_path}/web.yml\n"
                    f"status_socket: {tmp_path}/status.sock\n")
    return path


def _gpuwatchd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(gpuwatchd_cmd(*args), capture_output=True, text=True, timeout=60,
                          check=False)


def test_check_config_validates_the_web_config(tmp_path: Path) -> None:
    """--check-config follows web_config_file: a misspelt key there fails with its line."""
    path = _config(tmp_path, "basic_auth_users: {}\nhttp_server_config:\n  header: {}\n")
    done = _gpuwatchd("--check-config", str(path))
    assert done.returncode == EXIT_CONFIG
    assert f"{tmp_path}/web.yml:3: http_server_config.header: unknown key" in done.stderr
    assert "Traceback" not in done.stderr


def test_check_config_accepts_the_shipped_web_config(tmp_path: Path) -> None:
    """The commented config/web-config.yml (plain HTTP) passes."""
    path = _config(tmp_path, (ROOT / "config" / "web-config.yml").read_text())
    done = _gpuwatchd("--check-config", str(path))
    assert done.returncode == 0, done.stderr


def test_daemon_refuses_to_start_with_a_bad_web_config(tmp_path: Path) -> None:
    """A missing TLS key stops the daemon before it binds anything, with exit 6."""
    path = _config(tmp_path, f"tls_server_config:\n  cert_file: {tmp_path}/none.crt\n"
                             f"  key_file: {tmp_path}/none.key\n")
    done = _gpuwatchd("--config", str(path))
    assert done.returncode == EXIT_CONFIG
    assert "web.yml: tls_server_config: cannot load cert_file" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "status.sock").exists()
