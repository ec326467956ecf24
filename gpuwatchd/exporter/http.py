"""The HTTP side of the Prometheus endpoint: ``/`` (landing page) and the telemetry path.

It serves what :class:`gpuwatchd.exporter.render.Renderer` rendered; TLS and basic auth follow
the exporter-toolkit web config (:mod:`gpuwatchd.exporter.webconfig`). HTTP/1.1 with
keep-alive (Prometheus reuses its connection scrape after scrape), gzip when the client sends
``Accept-Encoding: gzip`` (the exposition is compressed once per rendered Snapshot, not per
scrape), one thread per connection in bounded :class:`gpuwatchd.slots.Slots`.

Command-line equivalent: ``curl --compressed -sD- http://127.0.0.1:10045/metrics``.
"""

from __future__ import annotations

import gzip
import logging
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, Protocol

from gpuwatchd import __version__
from gpuwatchd.exporter.render import CONTENT_TYPE, GZIP_LEVEL
from gpuwatchd.slots import Slots

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_SECONDS = 10.0  # a client that stalls mid-request is dropped after this
IDLE_KEEPALIVE_SECONDS = 60.0  # Prometheus scrapes every 15-60 s on the same connection
TLS_HANDSHAKE_RECORD = 0x16  # the first byte of a TLS ClientHello record
BAD_REQUEST_TO_TLS = (b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
                      b"Connection: close\r\n\r\n"
                      b"Client sent an HTTP request to an HTTPS server.\n")


class WebConfigLike(Protocol):
    """What the server needs of an exporter-toolkit web config (gpuwatchd.exporter.webconfig)."""

    def ssl_context(self) -> Any: ...

    def check_basic_auth(self, authorization: str | None) -> bool: ...

    @property
    def headers(self) -> dict[str, str]: ...


LANDING = """<!doctype html><html><head><title>gpuwatchd</title></head><body>
<h1>gpuwatchd {version}</h1><p>GPU server telemetry and fan control.</p>
<p><a href="{path}">Metrics</a></p></body></html>
"""


class Gzipped:
    """The gzip of the last body rendered; recompressed only when the body object changes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._body: bytes | None = None
        self._gz = b""

    def of(self, body: bytes) -> bytes:
        with self._lock:
            if body is not self._body:
                self._gz = gzip.compress(body, GZIP_LEVEL, mtime=0)
                self._body = body
            return self._gz


def accepts_gzip(header: str | None) -> bool:
    """Whether an ``Accept-Encoding`` value admits gzip (``gzip;q=0`` refuses it)."""
    for item in (header or "").split(","):
        coding, _, params = item.strip().partition(";")
        if coding.strip().lower() in ("gzip", "*"):
            q = params.strip().removeprefix("q=").strip() if "q=" in params else "1"
            try:
                return float(q) > 0
            except ValueError:
                return False
    return False


def _handler(render: Callable[[], bytes], render_gzip: Callable[[], bytes] | None, path: str,
             web: WebConfigLike | None) -> type[BaseHTTPRequestHandler]:
    landing = LANDING.format(version=__version__, path=path).encode()
    gzipped = Gzipped()

    def compressed() -> bytes:  # a plain body source: compress each new body object once
        return gzipped.of(render())

    zipped = render_gzip or compressed

    class Handler(BaseHTTPRequestHandler):
        server_version = f"gpuwatchd/{__version__}"

        def version_string(self) -> str:
            return self.server_version  # no interpreter version in the Server: header
        protocol_version = "HTTP/1.1"
        timeout = REQUEST_TIMEOUT_SECONDS

        def setup(self) -> None:
            # Without TCP_NODELAY the header and body writes meet delayed ACK: measured here
            # 44 ms per GET on loopback instead of 0.5 ms (test-infra.md, Redfish mock).
            if self.request.family in (socket.AF_INET, socket.AF_INET6):
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            super().setup()

        def handle_one_request(self) -> None:
            super().handle_one_request()
            if isinstance(self.server, _Server):  # between requests the slot is idle again
                self.server.slots.idle(self.request, time.monotonic())
                self.connection.settimeout(IDLE_KEEPALIVE_SECONDS)

        def parse_request(self) -> bool:
            ok = super().parse_request()
            if isinstance(self.server, _Server):
                self.server.slots.head_received(self.request)
                self.connection.settimeout(REQUEST_TIMEOUT_SECONDS)
            return ok

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
                if accepts_gzip(self.headers.get("Accept-Encoding")):
                    self._send(200, zipped(), CONTENT_TYPE, head,
                               {"Content-Encoding": "gzip", "Vary": "Accept-Encoding"})
                else:
                    self._send(200, render(), CONTENT_TYPE, head, {"Vary": "Accept-Encoding"})
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


class _Server(HTTPServer):
    """One thread per connection, in bounded :class:`Slots` (no unbounded thread pile-up)."""

    allow_reuse_address = True
    request_queue_size = 128  # the kernel's accept queue; socketserver's default is 5
    tls: ssl.SSLContext | None = None
    slots: Slots

    def server_activate(self) -> None:
        self.slots = Slots()
        super().server_activate()

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve in a thread of its own if a slot is free (or can be freed), else close."""
        if not self.slots.admit(request, time.monotonic()):
            log.debug("http: %s refused: all %d connection slots are answering",
                      client_address, self.slots.limit)
            self.shutdown_request(request)
            return
        threading.Thread(target=self._serve_one, args=(request, client_address),
                         name="http-conn", daemon=True).start()

    def _serve_one(self, request: socket.socket, client_address: Any) -> None:
        conn = request
        try:
            secured = self._secured(request)
            if secured is not None:
                conn = secured
                self.finish_request(conn, client_address)
        except Exception:  # noqa: BLE001 - handle_error sorts routine failures from bugs
            self.handle_error(request, client_address)
        finally:
            self.slots.release(conn)
            self.shutdown_request(conn)

    def _secured(self, request: socket.socket) -> socket.socket | None:
        """The connection to speak HTTP on: TLS-wrapped when configured (None: answered).

        The handshake runs here, in the connection's own thread under REQUEST_TIMEOUT_SECONDS:
        done inside accept() a peer that never sends a ClientHello would stall every scrape.
        Plain HTTP sent to the TLS port is answered 400, as Go's net/http does.
        """
        if self.tls is None:
            return request
        request.settimeout(REQUEST_TIMEOUT_SECONDS)
        first = request.recv(1, socket.MSG_PEEK)
        if first and first[0] != TLS_HANDSHAKE_RECORD:
            request.sendall(BAD_REQUEST_TO_TLS)
            log.debug("http: plain HTTP on the TLS port answered 400")
            return None
        tls = self.tls.wrap_socket(request, server_side=True, do_handshake_on_connect=False)
        self.slots.replace(request, tls)
        tls.do_handshake()
        return tls

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A failed handshake or a dropped client is routine: log it, no traceback on stderr."""
        if isinstance(sys.exc_info()[1], OSError):  # ssl.SSLError is an OSError
            log.debug("http: connection from %s failed: %s", client_address, sys.exc_info()[1])
            return
        super().handle_error(request, client_address)


class MetricsServer:
    """Serves ``/`` and the telemetry path on each (host, port); port 0 picks a free one."""

    def __init__(self, addresses: list[tuple[str, int]], render: Callable[[], bytes],
                 telemetry_path: str = "/metrics", web: WebConfigLike | None = None,
                 render_gzip: Callable[[], bytes] | None = None) -> None:
        self._addresses = addresses
        self._handler = _handler(render, render_gzip, telemetry_path, web)
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
