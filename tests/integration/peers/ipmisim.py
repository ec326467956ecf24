"""OpenIPMI ``ipmi_sim`` as a BMC on 127.0.0.1, for integration tests and the benchmark.

One :class:`IpmiSim` writes ``lan.conf`` (user, password, a free UDP port, plugins), an
emulation file with one ``sensor_add`` + ``main_sdr_add`` per :class:`SensorDef` (the same
SDR bytes gpuwatchd's simulated BMC serves), and one value file per sensor that ipmi_sim
polls every 100 ms: :meth:`IpmiSim.set` changes a reading by rewriting its file. Processes
are started, paused (SIGSTOP), killed and restarted by pid; :meth:`close` always reaps them.

Pitfalls (shared/reference/test-infra.md): each sensor needs ``sensor_set_event_support`` or
it reads "disabled"; ipmitool needs ``-C 3`` (ipmi_sim lacks Get Channel Cipher Suites, and
every call would take 10 s); ``mc_setbmc 0x20`` is needed or ipmi_sim exits at once.
Plugins (``loadlib``) are C files compiled here with gcc; issue 4 adds an OEM one.
"""

# ruff: noqa: S107 - made-up test passwords, asserted never to leak
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from gpuwatchd.sim.sdr import SensorDef, record
from tests.procs import require

HERE = Path(__file__).resolve().parent
DCMI_PLUGIN = HERE / "dcmi_power.c"
POLL_MS = 100
_ASF_PING = bytes.fromhex("0600ff06" "000011be" "80" "01" "00" "00")  # RMCP, ASF ping


