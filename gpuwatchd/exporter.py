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
import socket
import ssl
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.process_collector import ProcessCollector

from gpuwatchd import __version__
from gpuwatchd.clock import Clock
from gpuwatchd.model import Collected, Family, Sample, Snapshot

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
REQUEST_TIMEOUT_SECONDS = 10.0  # a client that stalls mid-request is dropped after this
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


def families(snapshot: Snapshot, now_mono: float) -> list[Family]:
    """Every family to expose for ``snapshot`` at ``now_mono``: data, then self-health."""
    merged: dict[str, Family] = {}
    published = [r.collected for r in snapshot.results if not r.is_stale(now_mono)]
    # families the daemon itself publishes with the Snapshot (the fan controller's)
    published += [item for item in snapshot.extra if isinstance(item, Collected)]
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

    def __init__(self, source: Callable[[], Snapshot], clock: Clock) -> None:
        self._source = source
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        yield from to_metrics(families(self._source(), self._clock.monotonic()))


class Renderer:
    """Caches the exposition per (Snapshot, set of stale collectors); adds process_* live."""

    def __init__(self, source: Callable[[], Snapshot], clock: Clock,
                 process_metrics: bool = True) -> None:
        self._source = source
        self._clock = clock
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(SnapshotCollector(self._current, clock))
        self._process: CollectorRegistry | None = None
        if process_metrics:
            self._process = CollectorRegistry(auto_describe=False)
            ProcessCollector(registry=self._process)
        self._lock = threading.Lock()
        self._key: tuple[Any, ...] | None = None
        self._cached = b""
        self._snapshot: Snapshot | None = None
        self._last_served = float("-inf")
        self._scrape_gap = 0.0  # seconds between the last two scrapes

    def _current(self) -> Snapshot:
        assert self._snapshot is not None  # noqa: S101 - set by render() before generate
        return self._snapshot

    def render(self) -> bytes:
        """The full exposition text (served from the cache when the Snapshot is unchanged)."""
        now = self._clock.monotonic()
        if self._last_served > float("-inf"):
            self._scrape_gap = now - self._last_served
        self._last_served = now
        body = self._cached_for(self._source())
        if self._process is not None:
            body += generate_latest(self._process)
        return body

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


class WebConfigLike(Protocol):
    """What the server needs of an exporter-toolkit web config (gpuwatchd.webconfig)."""

    def ssl_context(self) -> Any: ...

    def check_basic_auth(self, authorization: str | None) -> bool: ...

    @property
    def headers(self) -> dict[str, str]: ...


LANDING = """<!doctype html><html><head><title>gpuwatchd</title></head><body>
<h1>gpuwatchd {version}</h1><p>GPU server telemetry and fan control.</p>
<p><a href="{path}">Metrics</a></p></body></html>
"""


def _handler(render: Callable[[], bytes], path: str,
             web: WebConfigLike | None) -> type[BaseHTTPRequestHandler]:
    landing = LANDING.format(version=__version__, path=path).encode()

    class Handler(BaseHTTPRequestHandler):
        server_version = f"gpuwatchd/{__version__}"
        timeout = REQUEST_TIMEOUT_SECONDS

        def setup(self) -> None:
            super().setup()
            # Without TCP_NODELAY the header and body writes meet delayed ACK: measured here
            # 44 ms per GET on loopback instead of 0.5 ms (test-infra.md, Redfish mock).
            if self.connection.family in (socket.AF_INET, socket.AF_INET6):
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_GET(self) -> None:
            self._respond(head=False)

        def do_HEAD(self) -> None:
            self._respond(head=True)

        def _respond(self, head: bool) -> None:
            if web is not None and not web.check_basic_auth(self.headers.get("Authorization")):
                self._send(401, b"Unauthorized\n", "text/plain; charset=utf-8", head,
                           {"WWW-Authenticate": 'Basic realm="gpuwatchd"'})
                return
            route = self.path.split("?", 1)[0]
            if route == path:
                self._send(200, render(), CONTENT_TYPE, head)
            elif route == "/":
                self._send(200, landing, "text/html; charset=utf-8", head)
            else:
                self._send(404, b"Not Found\n", "text/plain; charset=utf-8", head)

        def _send(self, code: int, body: bytes, ctype: str, head: bool,
                  extra: dict[str, str] | None = None) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for key, value in {**(web.headers if web else {}), **(extra or {})}.items():
                self.send_header(key, value)
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("http: %s", format % args)

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    tls: ssl.SSLContext | None = None

    def get_request(self) -> tuple[Any, Any]:
        """Accept; with TLS the handshake runs later, in the connection's own thread.

        Wrapping the listening socket would do the handshake inside accept(), in the one
        thread that serves every client: a peer that connects and never sends a ClientHello
        would stall all scrapes. Here OpenSSL negotiates on the handler's first read, under
        its REQUEST_TIMEOUT_SECONDS.
        """
        conn, addr = self.socket.accept()
        if self.tls is not None:
            conn = self.tls.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
        return conn, addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A failed handshake or a dropped client is routine: log it, no traceback on stderr."""
        if isinstance(sys.exc_info()[1], OSError):  # ssl.SSLError is an OSError
            log.debug("http: connection from %s failed: %s", client_address, sys.exc_info()[1])
            return
        super().handle_error(request, client_address)


class MetricsServer:
    """Serves ``/`` and the telemetry path on each (host, port); port 0 picks a free one."""

    def __init__(self, addresses: list[tuple[str, int]], render: Callable[[], bytes],
                 telemetry_path: str = "/metrics", web: WebConfigLike | None = None) -> None:
        self._addresses = addresses
        self._handler = _handler(render, telemetry_path, web)
        self._web = web
        self._servers: list[_Server] = []

    def start(self) -> None:
        """Bind every address (raising OSError naming it on failure) and serve in threads."""
        for host, port in self._addresses:
            server_cls = type("_S6", (_Server,), {"address_family": socket.AF_INET6}) \
                if ":" in host else _Server
            try:
                server = server_cls((host, port), self._handler)
            except OSError as exc:
                self.stop()
                raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") \
                    from None
            if self._web is not None:
                server.tls = self._web.ssl_context()
            self._servers.append(server)
            threading.Thread(target=server.serve_forever, name=f"http-{host}:{port}",
                             daemon=True).start()

    @property
    def bound(self) -> list[tuple[str, int]]:
        """The (host, port) actually bound, in order."""
        return [(s.server_address[0], s.server_address[1]) for s in self._servers]  # type: ignore[misc]

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()
