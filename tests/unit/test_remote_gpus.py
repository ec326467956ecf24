"""``ssh:<name>`` inputs without sshd: the CSV parser, the selector, the config checks, the
ssh command line and the evaluation (tests/integration/test_remote_gpus_sshd.py runs it
against a real sshd)."""

from __future__ import annotations

import math

import pytest

from gpuwatchd.collectors.remote_gpus import key_path, parse, ssh_argv
from gpuwatchd.config import ConfigError, loads
from gpuwatchd.config.schema import RemoteGpuConfig
from gpuwatchd.config.selectors import SshSelector, parse_selector
from gpuwatchd.control.selectors import resolve
from gpuwatchd.model import (
    Collected,
    CollectorResult,
    RemoteGpu,
    RemoteGpuSet,
    Snapshot,
)

GOOD = ("0, GPU-6f3a1c2e-58b1-7f0e-2c4d-1a9b8e7d6c5f, 71, 182.35\n"
        "1, GPU-0b2c4d6e-8f10-1a2b-3c4d-5e6f708192a3, 64, [N/A]\n")
REMOTE = "remote_gpus:\n  - {name: esxi, host: 192.0.2.20, key_file: /etc/gpuwatchd/esxi_key%s}\n"


def test_parse_reads_every_gpu() -> None:
    got = parse("esxi", GOOD)
    assert got == RemoteGpuSet("esxi", (
        RemoteGpu(0, "GPU-6f3a1c2e-58b1-7f0e-2c4d-1a9b8e7d6c5f", 71.0, 182.35),
        RemoteGpu(1, "GPU-0b2c4d6e-8f10-1a2b-3c4d-5e6f708192a3", 64.0, None)))


@pytest.mark.parametrize("text", [
    "", "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n",
    GOOD + "garbage\n", "0, GPU-x, [N/A], 50\n", "0, GPU-x, nan, 50\n", "0, GPU-x, 1e9, 50\n",
    "0, GPU-x, 60\n", "x, GPU-x, 60, 50\n", "0, GPU-x, 60, lots\n",
])
def test_garbage_is_an_error_and_no_gpu(text: str) -> None:
    got = parse("esxi", text)
    assert got.gpus == () and got.error


def test_the_selector() -> None:
    assert parse_selector("ssh:esxi") == SshSelector("esxi")
    assert SshSelector("esxi").text == "ssh:esxi"


def test_config_checks() -> None:
    cfg = loads(REMOTE % "" + 'fan_control:\n  driver: none\n  zones: [{name: z, inputs: '
                '["ssh:esxi"]}]\n')
    (remote,) = cfg.remote_gpus
    assert (remote.user, remote.port, remote.known_hosts_file, remote.timeout_seconds) == (
        "root", 22, "/etc/gpuwatchd/known_hosts", 1.5)
    bad = {
        ", key_credential: k": "exactly one",
        ", user: 'a b'": "not a host or user", ", known_hosts_file: kh": "absolute path",
        ", timeout_seconds: .nan": "finite", ", interval_seconds: .inf": "finite",
        ", timeout_seconds: 5": "longer than the interval",
    }
    for extra, message in bad.items():
        with pytest.raises(ConfigError, match=message):
            loads(REMOTE % extra)
    with pytest.raises(ConfigError, match="not a host"):
        loads(REMOTE.replace("192.0.2.20", "-oProxyCommand=x") % "")
    with pytest.raises(ConfigError, match="no remote_gpus entry named 'nope'"):
        loads('fan_control:\n  driver: none\n  zones: [{name: z, inputs: ["ssh:nope"]}]\n')
    with pytest.raises(ConfigError, match="stale limit"):
        loads(REMOTE % ", interval_seconds: 10" + 'fan_control:\n  driver: none\n  zones: '
              '[{name: z, inputs: ["ssh:esxi"]}]\n')


def test_the_argv_pins_the_host_key_and_names_only_the_key_path() -> None:
    remote = RemoteGpuConfig("esxi", "192.0.2.20", port=2222, key_file="/k/esxi_key",
                             known_hosts_file="/k/known_hosts")
    argv = ssh_argv(remote, "/k/esxi_key", "/run/x")
    for option in ("BatchMode=yes", "ControlMaster=auto", "ControlPath=/run/x/%C",
                   "ControlPersist=60", "StrictHostKeyChecking=yes",
                   "UserKnownHostsFile=/k/known_hosts", "PasswordAuthentication=no"):
        assert argv[argv.index(option) - 1] == "-o"
    cut = argv.index("--")
    assert argv[cut - 4:cut] == ["-i", "/k/esxi_key", "-p", "2222"]
    assert argv[cut + 1:] == ["root@192.0.2.20", "nvidia-smi",
                              "--query-gpu=index,uuid,temperature.gpu,power.draw",
                              "--format=csv,noheader,nounits"]
    cred = RemoteGpuConfig("esxi", "h", key_credential="esxi_key")
    assert key_path(cred, {"CREDENTIALS_DIRECTORY": "/run/credentials/gpuwatchd.service"}) == \
        "/run/credentials/gpuwatchd.service/esxi_key"


def _snapshot(reading: RemoteGpuSet, now: float = 100.0) -> Snapshot:
    res = CollectorResult("remote_gpus:esxi", ok=True, duration_seconds=0.1, updated_wall=0.0,
                          updated_mono=now - 0.5, stale_after_seconds=6.0,
                          collected=Collected(readings=(reading,)))
    return Snapshot(seq=1, taken_wall=0.0, taken_mono=now, results=(res,))


def test_the_input_is_the_hottest_gpu_and_garbage_has_no_value() -> None:
    (value,) = resolve((SshSelector("esxi"),), _snapshot(parse("esxi", GOOD)), 100.0)
    assert (value.id, value.celsius, value.age_seconds) == ("ssh:esxi", 71.0, 0.5)
    (value,) = resolve((SshSelector("esxi"),), _snapshot(parse("esxi", "garbage")), 100.0)
    assert value.celsius is None and "not index, uuid" in value.error
    (value,) = resolve((SshSelector("other"),), _snapshot(parse("esxi", GOOD)), 100.0)
    assert value.celsius is None and value.age_seconds == math.inf
