"""The hand-back record (gpuwatchd.control.handback): every fan driver's config comes back
from it as the daemon had it, written atomically; nothing secret in it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gpuwatchd.config import loads
from gpuwatchd.config.fan_drivers import DRIVERS
from gpuwatchd.control import handback

CONFIGS = {  # one per DRIVERS row, with settings away from the defaults
    "dell": "bmcs: [{name: d, host: 192.0.2.1, port: 6230, username: root, "
            "password_file: /etc/gpuwatchd/d.pass}]\nfan_control:\n  driver: dell\n  bmc: d\n"
            "  dell: {third_party_pcie_response: disable, third_party_pcie_on_exit: enable, "
            "fan_count: 8}\n  zones: [{name: z}]\n",
    "supermicro": "bmcs: [{name: s, transport: inband, ipmi_device: /dev/ipmi1}]\n"
                  "fan_control:\n  driver: supermicro\n  bmc: s\n  supermicro: "
                  "{generation: x9, release_mode: full}\n  zones: [{name: z, fans: [cpu]}]\n",
    "redfish-dell": "bmcs: [{name: r, protocol: redfish, host: h, username: u, "
                    "password_credential: c, tls_verify: false}]\nfan_control:\n"
                    "  driver: redfish-dell\n  bmc: r\n  redfish_dell: {attribute: offset}\n"
                    "  zones: [{name: z}]\n",
    "nvml": "gpus: {enabled: true, library_path: /x/libnvidia-ml.so.1}\nfan_control:\n"
            "  driver: nvml\n  zones: [{name: g, fans: [gpu0, gpu1]}]\n",
    "hwmon": "fan_control:\n  driver: hwmon\n  zones: [{name: c, fans: [nct6798/pwm2]}]\n",
}


def test_every_driver_has_a_record_case() -> None:
    assert set(CONFIGS) == set(DRIVERS)


@pytest.mark.parametrize("driver", sorted(CONFIGS))
def test_the_record_gives_back_the_driver_config(driver: str, tmp_path: Path) -> None:
    text = CONFIGS[driver].replace("fan_control:\n",
                                   f"fan_control:\n  state_directory: {tmp_path}\n")
    config = loads(text, "t.yaml")
    fc = config.fan_control
    path = handback.write_record(config, driver, fc.bmc or driver)
    assert os.listdir(tmp_path) == [os.path.basename(path)]  # no temporary left behind
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    back = handback.read_record(path)
    got = back.config.fan_control
    assert (got.driver, got.bmc, got.dell, got.supermicro, got.redfish_dell,
            got.state_directory) == (fc.driver, fc.bmc, fc.dell, fc.supermicro,
                                     fc.redfish_dell, fc.state_directory)
    assert [z.channels for z in got.zones] == [z.channels for z in fc.zones]
    assert back.config.bmcs == config.bmcs
    assert back.config.gpus.library_path == config.gpus.library_path
    assert handback.records_in(str(tmp_path)) == [path]
    handback.remove_durably(path)
    assert handback.records_in(str(tmp_path)) == []
    handback.remove_durably(path)  # absent is fine
