"""``gpuwatchctl dump``: every BMC and GPU part written, secrets and serials redacted, and the
Redfish part loadable as a test fixture that gives the same readings."""

from __future__ import annotations

import argparse
import json
import tarfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from gpuwatchd.clock import ManualClock
from gpuwatchd.config import loads
from gpuwatchd.ctl import dump
from gpuwatchd.ctl.main import SUBCOMMANDS
from gpuwatchd.sim.node import SimNode
from tests.fakes.redfish import FakeRedfish
from tests.fakes.redfish_trees import captured
from tests.unit.test_chassis_redfish import make

PASSWORD = "dump-test-pw"  # noqa: S105 - made up, asserted absent from the dump


def config_text(tmp_path: Path) -> str:
    secret = tmp_path / "pw"
    secret.write_text(PASSWORD)
    secret.chmod(0o600)
    return f"""
bmcs:
  - name: idrac
    protocol: ipmi
    transport: inband
    ipmi_device: "sim:idrac"
  - name: r750
    protocol: redfish
    host: 192.0.2.30
    username: root
    password_file: {secret}
"""


def archive(tmp_path: Path) -> dict[str, str]:
    cfg_file = tmp_path / "gpuwatchd.yaml"
    cfg_file.write_text(config_text(tmp_path))
    loads(cfg_file.read_text(), str(cfg_file))  # valid as written
    node = SimNode(clock=ManualClock(), vgpu_guest=True)
    hw = replace(node.hardware(), redfish_peers={
        "r750": FakeRedfish(captured("idrac9_modern"), password=PASSWORD).factory})
    out = tmp_path / "dump.tar.gz"
    args = argparse.Namespace(config=str(cfg_file), output=str(out),
                              socket=str(tmp_path / "none.sock"))
    assert dump.run(args, hardware=lambda: hw) == 0
    assert out.stat().st_mode & 0o077 == 0
    with tarfile.open(out) as tar:
        return {Path(m.name).name: tar.extractfile(m).read().decode()  # type: ignore[union-attr]
                for m in tar.getmembers()}


def test_dump_is_a_subcommand_row() -> None:
    assert SUBCOMMANDS["dump"].run is dump.run


def test_every_part_is_written_redacted(tmp_path: Path) -> None:
    files = archive(tmp_path)
    assert set(files) >= {"bmc-idrac.sdr.json", "bmc-r750.redfish.json", "nvidia-smi.xml",
                          "gridd.conf", "gridd-lint.txt", "gridd.log", "status.json"}
    everything = "\n".join(files.values())
    for secret in (PASSWORD, "CNIVC0012A00B4", "7XK1AB3", "CNLOD0012B3D00"):
        assert secret not in everything
    assert "FeatureType=1" in files["gridd.conf"]  # the simulated guest's, under its root
    assert "<nvidia_smi_log>" in files["nvidia-smi.xml"] or "nvidia-smi" in files["nvidia-smi.xml"]
    assert "not running" in json.loads(files["status.json"])["error"]
    sdr_part = json.loads(files["bmc-idrac.sdr.json"])
    assert sdr_part["NOTE"].startswith("NOTE(Dell") and len(sdr_part["records"]) > 5
    assert all("reading" in r for r in sdr_part["records"] if "number" in r)


def test_the_redfish_part_is_a_fixture_with_the_same_readings(tmp_path: Path) -> None:
    part: dict[str, Any] = json.loads(archive(tmp_path)["bmc-r750.redfish.json"])
    assert part["NOTE"].startswith("NOTE(Dell") and part["errors"] == {}
    tree = {path.rstrip("/") or path: doc for path, doc in part["tree"].items()}
    original = make(FakeRedfish(captured("idrac9_modern"))).collect().readings[1:]
    assert make(FakeRedfish(tree)).collect().readings[1:] == original


def test_redaction_of_keys_and_xml() -> None:
    doc = {"Oem": {"Dell": {"ServiceTag": "ABC1234"}}, "SerialNumber": "X", "Name": "PS1",
           "Attributes": {"Users.2.Password": "calvin", "SNMP.1.AgentCommunity": "public"},
           "UUID": "4c4c4544-0031", "Links": [{"MACAddress": "aa:bb"}], "SKU": None}
    assert dump.redact(doc) == {
        "Oem": {"Dell": {"ServiceTag": "REDACTED"}}, "SerialNumber": "REDACTED", "Name": "PS1",
        "Attributes": {"Users.2.Password": "REDACTED", "SNMP.1.AgentCommunity": "REDACTED"},
        "UUID": "REDACTED", "Links": [{"MACAddress": "REDACTED"}], "SKU": None}
    xml = "<gpu><serial>1321021012345</serial><board_id>0x100</board_id></gpu>"
    assert dump.redact_xml(xml) == "<gpu><serial>REDACTED</serial><board_id>0x100</board_id></gpu>"
