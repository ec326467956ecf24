"""The demo's vGPU guest: a licence that is renewed, lapses during a server outage, and returns.

:class:`SimLicence` hangs off a :class:`gpuwatchd.sim.node.SimNode`. It answers the licence
NVML calls of every simulated GPU (virtualization mode ``VGPU``, licensable features with a
real ``c_nvmlGridLicensableFeatures_v4_t``), the node commands (``systemctl show`` and
``restart``, ``nvidia-smi -q -x``, ``timedatectl``), gridd's journal lines, and a small
``/etc/nvidia`` tree (gridd.conf + one token) in a temporary directory.

The timeline repeats every ``cycle_seconds`` of simulated time (:class:`GuestScenario`,
shortened so a demo shows everything in 12 minutes; NVIDIA's grace period is 20 minutes and
NLS leases last days): licensed, renewed every 15 % of the lease; the licence server goes
away at ``outage_start_seconds``, so renewals fail, the expiry stops moving (renewing late),
runs low (expiring) and passes (expired: unlicensed, unrestricted); ``grace_seconds`` later
the GPU is restricted; at ``outage_end_seconds`` gridd acquires a new lease.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pynvml

from gpuwatchd.errors import NotInstalled
from gpuwatchd.licence.commands import CommandResult
from gpuwatchd.licence.sources import LicenceSources
from gpuwatchd.sim.port import NodePort

if TYPE_CHECKING:
    from gpuwatchd.clock import Clock
    from gpuwatchd.licence.journal import LineSource

SERVER = "license.demo.invalid"  # RFC 6761: never resolves
TOKEN_NAME = "client_configuration_token_demo.tok"  # noqa: S105 - a file name


@dataclass(frozen=True)
class GuestScenario:
    """The simulated licence timeline, in simulated seconds within one cycle."""

    lease_seconds: float = 300.0
    renew_every_seconds: float = 45.0  # renew after 15 % of the lease
    outage_start_seconds: float = 135.0
    outage_end_seconds: float = 600.0
    cycle_seconds: float = 720.0
    grace_seconds: float = 120.0
    product: str = "NVIDIA RTX Virtual Workstation"


@dataclass(frozen=True)
class GuestState:
    """The guest at one moment (simulated seconds since the node started)."""

    licensed: bool
    expiry: float  # of the current (or the lapsed) lease
    unlicensed_since: float | None = None
    restricted: bool = False


def state_at(s: GuestScenario, t: float) -> GuestState:
    """The guest's licence at simulated time ``t``."""
    base = (t // s.cycle_seconds) * s.cycle_seconds
    c = t - base
    if c >= s.outage_end_seconds:
        renewed = s.outage_end_seconds + ((c - s.outage_end_seconds) // s.renew_every_seconds
                                          * s.renew_every_seconds)
    else:
        renewed = min(c, s.outage_start_seconds) // s.renew_every_seconds * s.renew_every_seconds
    expiry = base + renewed + s.lease_seconds
    if t < expiry:
        return GuestState(True, expiry)
    return GuestState(False, expiry, expiry, t - expiry >= s.grace_seconds)


Wall = Callable[[float], float]


def events_between(s: GuestScenario, t0: float, t1: float,
                   wall: Wall = float) -> list[tuple[float, str]]:
    """gridd's journal lines for (t0, t1], in order (the first call also gets the start);
    ``wall`` turns simulated seconds into the epoch seconds printed in the lines."""
    out: list[tuple[float, str]] = []
    if t0 < 0 <= t1:
        out += [(0.0, "Started (1976)"), (0.0, "NLS initialized"), *_acquire(s, 0.0, wall)]
    cycle = max(0.0, t0 // s.cycle_seconds * s.cycle_seconds)
    while cycle <= t1:
        for at, lines in _cycle_events(s, cycle, wall):
            if t0 < at <= t1:
                out += [(at, line) for line in lines]
        cycle += s.cycle_seconds
    return out


def gmt(wall: float) -> str:
    """NVIDIA's expiry format: GMT, not zero-padded (``2024-2-1 2:36:3 GMT``)."""
    t = time.gmtime(wall)
    return f"{t.tm_year}-{t.tm_mon}-{t.tm_mday} {t.tm_hour}:{t.tm_min}:{t.tm_sec} GMT"


def _acquire(s: GuestScenario, at: float, wall: Wall) -> list[tuple[float, str]]:
    stamp = gmt(wall(at + s.lease_seconds))
    return [(at, f"Acquiring license. (Info: {SERVER}; {s.product})"),
            (at, f"License acquired successfully. (Info: {SERVER}, {s.product}; "
                 f"Expiry: {stamp})")]


def _cycle_events(s: GuestScenario, base: float, wall: Wall) -> list[tuple[float, list[str]]]:
    last = s.outage_start_seconds // s.renew_every_seconds * s.renew_every_seconds
    expiry = base + last + s.lease_seconds
    out: list[tuple[float, list[str]]] = []
    at = base + last + s.renew_every_seconds
    while at < expiry:
        out.append((at, [f"Failed to renew license for {s.product}, expiring at "
                         f"{gmt(wall(expiry))}."]))
        at += s.renew_every_seconds
    out.append((expiry, [f"{s.product} license has expired.",
                         "Valid GRID license not found. GPU features and performance are "
                         "restricted. To enable full functionality please configure licensing "
                         "details.", f"Failed to acquire license from {SERVER}"]))
    acquired = base + s.outage_end_seconds
    out.append((acquired, [line for _, line in _acquire(s, acquired, wall)]))
    return out


class SimLicence:
    """The licence side of a simulated node (see the module docstring)."""

    def __init__(self, node: NodePort, scenario: GuestScenario | None = None) -> None:
        self.node = node
        self.scenario = scenario or GuestScenario()
        self._lock = threading.Lock()
        self._journal_at = -1.0
        self.restarts = 0
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    # --- time ---
    def now(self) -> float:
        return self.node.sim_seconds()

    def wall(self, sim_t: float) -> float:
        """The wall-clock time of simulated time ``sim_t``."""
        return self.node.clock.time() - (self.now() - sim_t) / self.node.speed

    def state(self) -> GuestState:
        return state_at(self.scenario, self.now())

    # --- NVML ---
    def calls(self) -> dict[str, Any]:
        """The licence calls for :attr:`gpuwatchd.sim.nvml.SimNvml.extra_calls`."""
        return {"nvmlDeviceGetVirtualizationMode": lambda index: 2,  # VGPU: a guest
                "nvmlDeviceGetGridLicensableFeatures_v4": self._features,
                "nvmlDeviceGetGridLicensableFeatures": self._features}

    def _features(self, index: int) -> pynvml.c_nvmlGridLicensableFeatures_v4_t:
        state = self.state()
        raw = pynvml.c_nvmlGridLicensableFeatures_v4_t()
        raw.isGridLicenseSupported, raw.licensableFeaturesCount = 1, 1
        item = raw.gridLicensableFeatures[0]
        item.featureCode, item.featureState, item.featureEnabled = 1, int(state.licensed), 1
        item.productName = self.scenario.product.encode()
        item.licenseInfo = b"GRID-Virtual-WS,2.0"
        _set_expiry(item.licenseExpiry, self.wall(state.expiry))
        return raw

    # --- commands, journal, files ---
    def sources(self) -> LicenceSources:
        """The licence collector's sources for this node (``Hardware.licence``)."""
        return LicenceSources(runner=self.run, journal=self._journal, root=self.root(),
                              adjtimex=lambda: True)

    def run(self, argv: Sequence[str], timeout_seconds: float) -> CommandResult:
        """The simulated node's answer to a command."""
        call = tuple(argv)
        if call[:2] == ("systemctl", "show"):
            since_us = int(max(1.0, self.node.clock.monotonic() - self.now()) * 1e6)
            return CommandResult(call, 0, "LoadState=loaded\nActiveState=active\n"
                                          f"SubState=running\nActiveEnterTimestampMonotonic="
                                          f"{since_us}\n")
        if call[:2] == ("systemctl", "restart"):
            with self._lock:
                self.restarts += 1
            return CommandResult(call, 0, "")
        if call[:1] == ("nvidia-smi",):
            return CommandResult(call, 0, self.smi_xml())
        if call[:1] == ("timedatectl",):
            return CommandResult(call, 0, "yes\n")
        raise NotInstalled(f"{call[0]}: not in the simulated node")

    def smi_xml(self) -> str:
        """``nvidia-smi -q -x`` of the guest, licence section only (the format of driver 535)."""
        state = self.state()
        if state.licensed:
            status = f"Licensed (Expiry: {gmt(self.wall(state.expiry))})"
        else:
            status = f"Unlicensed ({'Restricted' if state.restricted else 'Unrestricted'})"
        gpus = "".join(
            f'<gpu id="{self.node.nvml.bus_id(i)}"><uuid>{self.node.nvml.uuid(i)}</uuid>'
            "<vgpu_software_licensed_product><licensed_product_name>"
            f"{self.scenario.product}</licensed_product_name><license_status>{status}"
            "</license_status></vgpu_software_licensed_product></gpu>"
            for i in range(self.node.nvml.gpu_count))
        return f'<?xml version="1.0" ?>\n<nvidia_smi_log>{gpus}</nvidia_smi_log>\n'

    def _journal(self, clock: Clock) -> LineSource:
        return _SimJournal(self)

    def journal_lines(self) -> list[str]:
        with self._lock:
            now, since = self.now(), self._journal_at
            self._journal_at = now
        return [line for _, line in events_between(self.scenario, since, now, self.wall)]

    def root(self) -> str:
        """A temporary tree with etc/nvidia/gridd.conf and one token (removed at exit)."""
        with self._lock:
            if self._dir is None:
                self._dir = tempfile.TemporaryDirectory(prefix="gpuwatchd-sim-licence-")
                _write_tree(self._dir.name, self.node.clock.time() - 3600.0)
            return self._dir.name


class _SimJournal:
    def __init__(self, sim: SimLicence) -> None:
        self._sim = sim

    def lines(self) -> list[str]:
        return self._sim.journal_lines()

    def close(self) -> None:
        """Nothing to stop."""


def _set_expiry(target: Any, wall: float) -> None:
    when = time.gmtime(wall)
    target.year, target.month, target.day = when.tm_year, when.tm_mon, when.tm_mday
    target.hour, target.min, target.sec = when.tm_hour, when.tm_min, when.tm_sec
    target.status = 2  # NVML_GRID_LICENSE_EXPIRY_VALID (pynvml's constant is the tuple (2,))


def _write_tree(root: str, mtime: float) -> None:
    nvidia = os.path.join(root, "etc", "nvidia")
    tokens = os.path.join(nvidia, "ClientConfigToken")
    os.makedirs(tokens)
    with open(os.path.join(nvidia, "gridd.conf"), "w", encoding="utf-8") as handle:
        handle.write("# simulated by gpuwatchd --demo\nServerAddress=\nFeatureType=1\n"
                     "EnableUI=FALSE\n")
    token = os.path.join(tokens, TOKEN_NAME)
    with open(token, "w", encoding="utf-8") as handle:
        handle.write("simulated-token\n")
    os.chmod(token, 0o744)
    for path in (token, os.path.join(nvidia, "gridd.conf")):
        os.utime(path, (mtime, mtime))
