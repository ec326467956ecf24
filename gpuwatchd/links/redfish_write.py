"""PATCH for the Redfish OEM fan driver, on top of gpuwatchd.links.redfish.RedfishLink.

The chassis collector's link only reads; the fan driver also writes one resource (the Dell
attributes). This subclass adds :meth:`RedfishWriteLink.patch` over the link's one request path
(``RedfishLink._request``: session, renewal on HTTP 401, pacing, locking and error mapping);
only the verdict on the status differs from a GET: HTTP 401/403 Refused, 404 Unsupported, 400
Refused (a bad attribute value), 5xx and timeouts Transient. Command-line equivalent:
``curl -X PATCH -H 'Content-Type: application/json' -d BODY https://BMC/PATH``.
"""

from __future__ import annotations

from typing import Any

from gpuwatchd.errors import Refused, Transient, Unsupported
from gpuwatchd.links.redfish import RedfishLink


class RedfishWriteLink(RedfishLink):
    """A RedfishLink that can also PATCH."""

    def patch(self, path: str, body: dict[str, Any]) -> None:
        """PATCH ``body``; renews an expired session once (as ``get`` does)."""
        with self._lock:
            status, _ = self._request(f"PATCH {path}", lambda client: client.patch(
                path, body=body, timeout=self.bmc.timeout_seconds, max_retry=0))
            self._verdict(status, path)

    def _verdict(self, status: int, path: str) -> None:
        where = f"{self.name}: PATCH {path}"
        if status in (200, 202, 204):
            return
        self.errors[f"http_{status}"] += 1
        if status in (400, 401, 403, 405):
            raise Refused(f"{where}: HTTP {status}", status)
        if status == 404:
            raise Unsupported(f"{where}: HTTP 404 (not on this BMC)")
        raise Transient(f"{where}: HTTP {status}")
