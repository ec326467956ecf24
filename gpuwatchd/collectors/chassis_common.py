"""What the two chassis collectors share: their cadence, stable sensor names, link counters.

chassis_ipmi.py and chassis_redfish.py each turn their protocol into the typed chassis readings
of gpuwatchd.model (BmcReading, FanReading, ChassisTemperature, ..., PsuReading), once; the
metric families are rendered from those readings by gpuwatchd.collectors.chassis_metrics.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Protocol

from gpuwatchd.model import BmcLinkCounters

if TYPE_CHECKING:
    from gpuwatchd.config import BmcConfig, Config

DEADLINE_MARGIN_SECONDS = 0.5  # a tick may take one command timeout plus this
TIMEOUT_MARGIN_SECONDS = 0.3  # a timed-out command ends this long before the deadline


class CountingLink(Protocol):
    """What :func:`link_counters` reads of an IpmiLink or a RedfishLink."""

    @property
    def requests(self) -> int: ...

    @property
    def sessions_opened(self) -> int: ...

    @property
    def errors(self) -> Mapping[str, int]: ...


def link_counters(link: CountingLink, sdr_reads: int | None = None) -> BmcLinkCounters:
    """The link's counters as a reading field (errors sorted by kind)."""
    return BmcLinkCounters(link.requests, link.sessions_opened,
                           tuple(sorted(link.errors.items())), sdr_reads)


def cadence(config: Config, bmc: BmcConfig) -> tuple[float, float, BmcConfig]:
    """(interval, deadline, bmc with its effective per-request timeout) for one BMC.

    The deadline is the interval, or one request timeout plus a margin if shorter. The
    per-request timeout is capped just under the deadline, so a tick whose BMC stopped
    answering still ends in time and reports ``gpuwatchd_bmc_up 0`` itself, instead of
    being cut off by the runner while its last good data ages.
    """
    interval = bmc.interval_seconds or config.interval_seconds
    deadline = min(interval, bmc.timeout_seconds + DEADLINE_MARGIN_SECONDS)
    timeout = min(bmc.timeout_seconds, max(0.1, deadline - TIMEOUT_MARGIN_SECONDS))
    return interval, deadline, replace(bmc, timeout_seconds=timeout)


def unique_names(items: Sequence[tuple[str, ...]]) -> list[str]:
    """Stable unique names from (name, qualifier, further qualifiers...) tuples, in order.

    A name the BMC uses once is kept as it is ("Exhaust Temp"). A name used more than once
    (Dell calls both CPU sensors "Temp") gets its qualifier appended ("Temp 3.1",
    "Temp 3.2": IPMI entity id.instance; for Redfish the chassis or member id). Should that
    still collide, the next qualifier is appended (IPMI: the sensor number as ipmitool
    writes it, NOTE(HPE iLO 4): many "Ambient Temp" on entity 7.1 become "Ambient Temp 7.1
    2Ah", not an order-dependent "#3"); past the last one, " #2", " #3" in order. Names depend
    only on the BMC's own inventory, so they are the same on every start and usable as
    ``bmc:<bmc>:<sensor>`` inputs.
    """
    names = [item[0] for item in items]
    for level in range(1, max((len(i) for i in items), default=1)):
        counts = Counter(names)
        names = [f"{n} {item[level]}".strip() if counts[n] > 1 and len(item) > level else n
                 for n, item in zip(names, items, strict=True)]
    out: list[str] = []
    seen: Counter[str] = Counter()
    for candidate in names:
        seen[candidate] += 1
        out.append(candidate if seen[candidate] == 1 else f"{candidate} #{seen[candidate]}")
    return out
