"""Simulated Dell and Supermicro BMCs with their OEM fan commands, driving the thermal plant.

:class:`SimDellBmc` and :class:`SimSupermicroBmc` extend gpuwatchd.sim.bmc.SimBmc (the demo
chassis' sensors of gpuwatchd.sim.bmc.demo_sensors, SDR, Get Device ID) with the raw OEM
commands of reference/fan-control.md (b), and with the BMC's *own* fan behaviour, the
baseline gpuwatchd is measured against:

- Dell 13G iDRAC in automatic mode: an unrecognised x16 card with auxiliary power (a P40)
  holds every fan at an 80 % floor while the third-party PCIe cooling response is enabled
  (iDRAC8 ThermalConfig), else about 15 % (an R730 with the response off idles near
  4,080 rpm). Start-up after a reset: 50 %.
- Supermicro: mode Standard about 50 %, Optimal 30 %, HeavyIO 60 %, PUE 25 %, Full 100 %;
  zone duties hold only in Full.

Fault injection (:class:`OemFaults`, tests and benchmarks): refusing manual mode (``0xd4``,
iDRAC9 from 3.34.34.34), refusing the all-fans selector (``0xcc``, R510), a completion code on
every duty write, a BMC that stops answering, a revert to automatic, a cold reset (no
answer, then fan sensors that do not report, then automatic mode), and a PSU failing or
repaired (``faults.psus``). Every OEM request is kept
in :attr:`oem_log` as ``(netfn, bytes)``. Times are the node's simulated seconds.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from gpuwatchd.sim.bmc import PSU_STATUS_SENSORS, SimBmc, demo_sensors, demo_values
from gpuwatchd.sim.port import NodePort

DELL_THIRD_PARTY_FLOOR = 0.8
DELL_AUTO_DUTY = 0.15
DELL_STARTUP_DUTY = 0.5
SMC_MODE_DUTY = {0: 0.5, 1: 1.0, 2: 0.3, 3: 0.25, 4: 0.6}


@dataclass
class OemFaults:
    """What the simulated BMC does wrong; change the fields at any time."""

    refuse_manual: int | None = None  # completion code for manual mode (0xd4)
    refuse_all_fans: bool = False  # 0xcc for selector 0xff (R510)
    write_code: int | None = None  # completion code for every duty write
    silent: bool = False  # no answer at all (a dead BMC or network)
    pcie_absent: bool = False  # 0xc1 for the third-party PCIe commands (12G, 14G+)
    # PSU status bits by PSU number (1: PS1, 2: PS2; gpuwatchd.sim.sdr PSU_*), over the
    # demo's (PS1 ok, PS2 failed): ``{2: PSU_OK}`` repairs PS2, ``{1: PSU_BROKEN}`` fails PS1
    psus: dict[int, int] = field(default_factory=dict)


class OemBmc(SimBmc):
    """Common parts: plant-driven sensor values, faults, resets, the OEM log."""

    def __init__(self, node: NodePort, manufacturer_id: int) -> None:
        self.node = node
        self.faults = OemFaults()
        self.oem_log: list[tuple[int, bytes]] = []
        self._oem_lock = threading.Lock()
        self._down_until = float("-inf")
        self._ns_until = float("-inf")
        self._fans = node.fan_count
        super().__init__(demo_sensors(self._fans), self._sensor_values,
                         manufacturer_id=manufacturer_id,
                         power_watts=lambda: self._sensor_values().get(0x64))

    def _now(self) -> float:
        return self.node.sim_seconds()

    def _sensor_values(self) -> dict[int, float]:
        """The demo chassis' sensors (gpuwatchd.sim.bmc.demo_values); none while starting."""
        if self._now() < self._ns_until:
            return {}  # every sensor "ns" while the BMC starts after a reset
        values = demo_values(self.node)
        values.update({PSU_STATUS_SENSORS[n]: bits for n, bits in self.faults.psus.items()})
        return values

    def send_raw(self, lun: int, netfn: int, raw_bytes: bytes) -> bytes:
        if self.faults.silent or self._now() < self._down_until:
            raise TimeoutError("no response from the simulated BMC")
        if netfn != 0x30:
            return super().send_raw(lun, netfn, raw_bytes)
        with self._oem_lock:
            self.oem_log.append((netfn, bytes(raw_bytes)))
            self.commands += 1
            return self._oem(raw_bytes[0], bytes(raw_bytes[1:]))

    def _oem(self, cmd: int, data: bytes) -> bytes:
        raise NotImplementedError

    def cold_reset(self, down_seconds: float = 30.0, ns_seconds: float = 60.0) -> None:
        """``ipmitool mc reset cold``: no answer for ``down_seconds``, then ``ns_seconds``
        with fan sensors not reporting; the BMC comes back in automatic mode (smfc measured
        about 30 s down and 69 s of ``ns`` on an X11)."""
        now = self._now()
        self._down_until = now + down_seconds
        self._ns_until = now + down_seconds + ns_seconds
        self._reset_state()

    def _reset_state(self) -> None:
        raise NotImplementedError

    def oem_requests(self) -> list[bytes]:
        with self._oem_lock:
            return [data for _, data in self.oem_log]


