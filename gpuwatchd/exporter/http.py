"""The HTTP side of the Prometheus endpoint: ``/`` (landing page) and the telemetry path.

It serves what :class:`gpuwatchd.exporter.render.Renderer` rendered; TLS and basic auth follow
the exporter-toolkit web config (:mod:`gpuwatchd.exporter.webconfig`).
"""

from __future__ import annotations

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
from gpuwatchd.exporter.render import CONTENT_TYPE
from gpuwatchd.slots import Slots

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_SECONDS = 10.0  # a client that stalls mid-request is dropped after this


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

        def parse_request(self) -> bool:
            ok = super().parse_request()
            if ok and isinstance(self.server, _Server):
                self.server.slots.head_received(self.connection)
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

    def _serve_one(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:  # noqa: BLE001 - handle_error sorts routine from bugs
            self.handle_error(request, client_address)
        finally:
            self.slots.release(request)
            self.shutdown_request(request)

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
