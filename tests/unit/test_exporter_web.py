"""The metrics endpoint behind a web config: HTTPS, client certificates, basic auth, headers.

Real sockets on 127.0.0.1 (port 0), certificates from the ``openssl`` command line.
"""

from __future__ import annotations

import base64
import http.client
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest

from gpuwatchd.exporter import webconfig
from gpuwatchd.exporter.http import MetricsServer
from tests.pki import make_pki

BODY = b"gpuwatchd_build_info 1\n"
HASH = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(4)).decode()


def _serve(pki: Path, extra: str) -> Iterator[tuple[str, int]]:
    path = pki / "web-exporter.yml"
    path.write_text("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
                    + extra)
    server = MetricsServer([("127.0.0.1", 0)], lambda: BODY, web=webconfig.load(path))
    server.start()
    try:
        yield server.bound[0]
    finally:
        server.stop()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CA, server and client certificates (tests/pki.py)."""
    try:
        return make_pki(tmp_path_factory.mktemp("pki"))
    except RuntimeError as exc:
        pytest.fail(str(exc))


@pytest.fixture
def tls_auth(pki: Path) -> Iterator[tuple[str, int]]:
    yield from _serve(pki, f"basic_auth_users:\n  prometheus: '{HASH}'\n"
                           "http_server_config:\n  headers:\n    X-Frame-Options: deny\n")


def _get(pki: Path, addr: tuple[str, int], auth: str | None = None,
         cert: bool = False) -> http.client.HTTPResponse:
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    if cert:
        ctx.load_cert_chain(pki / "client.crt", pki / "client.key")
    conn = http.client.HTTPSConnection(addr[0], addr[1], context=ctx, timeout=5)
    headers = {"Authorization": auth} if auth else {}
    conn.request("GET", "/metrics", headers=headers)
    return conn.getresponse()


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_https_with_basic_auth_and_headers(pki: Path, tls_auth: tuple[str, int]) -> None:
    """Right credentials: 200 with the body and the configured header; otherwise 401."""
    ok = _get(pki, tls_auth, _basic("prometheus", "s3cret"))
    assert ok.status == 200 and ok.read() == BODY
    assert ok.getheader("X-Frame-Options") == "deny"
    for auth in (None, _basic("prometheus", "wrong"), _basic("root", "s3cret")):
        denied = _get(pki, tls_auth, auth)
        assert denied.status == 401, auth
        assert denied.getheader("WWW-Authenticate") == 'Basic realm="gpuwatchd"'
        assert BODY not in denied.read()


def test_plain_http_is_refused_on_a_tls_port(tls_auth: tuple[str, int]) -> None:
    """A plain-HTTP client gets a 400 saying why (as Go exporters do), and no metrics."""
    conn = http.client.HTTPConnection(*tls_auth, timeout=5)
    try:
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    assert resp.status == 400 and b"HTTP request to an HTTPS server" in body
    assert BODY not in body


def test_client_certificate_required(pki: Path) -> None:
    """RequireAndVerifyClientCert: the CA's client gets in, a client without a cert does not."""
    for addr in _serve(pki, "  client_auth_type: RequireAndVerifyClientCert\n"
                            "  client_ca_file: ca.crt\n"):
        assert _get(pki, addr, cert=True).status == 200
        with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException)):
            _get(pki, addr, cert=False).read()


def test_a_client_stalled_before_the_handshake_does_not_block_scrapes(
        pki: Path, tls_auth: tuple[str, int]) -> None:
    """A TCP connection that never sends a ClientHello must not hold up the next scrape."""
    stalled = socket.create_connection(tls_auth, timeout=5)
    try:
        time.sleep(0.1)
        start = time.monotonic()
        assert _get(pki, tls_auth, _basic("prometheus", "s3cret")).status == 200
        assert time.monotonic() - start < 2.0
    finally:
        stalled.close()
