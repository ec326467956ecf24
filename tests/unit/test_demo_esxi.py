"""``gpuwatchd --demo esxi`` (issue 14): a vGPU guest controller VM reading no GPU temperature;
the fan zone regulates on the ESXi host's GPU temperatures, a ``file:`` input the simulator's
writer fills with the host's nvidia-smi CSV, through the simulated iDRAC."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from gpuwatchd.clock import ManualClock
from gpuwatchd.config.selectors import FileSelector
from gpuwatchd.daemon.cli import DEMOS, _demo_config, parser
from gpuwatchd.daemon.service import Daemon
from gpuwatchd.model import GpuReading
from gpuwatchd.sim import esxi


def test_demo_esxi_regulates_on_the_hosts_gpu_temperatures(tmp_path: Path) -> None:
    assert "esxi" in DEMOS and parser().parse_args(["--demo", "esxi"]).demo == "esxi"
    cfg = _demo_config(demo="esxi")
    (zone,) = cfg.fan_control.zones
    (sel,) = zone.inputs
    assert sel == FileSelector(esxi.csv_path())
    path = str(tmp_path / "esxi-gpu.csv")
    cfg = replace(cfg, status_socket=str(tmp_path / "s.sock"),
                  exporter=replace(cfg.exporter, listen=("127.0.0.1:0",)),
                  fan_control=replace(cfg.fan_control, state_directory=str(tmp_path),
                                      zones=(replace(zone, inputs=(FileSelector(path),)),)))
    clock = ManualClock()
    node, writer = esxi.esxi(clock, path)
    daemon = Daemon(cfg, node.hardware())
    daemon._build(cfg)
    try:
        modes = []
        for _ in range(30):
            clock.advance(1.0)
            writer.write()  # the writer thread's second, on the manual clock
            daemon.tick()
            control = daemon.snapshot.control
            assert control is not None
            modes.append(control.zones[0].mode)
        (z,) = control.zones
        assert modes[-1] == "control", (modes, z.reason)
        hottest = max(round(node.gpu_view(i).temperature_celsius) for i in range(2))
        assert (z.input_id, z.input_celsius) == (f"file:{path}", hottest)
        gpus = [r for res in daemon.snapshot.results for r in res.collected.readings
                if isinstance(r, GpuReading)]
        assert len(gpus) == 2 and all(g.temperature_celsius is None for g in gpus)  # a guest
        for _ in range(4):  # the writer stops: the file ages, the zone fails safe
            clock.advance(1.0)
            daemon.tick()
        assert daemon.snapshot.control is not None
        assert daemon.snapshot.control.zones[0].mode == "failsafe"
    finally:
        daemon._close_hardware()


def test_the_writer_thread_writes_the_host_csv(tmp_path: Path) -> None:
    path = tmp_path / "esxi-gpu.csv"
    node, writer = esxi.esxi(ManualClock(), str(path))
    writer.start()
    try:
        lines = path.read_text().splitlines()
        assert len(lines) == node.gpu_count
        assert all(float(line.split(",")[0]) > 0 for line in lines)
    finally:
        writer.stop()
    assert not os.path.exists(path)
