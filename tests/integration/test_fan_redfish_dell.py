"""The redfish-dell fan driver through the real DMTF redfish library (RedfishWriteLink: its
own session, PATCH) against the HTTPS test service, extended here with PATCH of the Dell
attribute resource: floor written, raised at once, handed back as found, 400 is a refusal."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from gpuwatchd.clock import ManualClock
from gpuwatchd.config import BmcConfig, RedfishDellConfig
from gpuwatchd.control.drivers.redfish_oem import ALL, MFS, PATHS, RedfishDellDriver
from gpuwatchd.errors import Refused
from gpuwatchd.links.redfish_write import RedfishWriteLink
from tests.fakes.redfish_trees import dell_legacy
from tests.integration.peers import redfish_server
from tests.integration.peers.redfish_server import RedfishServer, make_certificate

pytestmark = pytest.mark.peer
ATTRS = PATHS[0]  # iDRAC9 5.x+: .../Oem/Dell/DellAttributes/System.Embedded.1


class PatchHandler(redfish_server._Handler):
    """The test service's handler plus PATCH of the attribute resource (unknown keys: 400)."""

    def do_PATCH(self) -> None:
        svc = self.service
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        path = urlsplit(self.path).path.rstrip("/")
        with svc.lock:
            svc.requests.append(("PATCH", path, self._auth() or "none"))
        if not self._auth():
            self._send(401, b"{}")
            return
        doc = svc.tree.get(path)
        new = body.get("Attributes", {})
        if doc is None or any(key not in doc["Attributes"] for key in new):
            self._send(400 if doc is not None else 404, b'{"error": {"message": "bad"}}')
            return
        doc["Attributes"].update(new)
        self._send(200, b"{}")


@pytest.fixture
def idrac(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RedfishServer]:
    monkeypatch.setattr(redfish_server, "_Handler", PatchHandler)
    tree = dell_legacy()
    tree[ATTRS] = {"@odata.id": ATTRS, "Attributes": {
        MFS: 20, "ThermalSettings.1.MFSMinimumLimit": 9,
        "ThermalSettings.1.MFSMaximumLimit": 100, "ThermalSettings.1.FanSpeedOffset": "Off"}}
    with RedfishServer(tree, make_certificate(tmp_path)) as server:
        yield server


def driver(server: RedfishServer, tmp_path: Path, clock: ManualClock) -> RedfishDellDriver:
    secret = tmp_path / "pw"
    secret.write_text(server.password)
    secret.chmod(0o600)
    assert server.certificate is not None
    bmc = BmcConfig(name="idrac9", protocol="redfish", host="127.0.0.1", port=server.port,
                    username=server.username, password_file=str(secret),
                    ca_file=str(server.certificate[0]), timeout_seconds=2.0)
    link = RedfishWriteLink(bmc, clock)
    return RedfishDellDriver(link, RedfishDellConfig(min_write_interval_seconds=60),
                             "idrac9", clock.monotonic)


def attrs(server: RedfishServer) -> dict[str, Any]:
    return dict(server.tree[ATTRS]["Attributes"])


def test_minimum_fan_speed_written_raised_lowered_later_and_restored(
        idrac: RedfishServer, tmp_path: Path) -> None:
    clock = ManualClock()
    d = driver(idrac, tmp_path, clock)
    d.take_control()
    d.write({ALL: 0.35})
    assert attrs(idrac)[MFS] == 35
    d.write({ALL: 0.5})  # a rise goes out at once
    assert attrs(idrac)[MFS] == 50
    clock.advance(10)
    d.write({ALL: 0.3})  # a fall waits for min_write_interval_seconds (iDRAC jobs)
    assert attrs(idrac)[MFS] == 50
    clock.advance(60)
    d.write({ALL: 0.3})
    assert attrs(idrac)[MFS] == 30
    d.release()
    assert attrs(idrac)[MFS] == 20  # as found
    patches = [r for r in idrac.requests if r[0] == "PATCH"]
    assert len(patches) == 4 and all(auth == "session" for _, _, auth in patches)


def test_a_rejected_attribute_is_a_refusal(idrac: RedfishServer, tmp_path: Path) -> None:
    d = driver(idrac, tmp_path, ManualClock())
    d.take_control()
    idrac.tree[ATTRS]["Attributes"].pop(MFS)  # firmware without the attribute now
    with pytest.raises(Refused) as info:
        d.write({ALL: 0.4})
    assert info.value.code == 400