class SimDellBmc(OemBmc):
    """An iDRAC8 (Dell 13G) with the ``0x30 0x30`` and ``0x30 0xce`` commands."""

    def __init__(self, node: NodePort) -> None:
        self.manual = False
        self.pcie_enabled = True
        self.duties: list[int] = []
        super().__init__(node, manufacturer_id=674)
        self.auto()

    def auto_duty(self) -> float:
        return DELL_THIRD_PARTY_FLOOR if self.pcie_enabled else DELL_AUTO_DUTY

    def auto(self) -> None:
        """Automatic mode: the iDRAC's own fan behaviour."""
        self.manual = False
        self.node.set_duty(self.auto_duty())

    def revert(self) -> None:
        """Fall back to automatic on its own (as users report after firmware events)."""
        self.auto()

    def revert_externally(self) -> None:
        """Another tool sends ``ipmitool raw 0x30 0x30 0x01 0x01`` (automatic mode) behind
        gpuwatchd's back: through the command path, so it is in :attr:`oem_log` like any
        request (issue 10: unnoticed for minutes while the duty moved)."""
        self.send_raw(0, 0x30, b"\x30\x01\x01")

    def _reset_state(self) -> None:
        self.manual = False
        self.node.set_duty(DELL_STARTUP_DUTY)

    def _oem(self, cmd: int, data: bytes) -> bytes:
        if cmd == 0x30:
            return self._fan(data)
        if cmd == 0xce:
            return self._pcie(data)
        return b"\xc1"

    def _fan(self, data: bytes) -> bytes:
        if data[:1] == b"\x01" and len(data) == 2:
            if self.faults.refuse_manual is not None and data[1] == 0x00:
                return bytes([self.faults.refuse_manual])
            if data[1] == 0x00:
                self.manual = True
            else:
                self.auto()
            return b"\x00"
        if data[:1] == b"\x02" and len(data) == 3:
            selector, pct = data[1], data[2]
            if pct > 100 or (selector != 0xff and selector >= self._fans):
                return b"\xcc"
            if selector == 0xff and self.faults.refuse_all_fans:
                return b"\xcc"
            if self.faults.write_code is not None:
                return bytes([self.faults.write_code])
            if self.manual:  # the iDRAC ignores duties while in automatic mode
                self.node.set_duty(pct / 100.0, None if selector == 0xff else selector)
            self.duties.append(pct)
            return b"\x00"
        return b"\xcc"

    def _pcie(self, data: bytes) -> bytes:
        if self.faults.pcie_absent:
            return b"\xc1"
        if data == b"\x01\x16\x05\x00\x00\x00":
            flag = 0x00 if self.pcie_enabled else 0x01
            return bytes([0x00, 0x16, 0x05, 0x00, 0x00, 0x00, 0x05, 0x00, flag, 0x00, 0x00])
        if data[:8] == b"\x00\x16\x05\x00\x00\x00\x05\x00" and len(data) == 11:
            self.pcie_enabled = data[8] == 0x00
            if not self.manual:
                self.node.set_duty(self.auto_duty())
            return b"\x00"
        return b"\xcc"


class SimSupermicroBmc(OemBmc):
    """An X10-X13 BMC (``0x30 0x45``, ``0x30 0x70 0x66``), or an X9 (``0x30 0x91 0x5a``)."""

    def __init__(self, node: NodePort, generation: str = "x10", mode: int = 0) -> None:
        self.generation = generation
        self.fan_mode = mode
        super().__init__(node, manufacturer_id=10876)
        self._apply_mode()

    def zone_fans(self, zone: int) -> list[int]:
        """Zone 0: the first half of the fans (FAN1...), zone 1: the rest (FANA...)."""
        half = max(1, self._fans // 2)
        return list(range(half)) if zone == 0 else list(range(half, self._fans))

    def _apply_mode(self) -> None:
        self.node.set_duty(SMC_MODE_DUTY.get(self.fan_mode, 0.5))

    def revert(self, mode: int = 0) -> None:
        """The BMC changes its fan mode on its own (smfc#99)."""
        self.fan_mode = mode
        self._apply_mode()

    def _reset_state(self) -> None:
        self.fan_mode = 0
        self._apply_mode()

    def _oem(self, cmd: int, data: bytes) -> bytes:
        if cmd == 0x45 and data == b"\x00":
            return bytes([0x00, self.fan_mode])
        if cmd == 0x45 and data[:1] == b"\x01" and len(data) == 2:
            if data[1] not in SMC_MODE_DUTY:
                return b"\xcc"
            if self.faults.refuse_manual is not None:
                return bytes([self.faults.refuse_manual])
            self.fan_mode = data[1]
            self._apply_mode()
            return b"\x00"
        if cmd == 0x70 and data[:2] == b"\x66\x01" and len(data) == 4:
            if self.generation != "x10":
                return b"\xcc"
            return self._zone(data[2], data[3] / 100.0, data[3] > 100)
        if cmd == 0x91 and data[:2] == b"\x5a\x03" and len(data) == 4:
            if self.generation != "x9":
                return b"\xc1"
            return self._zone(data[2] - 0x10, data[3] / 255.0, False)
        return b"\xc1"

    def _zone(self, zone: int, duty: float, bad: bool) -> bytes:
        if bad or zone not in (0, 1):
            return b"\xcc"
        if self.faults.write_code is not None:
            return bytes([self.faults.write_code])
        if self.fan_mode == 1:  # zone duties hold only in Full
            for fan in self.zone_fans(zone):
                self.node.set_duty(duty, fan)
        return b"\x00"


def make_oem_bmc(node: NodePort, vendor: str = "dell", **kwargs: Any) -> OemBmc:
    """A simulated BMC of ``vendor`` (``dell`` or ``supermicro``) for ``node``."""
    return SimDellBmc(node) if vendor == "dell" else SimSupermicroBmc(node, **kwargs)
