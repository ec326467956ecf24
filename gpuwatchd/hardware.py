"""The injectable roots and handles every collector and driver is built from.

Nothing here opens hardware: the fields are factories and paths. The daemon builds one
``Hardware`` for the real node (:func:`real`) and the simulator builds one for ``--demo``,
tests and benchmarks (``gpuwatchd.sim.node.SimNode.hardware``).

Peers stand in for a BMC's library per BMC name (``bmcs[].name`` in the config): an IPMI
connector (what :class:`gpuwatchd.links.ipmi.IpmiLink` calls instead of python-ipmi) and a
Redfish client factory (what :class:`gpuwatchd.links.redfish.RedfishLink` calls instead of
``redfish.redfish_client``). A BMC without a peer gets the real library.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gpuwatchd.clock import Clock, SystemClock

# gpuwatchd.links.ipmi.Connector: ConnectRequest -> Connection (typed precisely there; the
# links sit above this module, so the peer is typed by its shape here).
IpmiConnector = Callable[[Any], Any]
# gpuwatchd.links.redfish.ClientFactory: redfish.redfish_client's keyword signature.
RedfishClientFactory = Callable[..., Any]


def _real_nvml() -> Any:
    """The nvidia-ml-py module; importing it does not load libnvidia-ml.so.1."""
    # Lazy on purpose: pynvml is a heavy optional third-party library, imported when first
    # needed and never at gpuwatchd import (the only function-level import in this module).
    import pynvml  # noqa: PLC0415

    return pynvml


@dataclass(frozen=True)
class Hardware:
    """Factories for the hardware libraries, plus the clock and filesystem roots."""

    clock: Clock = field(default_factory=SystemClock)
    nvml: Callable[[], Any] = _real_nvml  # returns a pynvml-compatible module object
    # The one NVML session every NVML user shares (GPU and licence collectors, NVML fan
    # driver): a gpuwatchd.links.nvml.NvmlSession made from ``nvml`` by links.nvml.shared, or
    # None: each user its own. Typed there: the links sit above this module (links.nvml
    # checks the type).
    nvml_session: object | None = None
    sysfs_root: str = "/sys"
    demo: bool = False
    ipmi_peers: Mapping[str, IpmiConnector] = field(default_factory=dict)  # BMC name -> peer
    redfish_peers: Mapping[str, RedfishClientFactory] = field(default_factory=dict)
    # The licence watch's roots: a gpuwatchd.licence.sources.LicenceSources, or None for the
    # real node's. Typed there: the licence package sits above this module (the collector
    # checks the type, gpuwatchd.collectors.licence.build).
    licence: object | None = None

    def ipmi_connector(self, bmc_name: str) -> IpmiConnector | None:
        """The IPMI peer standing in for BMC ``bmc_name`` (None: python-ipmi itself)."""
        return self.ipmi_peers.get(bmc_name)

    def redfish_client_factory(self, bmc_name: str) -> RedfishClientFactory | None:
        """The Redfish peer standing in for BMC ``bmc_name`` (None: the redfish library)."""
        return self.redfish_peers.get(bmc_name)


def real() -> Hardware:
    """The real node's hardware."""
    return Hardware()
