"""Zone input selectors are parsed once, by the config loader, into typed selectors."""

from __future__ import annotations

import pytest

from gpuwatchd.config import ConfigError, loads
from gpuwatchd.config.selectors import (
    ALL_GPUS,
    BmcSensorSelector,
    GpuQuantity,
    GpuSelector,
)

BMC = "bmcs:\n- {name: idrac, host: 10.0.0.2}\n"


def zone(inputs: str, head: str = "") -> str:
    return f"{head}fan_control:\n  driver: none\n  zones:\n  - name: z\n    inputs: {inputs}\n"


def test_the_config_holds_typed_selectors() -> None:
    cfg = loads(zone('["gpu:*", "gpu-margin:1", "bmc:idrac:Exhaust Temp"]', BMC))
    assert cfg.fan_control.zones[0].inputs == (
        ALL_GPUS, GpuSelector(GpuQuantity.MARGIN, 1), BmcSensorSelector("idrac", "Exhaust Temp"))
    assert [s.text for s in cfg.fan_control.zones[0].inputs] == [
        "gpu:*", "gpu-margin:1", "bmc:idrac:Exhaust Temp"]


def test_the_default_input_is_every_gpu() -> None:
    cfg = loads("fan_control:\n  driver: none\n  zones:\n  - name: z\n")
    assert cfg.fan_control.zones[0].inputs == (GpuSelector(GpuQuantity.TEMPERATURE, None),)


@pytest.mark.parametrize(("inputs", "message"), [
    ('["gpu:0", "gpu:x"]', r"<string>:7: fan_control\.zones\[0\]\.inputs\[1\]: 'gpu:x': after gpu"),
    ('["cpu:0"]', r"<string>:6: fan_control\.zones\[0\]\.inputs\[0\]: 'cpu:0': unknown input kind"),
    ("[5]", r"inputs\[0\]: expected a non-empty string, got number 5"),
    ('["bmc:ilo:Inlet"]', r"inputs\[0\]: no BMC named 'ilo' \(bmcs: none\)"),
])
def test_bad_selectors_name_the_file_line_and_item(inputs: str, message: str) -> None:
    text = zone(inputs).replace(f"inputs: {inputs}", "inputs:\n" + "".join(
        f"    - {item.strip()}\n" for item in inputs.strip("[]").split(",")))
    with pytest.raises(ConfigError, match=message):
        loads(text)
