"""The Prometheus endpoint: renders the latest Snapshot, never touches hardware.

A scrape costs the same with a dead BMC or a hung GPU as with healthy ones: the exposition is
rendered once per published Snapshot (and again only when a collector turns stale) and served
from that cache. Series of a collector whose last good data is older than its stale limit are
dropped; its ``gpuwatchd_collector_success``/``_duration_seconds``/
``gpuwatchd_last_update_timestamp_seconds`` stay, so the staleness itself is visible.

Command-line equivalent: ``curl -s http://127.0.0.1:10045/metrics``.
"""

from __future__ import annotations

import logging
import platform
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.process_collector import ProcessCollector

from gpuwatchd import __version__
from gpuwatchd.clock import Clock
from gpuwatchd.control import metrics as control_metrics
from gpuwatchd.exporter.detail import Detail, trim
from gpuwatchd.model import Family, Sample, Snapshot

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
GZIP_LEVEL = 6  # measured: 87 kB -> 8.7 kB at 8 GPUs; level 9 saves little at twice the CPU
GZIP_WBITS = 16 + zlib.MAX_WBITS  # zlib writes the gzip header and trailer (RFC 1952)
PRERENDER_WHILE_SCRAPED_SECONDS = 120.0  # pre-render per tick while a scraper is around

_SELF_HELP = {
    "gpuwatchd_collector_success": "1 if the collector's last attempt succeeded, else 0.",
    "gpuwatchd_collector_duration_seconds": "How long the collector's last attempt took.",
    "gpuwatchd_last_update_timestamp_seconds": "When the collector last succeeded (Unix time); "
                                               "its series are cached between updates.",
}

BUILD_INFO = Family("gpuwatchd_build_info", "gauge", "gpuwatchd's version; always 1.",
                    (Sample((("version", __version__),
                             ("pythonversion", platform.python_version())), 1.0),))
NAMES = (*_SELF_HELP, BUILD_INFO.name)  # the metric names defined here (self-health)


def families(snapshot: Snapshot, now_mono: float) -> list[Family]:
    """Every family to expose for ``snapshot`` at ``now_mono``: data, then self-health."""
    merged: dict[str, Family] = {}
    published = [r.collected for r in snapshot.results if not r.is_stale(now_mono)]
    if snapshot.control is not None:  # the fan controller's zones and driver
        control = snapshot.control
        published.append(control_metrics.render(list(control.zones), control.driver,
                                                 control.others))
    for collected in published:
        for fam in collected.families:
            old = merged.get(fam.name)
            merged[fam.name] = fam if old is None else Family(
                fam.name, fam.kind, fam.help, old.samples + fam.samples)
    out = [BUILD_INFO]
    out.extend(merged.values())
    out.extend(_self_health(snapshot))
    return out


def _self_health(snapshot: Snapshot) -> list[Family]:
    success, duration, updated = [], [], []
    for res in snapshot.results:
        lb = (("collector", res.name),)
        success.append(Sample(lb, 1.0 if res.ok else 0.0))
        duration.append(Sample(lb, res.duration_seconds))
        if res.updated_wall > 0.0:
            updated.append(Sample(lb, res.updated_wall))
    names = list(_SELF_HELP)
    return [Family(name, "gauge", _SELF_HELP[name], tuple(samples))
            for name, samples in zip(names, (success, duration, updated), strict=True) if samples]


def to_metrics(fams: Iterable[Family]) -> Iterator[Metric]:
    """Plain families -> prometheus_client Metric objects (counters keep ``_total``)."""
    for fam in fams:
        base = fam.name[: -len("_total")] if fam.kind == "counter" else fam.name
        metric = Metric(base, fam.help, fam.kind)
        for sample in fam.samples:
            metric.add_sample(fam.name, dict(sample.labels), sample.value)
        yield metric


