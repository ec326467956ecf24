"""A real Prometheus scrapes `gpuwatchd --demo` on 127.0.0.1; gpuwatchctl reads the same daemon."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

from tests.procs import free_port, gpuwatchd_cmd, require, stop, wait_until


def _query(port: int, promql: str) -> list[dict[str, object]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as resp:
        doc = json.loads(resp.read())
    assert doc["status"] == "success", doc
    return list(doc["data"]["result"])


def test_prometheus_scrapes_both_demo_gpus(tmp_path: Path) -> None:
    prometheus = require("prometheus", "prometheus")
    promtool = require("promtool", "prometheus")
    port, prom_port = free_port(), free_port()
    sock = tmp_path / "status.sock"
    demo = subprocess.Popen(
        gpuwatchd_cmd("--demo", "--web.listen-address", f"127.0.0.1:{port}",
                      "--status-socket", str(sock)),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: gpuwatchd\n    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n")
    prom = subprocess.Popen(
        [prometheus, f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{prom_port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # Prometheus throttles target discovery to 5 s: the first sample lands after about 6 s
        # (measured 6.1 s here with scrape_interval 1s, test-infra.md section 7).
        series = wait_until(
            lambda: r if len(r := _query(prom_port, 'gpuwatchd_gpu_temperature_celsius'
                                                    '{sensor="gpu"}')) == 2 else None,
            40, "both demo GPUs' temperatures in Prometheus", interval=0.5)
        assert sorted(s["metric"]["gpu"] for s in series) == ["0", "1"]  # type: ignore[index]
        for s in series:
            assert 15.0 < float(s["value"][1]) < 100.0  # type: ignore[index]
        up = _query(prom_port, 'up{job="gpuwatchd"}')
        assert up and up[0]["value"][1] == "1"  # type: ignore[index]

        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            exposition = resp.read()
        lint = subprocess.run([promtool, "check", "metrics"], input=exposition,
                              capture_output=True, check=False)
        assert lint.returncode == 0, lint.stdout + lint.stderr

        ctl = subprocess.run([sys.executable, "-m", "gpuwatchd.ctl.main", "status", "--socket",
                              str(sock)], capture_output=True, text=True, check=False, timeout=20)
        # the daemon is healthy, the demo server is not: its PS2 has failed (gpuwatchd/sim/
        # bmc.py), so the hardware verdict makes gpuwatchctl status exit 1 (issue 13)
        assert ctl.returncode == 1, ctl.stdout + ctl.stderr
        assert "health  healthy" in ctl.stdout and "hardware  faulty" in ctl.stdout
        assert "BMC idrac PSU PS2: failed, AC lost  [psu_failed]" in ctl.stdout
        assert "Tesla P40" in ctl.stdout
    finally:
        stop(prom)
        stop(demo)