def free_udp_port() -> int:
    """A UDP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def compile_plugin(source: Path, outdir: Path) -> Path:
    """Build an ipmi_sim ``loadlib`` module; fails naming the Debian packages it needs."""
    gcc = require("gcc", "gcc")
    if not Path("/usr/include/OpenIPMI/mcserv.h").exists():
        raise AssertionError("OpenIPMI headers not found: install them with "
                             "'apt-get install libopenipmi-dev' (scripts/test.sh does)")
    out = outdir / (source.stem + ".so")
    subprocess.run([gcc, "-shared", "-fPIC", "-Wall", "-o", str(out), str(source)],
                   check=True, capture_output=True, timeout=60)
    return out


class IpmiSim:
    """One ipmi_sim process emulating a BMC with the given sensors."""

    def __init__(self, workdir: Path, sensors: Sequence[SensorDef],
                 values: dict[int, float], *, username: str = "admin",
                 password: str = "Sim-Pass-7d1", manufacturer_id: int = 674,
                 firmware: tuple[int, int] = (2, 0x41), sdr_only: Sequence[SensorDef] = (),
                 plugins: Sequence[tuple[Path, str]] = ()) -> None:
        self.binary = require("ipmi_sim", "openipmi")
        self.workdir = workdir
        self.sensors = list(sensors)
        self.sdr_only = list(sdr_only)  # records without a sensor: reads fail like a bad slot
        self.username, self.password = username, password
        self.manufacturer_id, self.firmware = manufacturer_id, firmware
        self.plugins = list(plugins)
        self.port = free_udp_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.password_file = workdir / "bmc.password"
        (workdir / "state").mkdir(parents=True, exist_ok=True)
        self.password_file.write_text(password)
        self.password_file.chmod(0o600)
        for sensor in self.sensors:
            self.set(sensor.number, values.get(sensor.number, 0))
        self._write_config()

    def _value_file(self, number: int) -> Path:
        return self.workdir / f"sensor-{number:02x}.val"

    def set(self, number: int, value: float) -> None:
        """Set a reading (in the sensor's unit; state bits for discrete sensors)."""
        sensor = next(s for s in self.sensors if s.number == number)
        tmp = self._value_file(number).with_suffix(".tmp")
        tmp.write_text(f"{sensor.to_raw(value)}\n")
        tmp.replace(self._value_file(number))

    def _write_config(self) -> None:
        lines = ['name "gpuwatchd-test"', "startlan 1", f"  addr 127.0.0.1 {self.port}",
                 "  priv_limit admin"]
        lines += [f"  allowed_auths_{p} none md2 md5 straight"
                  for p in ("callback", "user", "operator", "admin")]
        lines += ["  guid a123456789abcdefa123456789abcdef", "endlan",
                  f'user 2 true "{self.username}" "{self.password}" admin 10 none md2 md5 '
                  "straight"]
        lines += [f'loadlib "{so}" "{arg}"' for so, arg in self.plugins]
        (self.workdir / "lan.conf").write_text("\n".join(lines) + "\n")
        major, minor = self.firmware
        emu = [f"mc_add 0x20 0 no-device-sdrs 0x03 0x{major:x} 0x{minor:02x} 0x9f "
               f"0x{self.manufacturer_id:x} 0x0100", "mc_enable 0x20", "mc_setbmc 0x20"]
        for i, sensor in enumerate(self.sensors + self.sdr_only):
            emu.append("main_sdr_add 0x20 " + " ".join(f"0x{b:02x}"
                                                       for b in record(i + 1, sensor)))
        for sensor in self.sensors:
            emu += _sensor_lines(sensor, self._value_file(sensor.number))
        (self.workdir / "sim.emu").write_text("\n".join(emu) + "\n")

    def start(self, timeout: float = 5.0) -> None:
        """Start ipmi_sim and wait (bounded) until it answers an RMCP presence ping."""
        log = (self.workdir / "ipmi_sim.log").open("ab")
        self.proc = subprocess.Popen(
            [self.binary, "-c", "lan.conf", "-f", "sim.emu", "-s", "state", "-n"],
            cwd=self.workdir, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + timeout
        while not self.answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                text = (self.workdir / "ipmi_sim.log").read_text(errors="replace")
                self.close()
                raise AssertionError(f"ipmi_sim did not start on port {self.port}: {text}")
            time.sleep(0.02)

    def answers(self, timeout: float = 0.1) -> bool:
        """True if something answers an ASF presence ping on the port."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(timeout)
            try:
                sock.sendto(_ASF_PING, ("127.0.0.1", self.port))
                data = sock.recv(512)
            except OSError:
                return False
        return len(data) > 8 and data[8] == 0x40  # presence pong

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def pause(self) -> None:
        """SIGSTOP: the BMC stops answering mid-whatever (the port stays bound)."""
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL and reap: the BMC is gone (its port answers ICMP unreachable)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.pid, signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(5)

    def restart(self) -> None:
        """A BMC reboot: killed, then started again on the same port and state."""
        self.kill()
        self.start()

    def close(self) -> None:
        self.kill()
        self.proc = None

    def ipmitool(self, *args: str, interface: str = "lanplus", timeout: float = 15) -> str:
        """Run ipmitool against this BMC (password from a file, never in argv)."""
        binary = require("ipmitool", "ipmitool")
        cmd = [binary, "-I", interface, "-H", "127.0.0.1", "-p", str(self.port),
               "-U", self.username, "-f", str(self.password_file), "-N", "1", "-R", "1"]
        if interface == "lanplus":
            cmd[3:3] = ["-C", "3"]
        out = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=timeout,
                             check=False)
        if out.returncode != 0:
            raise AssertionError(f"ipmitool {' '.join(args)} failed: {out.stderr.strip()}")
        return out.stdout

    def __enter__(self) -> IpmiSim:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _sensor_lines(sensor: SensorDef, value_file: Path) -> list[str]:
    stype, rtype = sensor.spec[0], sensor.spec[1]
    n = f"0x20 0 0x{sensor.number:02x}"
    lines = [f'sensor_add {n} 0x{stype:02x} 0x{rtype:02x} poll {POLL_MS} file "{value_file}"']
    bits = "000000001111111" if sensor.discrete else "000111111111111"
    scanning = "scanning" if sensor.scanning else "no-scanning"
    lines.append(f"sensor_set_event_support {n} enable {scanning} per-state "
                 f"{bits} {bits} {bits} {bits}")
    if not sensor.discrete:
        mask = format(sensor.threshold_mask(), "06b")
        raw = " ".join(str(v) for v in reversed(sensor.threshold_raw()))
        lines.append(f"sensor_set_threshold {n} settable {mask} {raw}")
    return lines

