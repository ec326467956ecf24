"""A Redfish service for the tests: stdlib ThreadingHTTPServer over HTTPS on 127.0.0.1.

It serves a resource tree (tests/fakes/redfish_trees.py: a Dell-like legacy tree, a DMTF-style
modern one) with a SessionService (POST -> 201 + X-Auth-Token + Location, DELETE logs out) and
HTTP basic auth, ``$expand=.($levels=1)`` on collections, and faults a test switches on:
a status code per path (401, 404, 500), a delay per path, a malformed body, expiry of every
session, no SessionService at all. The certificate is generated per test run
(:func:`make_certificate`, with the ``cryptography`` package), so TLS verification is real.

Pitfall (shared/reference/test-infra.md): without TCP_NODELAY a GET costs ~44 ms
(Nagle + delayed ACK between header and body writes); with it, well under 1 ms.
"""

# ruff: noqa: S107 - made-up test passwords, asserted never to leak
from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import secrets
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.redfish_trees import V1, Tree

SESSIONS = f"{V1}/SessionService/Sessions"


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1/localhost; returns (cert.pem, key.pem)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gpuwatchd test BMC")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "bmc-cert.pem", directory / "bmc-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (timed out) mid-answer is expected here: stay quiet."""


class RedfishServer:
    """One service on a free port; start(), then use ``url``; stop() in teardown."""

    def __init__(self, tree: Tree, certificate: tuple[Path, Path] | None, *,
                 username: str = "root", password: str = "Redfish-Pass-3f") -> None:
        self.tree = tree
        self.username, self.password = username, password
        self.certificate = certificate
        self.status: dict[str, int] = {}
        self.delay: dict[str, float] = {}
        self.malformed: set[str] = set()
        self.session_service = True
        self.tokens: dict[str, str] = {}  # token -> session path
        self.deleted: list[str] = []
        self.requests: list[tuple[str, str, str]] = []  # (method, path, auth kind)
        self.lock = threading.Lock()
        self.connections: list[socket.socket] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> None:
        handler = type("Handler", (_Handler,), {"service": self})
        server = _Server(("127.0.0.1", 0), handler)
        if self.certificate is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(self.certificate[0]), str(self.certificate[1]))
            server.socket = ctx.wrap_socket(server.socket, server_side=True)
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True, name="redfish-test-server")
        self._thread.start()

    def stop(self) -> None:
        """Stop listening and cut every open connection (a dead BMC, not a polite one)."""
        with self.lock:
            connections, self.connections = self.connections, []
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)

    def expire_sessions(self) -> None:
        with self.lock:
            self.tokens.clear()

    def gets(self, path: str) -> int:
        with self.lock:
            return sum(1 for m, p, _ in self.requests if m == "GET" and p == path)

    def __enter__(self) -> RedfishServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    service: RedfishServer
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.service.lock:
            self.service.connections.append(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests assert on what they need."""

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None
              ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("OData-Version", "4.0")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _auth(self) -> str:
        svc = self.service
        token = self.headers.get("X-Auth-Token")
        if token:
            return "session" if token in svc.tokens else ""
        basic = self.headers.get("Authorization", "")
        if basic.startswith("Basic "):
            user, _, pw = base64.b64decode(basic[6:]).decode().partition(":")
            return "basic" if (user, pw) == (svc.username, svc.password) else ""
        return ""

    def do_GET(self) -> None:
        svc = self.service
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/") or "/"
        auth = self._auth()
        with svc.lock:
            svc.requests.append(("GET", path, auth or "none"))
        time.sleep(svc.delay.get(path, 0.0))
        if path != V1 and not auth:
            self._send(401, b'{"error": {"message": "unauthorized"}}')
            return
        if path in svc.status:
            self._send(svc.status[path], b'{"error": {"message": "injected"}}')
            return
        if path in svc.malformed:
            self._send(200, b'{"Temperatures": [{"Name": "Inlet", "ReadingCelsius": 2')
            return
        doc = svc.tree.get(path)
        if doc is None:
            self._send(404, b'{"error": {"message": "not found"}}')
            return
        if "$expand" in parse_qs(parts.query) and "Members" in doc:
            doc = dict(doc, Members=[svc.tree.get(m["@odata.id"], m) for m in doc["Members"]])
        self._send(200, json.dumps(doc).encode())

    def do_POST(self) -> None:
        svc = self.service
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        path = urlsplit(self.path).path.rstrip("/")
        with svc.lock:
            svc.requests.append(("POST", path, "none"))
        if path != SESSIONS or not svc.session_service:
            self._send(404, b'{"error": {"message": "not found"}}')
            return
        try:
            creds = json.loads(body)
        except ValueError:
            self._send(400, b"{}")
            return
        if (creds.get("UserName"), creds.get("Password")) != (svc.username, svc.password):
            self._send(401, b'{"error": {"message": "invalid credentials"}}')
            return
        token = secrets.token_hex(16)
        location = f"{SESSIONS}/{len(svc.tokens) + len(svc.deleted) + 1}"
        with svc.lock:
            svc.tokens[token] = location
        self._send(201, json.dumps({"@odata.id": location, "UserName": creds["UserName"]})
                   .encode(), {"X-Auth-Token": token, "Location": location})

    def do_DELETE(self) -> None:
        svc = self.service
        path = urlsplit(self.path).path.rstrip("/")
        token = self.headers.get("X-Auth-Token", "")
        with svc.lock:
            svc.requests.append(("DELETE", path, "session" if token in svc.tokens else "none"))
            if svc.tokens.get(token) == path:
                del svc.tokens[token]
                svc.deleted.append(path)
                ok = True
            else:
                ok = False
        self._send(204 if ok else 401)
