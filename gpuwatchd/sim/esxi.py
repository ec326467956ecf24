"""``gpuwatchd --demo esxi``: the controller VM of an ESXi host (docs/esxi.md), simulated.

Two Tesla P40s under vSphere, seen from a vGPU guest: NVML answers, but with no GPU
temperature (``nvidia-smi --query-gpu=temperature.gpu`` prints ``[N/A]`` in a vGPU guest),
so the fan zone runs on the host's GPU temperatures, the ``file:`` input a writer fills with
the host's ``nvidia-smi --query-gpu=temperature.gpu,power.draw --format=csv,noheader,nounits``
(on a real setup: ``ssh:`` inputs, or an SSH timer writing the file). Here a small writer
thread plays that timer: every second it writes the plant's GPU temperatures, as that CSV,
into a temporary file (atomically, its mtime from the node's clock). The iDRAC is simulated
over IPMI as in the server demo (gpuwatchd/sim/bmc_oem.py).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import tempfile
import threading
from pathlib import Path

from gpuwatchd.clock import Clock
from gpuwatchd.sim.node import SimNode

ESXI_CONFIG = Path(__file__).with_name("esxi.yaml")
CSV_PLACEHOLDER = "/run/gpuwatchd-demo/esxi-gpu.csv"  # esxi.yaml's path, replaced at load
WRITE_INTERVAL_SECONDS = 1.0


def csv_path() -> str:
    """The demo's host-temperature file: private to this user and process."""
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return os.path.join(base, f"gpuwatchd-demo-esxi-{os.getuid()}-{os.getpid()}.csv")


def config_text(path: str | None = None) -> str:
    """esxi.yaml with the ``file:`` input pointing at ``path`` (default :func:`csv_path`)."""
    return ESXI_CONFIG.read_text(encoding="utf-8").replace(CSV_PLACEHOLDER, path or csv_path())


class HostCsvWriter:
    """Writes the ESXi host's nvidia-smi CSV (the plant's GPUs) into ``path`` every second."""

    def __init__(self, node: SimNode, path: str) -> None:
        self.node, self.path = node, path
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sim-esxi-csv", daemon=True)

    def start(self) -> HostCsvWriter:
        self.write()
        self._thread.start()
        atexit.register(self.stop)
        return self

    def write(self) -> None:
        """One nvidia-smi CSV of the host's GPUs (``temperature.gpu, power.draw``)."""
        views = [self.node.gpu_view(i) for i in range(self.node.gpu_count)]
        text = "".join(f"{round(v.temperature_celsius)}, {v.power_watts:.2f}\n" for v in views)
        tmp = f"{self.path}.tmp"
        Path(tmp).write_text(text, encoding="utf-8")
        now = self.node.clock.time()
        os.utime(tmp, (now, now))
        os.replace(tmp, self.path)

    def _run(self) -> None:
        while not self._stop.wait(WRITE_INTERVAL_SECONDS):
            try:
                self.write()
            except OSError:
                continue  # the next second tries again; the zone sees the file age meanwhile

    def stop(self) -> None:
        """Stop writing and remove the file (its age would fail a later reader safe anyway)."""
        self._stop.set()
        with contextlib.suppress(OSError):
            os.unlink(self.path)


def esxi(clock: Clock | None = None, path: str | None = None) -> tuple[SimNode, HostCsvWriter]:
    """The node (P40s, vGPU guest, no GPU temperature over NVML, the iDRAC) and its writer,
    not started (:meth:`HostCsvWriter.start`)."""
    node = SimNode(clock, gpu_count=2)
    for index in range(node.gpu_count):  # a vGPU guest reads no GPU temperature
        node.nvml.set_unsupported(index, "nvmlDeviceGetTemperature")
        node.nvml.set_unsupported(index, "nvmlDeviceGetMarginTemperature")
    return node, HostCsvWriter(node, path or csv_path())
