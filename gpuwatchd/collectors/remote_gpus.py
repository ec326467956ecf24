"""GPUs of another host read over SSH (``remote_gpus: [...]``, ``ssh:<name>`` zone inputs).

For a GPU whose temperature only another host can read: an ESXi host's ``nvidia-smi`` (vGPU
guests see no GPU temperature; ESXi runs no Python). Every ``interval_seconds`` this runs,
through the OpenSSH client on a persistent connection (a control master)::

    ssh -F none -o BatchMode=yes -o ControlMaster=auto -o ControlPath=<private dir>/%C \\
        -o ControlPersist=60 -o StrictHostKeyChecking=yes -o UserKnownHostsFile=<pinned> \\
        -o IdentitiesOnly=yes -o PasswordAuthentication=no -i <key_file> -p PORT \\
        -- user@host nvidia-smi --query-gpu=index,uuid,temperature.gpu,power.draw \\
        --format=csv,noheader,nounits

Key authentication only (BatchMode: ssh never asks for a password), the host key pinned (a
host not in ``known_hosts_file``, or with another key, is refused). The key's path is in
argv; its content is never read here (only checked to be a private regular file, through
gpuwatchd.config.files). Each call runs under ``timeout_seconds`` (and the runner's deadline
worker): a hang or a dropped connection raises, the last good data ages and the zone's
stale-input rule fails it safe. Output that is not that CSV (an error message, ``[N/A]`` for a
temperature) is a :class:`RemoteGpuSet` with an error and no GPU: the input has no value.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from gpuwatchd.collectors import Scheduled
from gpuwatchd.config import Config
from gpuwatchd.config.files import FileRefused, check_regular
from gpuwatchd.config.schema import RemoteGpuConfig
from gpuwatchd.errors import Transient
from gpuwatchd.hardware import Hardware
from gpuwatchd.model import Collected, RemoteGpu, RemoteGpuSet

QUERY = ("nvidia-smi", "--query-gpu=index,uuid,temperature.gpu,power.draw",
         "--format=csv,noheader,nounits")
MAX_OUTPUT_BYTES = 64 * 1024
MAX_KEY_BYTES = 64 * 1024
PLAUSIBLE_CELSIUS = (-40.0, 150.0)
CONTROL_PERSIST_SECONDS = 60
DEADLINE_SLACK_SECONDS = 0.25  # the runner's deadline: ssh's own timeout, then this
_DROPPED_ENV = ("SSH_AUTH_SOCK", "SSH_ASKPASS", "DISPLAY")  # no agent, no password prompt


class RemoteGpuError(Transient):
    """The remote host could not be read (ssh failed, timed out, or nvidia-smi failed)."""


def parse(remote: str, text: str) -> RemoteGpuSet:
    """The GPUs of nvidia-smi's CSV (blank lines skipped); any other line: an error, no GPU."""
    gpus = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        gpu = _parse_line(line)
        if gpu is None:
            return RemoteGpuSet(remote, (), f"line {number} is not index, uuid, temperature.gpu, "
                                            "power.draw (nvidia-smi --format=csv,noheader,nounits)")
        gpus.append(gpu)
    if not gpus:
        return RemoteGpuSet(remote, (), "nvidia-smi printed no GPU")
    return RemoteGpuSet(remote, tuple(gpus))


def _parse_line(line: str) -> RemoteGpu | None:
    fields = [f.strip() for f in line.split(",")]
    if len(fields) != 4 or not fields[0].isdigit() or not fields[1].startswith("GPU-"):
        return None
    temperature = _number(fields[2])
    if temperature is None or not PLAUSIBLE_CELSIUS[0] <= temperature <= PLAUSIBLE_CELSIUS[1]:
        return None
    power = _number(fields[3])
    if power is None and not fields[3].startswith("[N/A"):
        return None
    return RemoteGpu(int(fields[0]), fields[1], temperature, power)


def _number(field: str) -> float | None:
    try:
        value = float(field)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def key_path(remote: RemoteGpuConfig, environ: Mapping[str, str]) -> str:
    """The private key's path: ``key_file``, or the systemd credential's file."""
    if remote.key_file is not None:
        return remote.key_file
    directory = environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        raise RemoteGpuError(f"remote_gpus {remote.name}: key_credential "
                             f"{remote.key_credential!r} but no $CREDENTIALS_DIRECTORY "
                             "(LoadCredential= in the systemd unit)")
    return str(Path(directory) / str(remote.key_credential))


