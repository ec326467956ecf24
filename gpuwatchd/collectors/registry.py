"""The collector registry: one row per collector module, in the order the daemon runs them.

To add a collector: write ``gpuwatchd/collectors/<name>.py`` with a ``build(config, hw)``
returning its :class:`gpuwatchd.collectors.Scheduled` list, and add its row here.
"""

from __future__ import annotations

from gpuwatchd.collectors import (
    Factory,
    Scheduled,
    chassis_ipmi,
    chassis_redfish,
    file_inputs,
    gpu,
    hwmon,
    licence,
    remote_gpus,
)
from gpuwatchd.config import Config
from gpuwatchd.hardware import Hardware

REGISTRY: dict[str, Factory] = {
    "gpu": gpu.build,
    "chassis_ipmi": chassis_ipmi.build,  # one per bmcs[] entry with protocol: ipmi
    "chassis_redfish": chassis_redfish.build,  # one per bmcs[] entry with protocol: redfish
    "licence": licence.build,
    "hwmon": hwmon.build,  # mainboard fans/temperatures (hwmon.enabled; auto: if a chip exists)
    "file_inputs": file_inputs.build,  # file:<path> zone inputs (an ESXi host's GPUs)
    "remote_gpus": remote_gpus.build,  # one per remote_gpus[] entry (ssh:<name> zone inputs)
}


def build_all(config: Config, hw: Hardware) -> list[Scheduled]:
    """Instantiate every registered collector the config enables, in registry order."""
    out: list[Scheduled] = []
    for factory in REGISTRY.values():
        out.extend(factory(config, hw))
    return out
