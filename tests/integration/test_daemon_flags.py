"""The exporter-toolkit / Prometheus flag set on the daemon's command line (issue 16)."""

from __future__ import annotations

import json
import re
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.integration.test_daemon_process import BASE, start
from tests.procs import gpuwatchd_cmd, require, stop, wait_until


def test_web_and_log_flags_override_the_config(tmp_path: Path) -> None:
    """--web.config.file, --web.telemetry-path, --log.format json, --log.level warn."""
    cfg = tmp_path / "g.yaml"
    cfg.write_text(BASE.format(interval=0.5))
    web = tmp_path / "web.yml"
    web.write_text("http_server_config:\n  headers:\n    X-Frame-Options: deny\n")
    proc, port = start(tmp_path, "--config", str(cfg), "--web.config.file", str(web),
                       "--web.telemetry-path", "/m", "--log.format", "json",
                       "--log.level", "warn")
    try:
        def fetch() -> tuple[str, str]:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/m", timeout=5) as resp:
                return resp.headers.get("X-Frame-Options", ""), resp.read().decode()

        header, body = wait_until(fetch, 30, "the /m telemetry path")
        assert header == "deny" and "gpuwatchd_build_info" in body
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert missing.value.code == 404
    finally:
        stop(proc)
    _, err = proc.communicate(timeout=10)
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert all(doc["level"] in ("warn", "error") for doc in lines), err  # warn: no info lines


@pytest.mark.parametrize("args", [
    ("--web.listen-address", "no-port"),
    ("--web.telemetry-path", "metrics"),
    ("--log.level", "loud"),
    ("--log.format", "xml"),
])
def test_malformed_flags_are_usage_errors(args: tuple[str, str]) -> None:
    proc = subprocess.run(gpuwatchd_cmd("--demo", *args), capture_output=True, text=True,
                          timeout=30, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and args[0] in proc.stderr


def test_curl_compressed_gets_http11_gzip_and_keeps_the_connection(tmp_path: Path) -> None:
    """``curl --compressed -sD-`` twice on one connection: HTTP/1.1, gzip, one connect."""
    curl = require("curl", "curl")
    cfg = tmp_path / "g.yaml"
    cfg.write_text(BASE.format(interval=0.5))
    proc, port = start(tmp_path, "--config", str(cfg))
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        wait_until(lambda: urllib.request.urlopen(url, timeout=5).status == 200, 30,
                   "the daemon's /metrics")
        done = subprocess.run([curl, "--compressed", "-sD-", "-o", "/dev/null", url,
                               "-o", "/dev/null", url, "-w", "%{num_connects}\\n"],
                              capture_output=True, text=True, timeout=30, check=True)
    finally:
        stop(proc)
    heads = [h for h in done.stdout.split("HTTP/")[1:]]
    assert len(heads) == 2 and all(h.startswith("1.1 200") for h in heads), done.stdout
    assert all("Content-Encoding: gzip" in h for h in heads), done.stdout
    connects = [int(x) for x in re.findall(r"(?m)^(\d+)$", done.stdout)]
    assert connects == [1, 0], f"the second request opened a connection: {done.stdout}"