def ssh_argv(remote: RemoteGpuConfig, key: str, control_dir: str, ssh: str = "ssh",
             timeout_seconds: float | None = None) -> list[str]:
    """The ssh command line (the key's path, never its content; no password option)."""
    timeout = max(1, math.ceil(timeout_seconds or remote.timeout_seconds))
    options = {
        "BatchMode": "yes", "ControlMaster": "auto", "ControlPath": f"{control_dir}/%C",
        "ControlPersist": str(CONTROL_PERSIST_SECONDS), "StrictHostKeyChecking": "yes",
        "UserKnownHostsFile": remote.known_hosts_file, "GlobalKnownHostsFile": "/dev/null",
        "IdentitiesOnly": "yes", "PasswordAuthentication": "no",
        "KbdInteractiveAuthentication": "no", "ConnectTimeout": str(timeout),
        "ServerAliveInterval": str(timeout), "ServerAliveCountMax": "2",
    }
    argv = [ssh, "-F", "none", "-T"]
    for name, value in options.items():
        argv += ["-o", f"{name}={value}"]
    return [*argv, "-i", key, "-p", str(remote.port), "--", f"{remote.user}@{remote.host}",
            *QUERY]


class RemoteGpuCollector:
    """Reads one ``remote_gpus`` entry's GPUs per collect, over one persistent connection."""

    def __init__(self, remote: RemoteGpuConfig, environ: Mapping[str, str] | None = None,
                 ssh: str = "ssh") -> None:
        self.name = f"remote_gpus:{remote.name}"
        self._remote, self._ssh = remote, ssh
        self._env = {k: v for k, v in (os.environ if environ is None else environ).items()
                     if k not in _DROPPED_ENV}
        # The control socket's directory: private (0700), short (a socket path has ~100 bytes).
        self._control_dir = tempfile.mkdtemp(prefix="gpuwatchd-ssh-")
        self.last_argv: tuple[str, ...] = ()  # what ran last (tests check no secret is there)

    def collect(self) -> Collected:
        key = key_path(self._remote, self._env)
        self._check_files(key)
        argv = ssh_argv(self._remote, key, self._control_dir, self._ssh)
        self.last_argv = tuple(argv)
        stdout = self._run(argv)
        return Collected(readings=(parse(self._remote.name, stdout),))

    def _check_files(self, key: str) -> None:
        where = f"remote_gpus {self._remote.name}"
        try:
            mode = check_regular(key, MAX_KEY_BYTES)
            check_regular(self._remote.known_hosts_file, MAX_OUTPUT_BYTES * 16)
        except FileRefused as exc:
            raise RemoteGpuError(f"{where}: {exc.path}: {exc.problem}") from None
        if mode & 0o077:
            raise RemoteGpuError(f"{where}: key file {key} is readable by others (chmod 600)")

    def _run(self, argv: list[str]) -> str:
        where = f"remote_gpus {self._remote.name} ({self._remote.host})"
        with tempfile.TemporaryFile() as err:  # not a pipe: a backgrounded master holds none
            try:
                done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=err, env=self._env, check=False,
                                      timeout=self._remote.timeout_seconds)
            except subprocess.TimeoutExpired:
                raise RemoteGpuError(f"{where}: no answer within "
                                     f"{self._remote.timeout_seconds:g} s") from None
            except OSError as exc:
                raise RemoteGpuError(f"{where}: cannot run ssh: {exc.strerror}") from None
            err.seek(0)
            message = err.read(4096).decode("utf-8", "replace").strip().splitlines()
        if done.returncode != 0:
            what = "ssh failed" if done.returncode == 255 else f"exit status {done.returncode}"
            last = message[-1][:200] if message else "no message"
            raise RemoteGpuError(f"{where}: {what}: {last}")
        return done.stdout[:MAX_OUTPUT_BYTES].decode("utf-8", "replace")

    def close(self) -> None:
        """Stop the control master (``ssh -O exit``) and remove its directory."""
        argv = ssh_argv(self._remote, "", self._control_dir, self._ssh)
        cut = argv.index("-i")  # the master needs no key to be told to exit
        try:
            subprocess.run([*argv[:cut], "-O", "exit", *argv[cut + 2:cut + 6]],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, env=self._env, timeout=5, check=False)
        except (OSError, subprocess.TimeoutExpired):
            pass
        shutil.rmtree(self._control_dir, ignore_errors=True)


def build(config: Config, hw: Hardware) -> Sequence[Scheduled]:
    """One collector per ``remote_gpus`` entry, on its own cadence and deadline."""
    del hw  # the OpenSSH client is the link; nothing of the node's hardware is opened
    out = []
    for remote in config.remote_gpus:
        interval = remote.interval_seconds or config.interval_seconds
        out.append(Scheduled(RemoteGpuCollector(remote), interval,
                             remote.timeout_seconds + DEADLINE_SLACK_SECONDS))
    return out
