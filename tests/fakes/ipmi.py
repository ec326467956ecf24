"""FakeIpmi: a recorded IPMI peer for IpmiLink unit tests (no sockets, no python-ipmi session).

Responses are recorded request -> response pairs: ``(netfn, cmd + data)`` -> the bytes a BMC
returns (completion code first) or an exception the transport raises (python-ipmi's own
exception types, so the link's mapping is what is tested). Unrecorded commands get ``0xc1``.
"""

from __future__ import annotations

from gpuwatchd.links.ipmi_pyipmi import ConnectRequest

DELL_DEVICE_ID = bytes.fromhex("00" "20" "03" "02" "41" "02" "9f" "a20200" "0001" "00000000")


class FakeIpmi:
    """Connector and connection in one; records every open and request."""

    def __init__(self, responses: dict[tuple[int, bytes], bytes | BaseException] | None = None,
                 device_id: bytes = DELL_DEVICE_ID) -> None:
        self.responses: dict[tuple[int, bytes], bytes | BaseException] = {(0x06, b"\x01"):
                                                                         device_id}
        self.responses.update(responses or {})
        self.requests: list[tuple[int, bytes]] = []
        self.opens: list[ConnectRequest] = []
        self.open_errors: list[BaseException] = []  # raised by the next opens, in order
        self.closed: list[bool] = []  # the graceful flag of each close

    def connector(self, req: ConnectRequest) -> FakeIpmi:
        self.opens.append(req)
        if self.open_errors:
            raise self.open_errors.pop(0)
        return self

    def send_raw(self, lun: int, netfn: int, raw_bytes: bytes) -> bytes:
        self.requests.append((netfn, bytes(raw_bytes)))
        response = self.responses.get((netfn, bytes(raw_bytes)), b"\xc1")
        if isinstance(response, BaseException):
            raise response
        return response

    def close(self, graceful: bool) -> None:
        self.closed.append(graceful)
