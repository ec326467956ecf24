"""A simulated GPU node: the thermal plant, a simulated NVML and a clock, composed.

``gpuwatchd --demo``, the unit tests and the benchmarks run on this: two Tesla P40s in a Dell
R730-class chassis with eight fans, under a changing load. The plant is advanced lazily, to
``clock.monotonic()`` (times ``speed``), whenever anything reads or writes it, under one lock,
so the collector's worker thread, the XID thread and a test thread see one consistent plant.
With a :class:`gpuwatchd.clock.ManualClock` the simulation moves only when the test moves it.

Fan behaviour until something else writes a duty: a Dell 13G iDRAC facing an unrecognised
third-party PCIe x16 card with auxiliary power holds every fan at an 80 % floor (iDRAC8
ThermalConfig, Fohdeesha/idrac-7-8-reverse-engineering; about 14,800 rpm on an R730).

Seams for the simulated BMC (``gpuwatchd/sim/bmc.py``, issues "chassis telemetry" and "fan
control"): it reads :meth:`SimNode.fan_rpm`/:meth:`fan_rpms`, :meth:`duty`,
:meth:`inlet_celsius` and :meth:`gpu_view` and writes :meth:`set_duty`; anything else goes
through ``with node.synced() as plant:`` (see :class:`gpuwatchd.sim.plant.ThermalPlant`); the
BMCs and the licence side take the node as a :class:`gpuwatchd.sim.port.NodePort`. The BMCs
reach the daemon as :attr:`gpuwatchd.hardware.Hardware.ipmi_peers` (by BMC name).
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from gpuwatchd.clock import Clock, SystemClock
from gpuwatchd.hardware import Hardware, IpmiConnector
from gpuwatchd.sim import nvml_mig, profiles
from gpuwatchd.sim.bmc import DEMO_BMC, demo_bmc
from gpuwatchd.sim.bmc_oem import OemBmc, make_oem_bmc
from gpuwatchd.sim.board import SimBoard
from gpuwatchd.sim.licence import SimLicence
from gpuwatchd.sim.nvml import SimNvml
from gpuwatchd.sim.nvml_consumer import ConsumerCard
from gpuwatchd.sim.nvml_device import MEMORY_TOTAL_BYTES
from gpuwatchd.sim.nvml_mig import MigSlot
from gpuwatchd.sim.plant import (
    P40,
    R730_FAN,
    RTX2070,
    RTX2070_FAN,
    FanSpec,
    GpuSpec,
    GpuView,
    ThermalPlant,
)
from gpuwatchd.sim.profiles import Profile

DELL_THIRD_PARTY_FLOOR_DUTY = 0.8  # iDRAC8: unmatched x16 card with aux power -> 80 %
CONSUMER_START_DUTY = 0.3  # a consumer card settled on its own curve's lowest speed
DEMO_CONFIG = Path(__file__).with_name("demo.yaml")
WORKSTATION_CONFIG = Path(__file__).with_name("workstation.yaml")


DEMO_PROFILES = ("default", "cluster")


def demo_node(profile: str = "default", gpu_count: int = 2, clock: Clock | None = None) -> SimNode:
    """The node of ``gpuwatchd --demo``: ``default`` is Tesla P40s; ``cluster`` is A100 80GB
    GPUs with GPU 0 in MIG mode (3g.40gb + 2g.20gb + 1g.10gb x2, gpuwatchd.sim.nvml_mig)."""
    if profile == "default":
        return SimNode(clock, gpu_count=gpu_count)
    if profile == "cluster":
        return SimNode(clock, gpu_count=gpu_count, gpu_spec=nvml_mig.A100_80GB,
                       mig={0: nvml_mig.DEMO_LAYOUT})
    raise ValueError(f"unknown demo profile {profile!r} (known: {', '.join(DEMO_PROFILES)})")


class SimNode:
    """A simulated node; ``profile`` is a name (``demo``, ``idle``, ``full``, ``step``), one
    profile for every GPU, or one per GPU (see :mod:`gpuwatchd.sim.profiles`)."""

    def __init__(self, clock: Clock | None = None, gpu_count: int = 2,
                 profile: str | Profile | Sequence[Profile] = "demo", fan_count: int = 8,
                 speed: float = 1.0, *, inlet_celsius: float = 24.0, gpu_spec: GpuSpec = P40,
                 fan_spec: FanSpec = R730_FAN, vgpu_guest: bool = True,
                 bmc: str | None = "idrac", bmc_vendor: str = "dell",
                 mig: Mapping[int, Sequence[MigSlot]] | None = None,
                 consumer: bool = False, board: Path | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.speed = speed
        self._lock = threading.RLock()
        self._start = self.clock.monotonic()
        self._plant = ThermalPlant(
            gpu_count, fan_count, gpu_spec=gpu_spec, fan_spec=fan_spec,
            inlet_celsius=inlet_celsius, profiles=profiles.for_gpus(profile, gpu_count),
            duty=CONSUMER_START_DUTY if consumer else DELL_THIRD_PARTY_FLOOR_DUTY)
        mig_capable = gpu_spec == nvml_mig.A100_80GB
        self.nvml = SimNvml(
            self.gpu_view, gpu_count, gpu_spec, wall=self.clock.time, mig_capable=mig_capable,
            memory_total_bytes=nvml_mig.A100_MEMORY_TOTAL_BYTES if mig_capable
            else MEMORY_TOTAL_BYTES, mig=mig)
        # A consumer card: the plant's fans are GPU 0's own, on its curve until NVML sets them
        self.card = ConsumerCard(self) if consumer else None
        if self.card is not None:
            self.nvml.extra_calls.update(self.card.calls())
        # A mainboard in a sysfs tree (CPU temperature, a case fan): Hardware.sysfs_root
        self.board = SimBoard(board) if board is not None else None
        self.licence = SimLicence(self) if vgpu_guest else None  # licence expires and renews
        if self.licence is not None:
            self.nvml.extra_calls.update(self.licence.calls())
        # The simulated BMCs by BMC name (gpuwatchd.sim.bmc_oem), each the IPMI peer of the
        # demo config's bmcs[] entry of that name (Hardware.ipmi_peers).
        self.bmcs: dict[str, OemBmc] = {}
        if bmc:
            self.bmcs[bmc] = make_oem_bmc(self, bmc_vendor)

    def sim_seconds(self) -> float:
        """Simulated seconds since the node was made: (monotonic - start) * speed."""
        return max(0.0, (self.clock.monotonic() - self._start) * self.speed)

    @contextmanager
    def synced(self) -> Iterator[ThermalPlant]:
        """The plant, advanced to now and locked for the ``with`` block."""
        with self._lock:
            self._plant.advance_to(self.sim_seconds())
            if self.board is not None:
                self.board.refresh(self.sim_seconds())
            if self.card is not None:  # the card's own curve drives the fans it still has
                duty = self.card.follow_curve(self._plant.gpu(0))
                if duty is not None:
                    for fan in self.card.auto_fans():
                        self._plant.set_duty(duty, fan)
            yield self._plant

    def hardware(self) -> Hardware:
        """The injected roots for the daemon and collectors: this node's clock, NVML, BMCs
        (the demo iDRAC answers sensor commands only when the node has no BMC of that name)
        and licence sources."""
        peers: dict[str, IpmiConnector] = {name: b.connector for name, b in self.bmcs.items()}
        if DEMO_BMC not in peers:
            peers[DEMO_BMC] = demo_bmc(self).connector
        licence = self.licence.sources() if self.licence is not None else None
        hw = Hardware(clock=self.clock, nvml=lambda: self.nvml, demo=True, ipmi_peers=peers,
                      licence=licence)
        return hw if self.board is None else replace(hw, sysfs_root=str(self.board.root))

    @property
    def gpu_count(self) -> int:
        return self._plant.gpu_count

    @property
    def fan_count(self) -> int:
        return self._plant.fan_count

    # --- GPUs and load ---
    def gpu_view(self, index: int) -> GpuView:
        with self.synced() as plant:
            return plant.gpu(index)

    def set_profile(self, gpu: int, profile: Profile) -> None:
        with self.synced() as plant:
            plant.set_profile(gpu, profile)

    def set_power_limit(self, gpu: int, watts: float) -> None:
        with self.synced() as plant:
            plant.set_power_limit(gpu, watts)

    # --- chassis: the simulated BMC's side ---
    def set_duty(self, duty: float, fan: int | None = None) -> None:
        """Fan duty 0..1 for one fan, or every fan with ``fan=None``; effective from now."""
        with self.synced() as plant:
            plant.set_duty(duty, fan)

    def duty(self, fan: int) -> float:
        with self.synced() as plant:
            return plant.duty(fan)

    def fan_rpm(self, fan: int) -> float:
        with self.synced() as plant:
            return plant.fan_rpm(fan)

    def fan_rpms(self) -> tuple[float, ...]:
        with self.synced() as plant:
            return plant.fan_rpms()

    def fail_fan(self, fan: int, failed: bool = True) -> None:
        with self.synced() as plant:
            plant.fail_fan(fan, failed)

    def inlet_celsius(self) -> float:
        with self.synced() as plant:
            return plant.inlet_celsius

    def set_inlet(self, celsius: float) -> None:
        with self.synced() as plant:
            plant.inlet_celsius = celsius

    def oracle_duty(self, power_watts: float, setpoint_celsius: float) -> float:
        """The lowest steady duty holding ``setpoint_celsius`` at this power and inlet."""
        with self.synced() as plant:
            return plant.oracle_duty(power_watts, setpoint_celsius)


def workstation(clock: Clock | None = None, profile: str | Profile = "demo",
                board: Path | None = None) -> SimNode:
    """``gpuwatchd --demo workstation``: one RTX 2070-like card with its own two fans (30-100
    %, fan-stop on its own curve) and an energy counter, and a mainboard with a CPU
    temperature and a case fan in a sysfs tree under ``board`` (default: a new temporary
    directory); no BMC, no vGPU licence."""
    root = board if board is not None else Path(tempfile.mkdtemp(prefix="gpuwatchd-sim-sysfs-"))
    return SimNode(clock, gpu_count=1, profile=profile, fan_count=2, gpu_spec=RTX2070,
                   fan_spec=RTX2070_FAN, vgpu_guest=False, bmc=None, consumer=True, board=root)