class SnapshotCollector:
    """A prometheus_client custom collector over whatever Snapshot ``source`` returns."""

    def __init__(self, source: Callable[[], Snapshot], clock: Clock,
                 detail: Detail = Detail.FULL) -> None:
        self._source = source
        self._clock = clock
        self._detail = detail

    def collect(self) -> Iterator[Metric]:
        yield from to_metrics(trim(families(self._source(), self._clock.monotonic()),
                                   self._detail))


class Renderer:
    """Caches the exposition per (Snapshot, set of stale collectors); adds process_* live.

    ``detail``: the series budget (gpuwatchd.exporter.detail); the daemon passes
    ``exporter.detail`` (default: the trimmed set), FULL here is everything rendered.
    """

    def __init__(self, source: Callable[[], Snapshot], clock: Clock,
                 process_metrics: bool = True, detail: Detail = Detail.FULL) -> None:
        self._source = source
        self._clock = clock
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(SnapshotCollector(self._current, clock, detail))
        self._process: CollectorRegistry | None = None
        if process_metrics:
            self._process = CollectorRegistry(auto_describe=False)
            ProcessCollector(registry=self._process)
        self._lock = threading.RLock()
        self._key: tuple[Any, ...] | None = None
        self._cached = b""
        self._gz_of: bytes | None = None
        self._gz_head = b""  # the Snapshot's part, compressed: a gzip stream left open
        self._gz_state: Any = None  # the zlib compressor after that part (copied per scrape)
        self._snapshot: Snapshot | None = None
        self._last_served = float("-inf")
        self._scrape_gap = 0.0  # seconds between the last two scrapes

    def _current(self) -> Snapshot:
        assert self._snapshot is not None  # noqa: S101 - set by render() before generate
        return self._snapshot

    def render(self) -> bytes:
        """The full exposition text (served from the cache when the Snapshot is unchanged)."""
        self._served()
        body = self._cached_for(self._source())
        if self._process is not None:
            body += generate_latest(self._process)
        return body

    def render_gzip(self) -> bytes:
        """The same exposition as one gzip member: the Snapshot's part is compressed once per
        rendering and the compressor's state kept; each scrape continues a copy of it with the
        live ``process_*`` series and closes the stream. One member, because curl (7.88 here) stops
        at the end of the first member of a multi-member body and drops the rest (seen here:
        ``curl --compressed`` lost every process_* series and exited 23)."""
        self._served()
        snapshot = self._source()
        with self._lock:
            body = self._cached_for(snapshot)
            if self._gz_of is not body:
                state = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, GZIP_WBITS)
                self._gz_head, self._gz_state, self._gz_of = state.compress(body), state, body
            head, tail = self._gz_head, self._gz_state.copy()
        live = generate_latest(self._process) if self._process is not None else b""
        return head + tail.compress(live) + tail.flush()

    def _served(self) -> None:
        now = self._clock.monotonic()
        if self._last_served > float("-inf"):
            self._scrape_gap = now - self._last_served
        self._last_served = now

    def refresh(self, lead_seconds: float = 0.0) -> None:
        """Render a freshly published Snapshot now, off the scrape path, if a scrape is near.

        generate_latest costs ~9 us a sample (3.6 ms for 8 GPUs here). Done in the loop thread
        right after the tick, a scrape finds the text ready instead of paying for it. Scrapers
        come at a steady period (Prometheus' scrape_interval), so only the ticks within
        ``lead_seconds`` of the next expected scrape render ahead (at a 15 s scrape and a 1 s
        tick: 2-3 renders a scrape, not 15); with no scrape for
        :data:`PRERENDER_WHILE_SCRAPED_SECONDS`, none do.
        """
        since = self._clock.monotonic() - self._last_served
        if since >= PRERENDER_WHILE_SCRAPED_SECONDS or since < self._scrape_gap - lead_seconds:
            return
        self._cached_for(self._source())

    def _cached_for(self, snapshot: Snapshot) -> bytes:
        now = self._clock.monotonic()
        key = (snapshot.seq, id(snapshot), tuple(r.is_stale(now) for r in snapshot.results))
        with self._lock:
            if key != self._key:
                self._snapshot = snapshot
                self._cached = generate_latest(self._registry)
                self._key = key
            return self._cached
