"""The exporter-toolkit web config: schema errors with file:line, basic auth, real TLS handshakes.

Certificates are made per session with the ``openssl`` command line (tests/pki.py);
handshakes run over a socketpair, so no port is opened.
"""

from __future__ import annotations

import base64
import os
import socket
import ssl
import threading
from pathlib import Path

import bcrypt
import pytest

from gpuwatchd.errors import ConfigError
from gpuwatchd.exporter import webconfig
from tests.pki import make_pki

PASSWORD = b"correct horse"
HASH = bcrypt.hashpw(PASSWORD, bcrypt.gensalt(4)).decode()  # cost 4: fast tests


def _basic(user: str, password: bytes) -> str:
    return "Basic " + base64.b64encode(user.encode() + b":" + password).decode()


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server cert for 127.0.0.1 and a client cert, all signed by the CA."""
    try:
        return make_pki(tmp_path_factory.mktemp("pki"))
    except RuntimeError as exc:
        pytest.fail(str(exc))


def _write(directory: Path, text: str) -> Path:
    path = directory / "web.yml"
    path.write_text(text)
    return path


def _handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> bool:
    """True if a TLS handshake between the two contexts succeeds (over a socketpair)."""
    a, b = socket.socketpair()
    a.settimeout(5)
    b.settimeout(5)
    result: dict[str, bool] = {}

    def serve() -> None:
        try:
            with server_ctx.wrap_socket(a, server_side=True) as tls:
                tls.sendall(b"x")
                result["server"] = True
        except (ssl.SSLError, OSError):
            result["server"] = False

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with client_ctx.wrap_socket(b, server_hostname="127.0.0.1") as tls:
            ok = tls.recv(1) == b"x"
    except (ssl.SSLError, OSError):
        ok = False
    thread.join(5)
    return ok and result.get("server", False)


def _client(pki: Path, cert: bool, max_version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    if cert:
        ctx.load_cert_chain(pki / "client.crt", pki / "client.key")
    if max_version is not None:
        ctx.maximum_version = max_version
    return ctx


def test_empty_file_means_plain_http_without_auth() -> None:
    """An empty web config: no TLS, no auth, no extra headers."""
    config = webconfig.loads("", "web.yml")
    assert config.ssl_context() is None
    assert not config.tls and not config.auth_required
    assert config.check_basic_auth(None) is True
    assert config.headers == {}


@pytest.mark.parametrize(("text", "expected"), [
    ("tls_server_conf:\n  cert_file: a\n",
     "web.yml:1: tls_server_conf: unknown key (did you mean 'tls_server_config'?)"),
    ("tls_server_config:\n  cert_file: a\n  key_file: b\n  min_versoin: TLS13\n",
     "web.yml:4: tls_server_config.min_versoin: unknown key (did you mean 'min_version'?)"),
    ("tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS14\n",
     "web.yml:4: tls_server_config.min_version: 'TLS14' is not one of"),
    ("tls_server_config:\n  key_file: b\n",
     "web.yml:2: tls_server_config.cert_file: required key is missing"),
    ("http_server_config:\n  http2: false\n",
     "web.yml:2: http_server_config.http2: exporter-toolkit key not implemented by gpuwatchd"),
    ("tls_server_config:\n  cert: |\n    PEM\n",
     "web.yml:2: tls_server_config.cert: exporter-toolkit key not implemented"),
    ("rate_limit:\n  burst: 3\n", "web.yml:1: rate_limit: exporter-toolkit key not implemented"),
    ("http_server_config:\n  headers:\n    X-Powered-By: me\n",
     "web.yml:3: http_server_config.headers.X-Powered-By: header not allowed"),
    ("http_server_config:\n  headers:\n    X-Frame-Options: allow-from x\n",
     "web.yml:3: http_server_config.headers.X-Frame-Options: 'allow-from x' is not one of"),
    ("tls_server_config:\n  cert_file: a\n  key_file: b\n"
     "  client_auth_type: RequireAndVerifyClientCert\n",
     "tls_server_config.client_ca_file: required with client_auth_type"),
    ("tls_server_config:\n  cert_file: a\n  key_file: b\n  client_ca_file: c\n",
     "client_ca_file is set but no client certificate is verified"),
    ("tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: RequestClientCert\n",
     "RequestClientCert (accept unverified client certificates) is not supported"),
    ("tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS13\n"
     "  max_version: TLS12\n", "TLS13 is above max_version TLS12"),
    ("basic_auth_users:\n  alice: 5\n", "web.yml:2: basic_auth_users.alice: expected a non-empty"),
    ("basic_auth_users:\n  'a:b': " + HASH + "\n", "a user name cannot contain ':'"),
])
def test_bad_config_names_line_and_key(text: str, expected: str) -> None:
    """Every rejected input names file:line: key path and says what is wrong."""
    with pytest.raises(ConfigError) as info:
        webconfig.loads(text, "web.yml")
    assert expected in str(info.value)


def test_plaintext_password_is_rejected_without_echoing_it() -> None:
    """A password written where a bcrypt hash belongs is refused and never printed back."""
    with pytest.raises(ConfigError) as info:
        webconfig.loads("basic_auth_users:\n  alice: hunter2-secret\n", "web.yml")
    assert "web.yml:2: basic_auth_users.alice: not a bcrypt hash" in str(info.value)
    assert "hunter2" not in str(info.value)


def test_basic_auth_accepts_only_the_right_password() -> None:
    """Right user and password pass; wrong password, unknown user and junk headers do not."""
    config = webconfig.loads(f"basic_auth_users:\n  prometheus: '{HASH}'\n", "web.yml")
    assert config.auth_required
    assert config.check_basic_auth(_basic("prometheus", PASSWORD)) is True
    assert config.check_basic_auth(_basic("prometheus", PASSWORD)) is True  # cached path
    assert config.check_basic_auth(_basic("prometheus", b"wrong")) is False
    assert config.check_basic_auth(_basic("mallory", PASSWORD)) is False
    assert config.check_basic_auth(_basic("prometheus", PASSWORD + b"x")) is False
    for junk in (None, "", "Basic", "Bearer abc", "Basic !!!notbase64",
                 "Basic " + base64.b64encode(b"no-colon").decode()):
        assert config.check_basic_auth(junk) is False, junk


def test_apache_2y_hashes_work() -> None:
    """Hashes from ``htpasswd -nBC 10`` start with $2y$; they must verify like $2b$."""
    digest = "$2y$" + HASH[4:]
    config = webconfig.loads(f"basic_auth_users:\n  alice: '{digest}'\n", "web.yml")
    assert config.check_basic_auth(_basic("alice", PASSWORD)) is True
    assert config.check_basic_auth(_basic("alice", b"nope")) is False


def test_headers_are_returned_in_order() -> None:
    """Allowed headers come back, in file order, for every response."""
    config = webconfig.loads("http_server_config:\n  headers:\n    X-Content-Type-Options: "
                             "nosniff\n    X-Frame-Options: DENY\n", "web.yml")
    assert list(config.headers.items()) == [("X-Content-Type-Options", "nosniff"),
                                            ("X-Frame-Options", "DENY")]


def test_tls_server_handshake_with_relative_paths(pki: Path) -> None:
    """cert_file/key_file relative to the config's directory; a client trusting the CA connects."""
    path = _write(pki, "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n")
    config = webconfig.load(path)
    ctx = config.ssl_context()
    assert ctx is not None and ctx.verify_mode == ssl.CERT_NONE
    assert _handshake(ctx, _client(pki, cert=False))


def test_client_certificates_required_and_verified(pki: Path) -> None:
    """RequireAndVerifyClientCert: no client cert fails the handshake; the CA's client passes."""
    path = _write(pki, f"tls_server_config:\n  cert_file: {pki}/server.crt\n"
                       f"  key_file: {pki}/server.key\n  client_ca_file: ca.crt\n"
                       "  client_auth_type: RequireAndVerifyClientCert\n")
    config = webconfig.load(path)
    ctx = config.ssl_context()
    assert ctx is not None and ctx.verify_mode == ssl.CERT_REQUIRED
    assert _handshake(ctx, _client(pki, cert=True))
    assert not _handshake(config.ssl_context(), _client(pki, cert=False))  # type: ignore[arg-type]


def test_min_version_refuses_older_clients(pki: Path) -> None:
    """min_version: TLS13 refuses a client capped at TLS 1.2."""
    path = _write(pki, "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
                       "  min_version: TLS13\n")
    ctx = webconfig.load(path).ssl_context()
    assert ctx is not None
    assert not _handshake(ctx, _client(pki, cert=False, max_version=ssl.TLSVersion.TLSv1_2))
    assert _handshake(ctx, _client(pki, cert=False))


def test_unloadable_key_names_the_files(pki: Path) -> None:
    """A key that does not match (or is missing) fails at load, naming the files."""
    path = _write(pki, "tls_server_config:\n  cert_file: server.crt\n  key_file: client.key\n")
    with pytest.raises(ConfigError, match=r"web.yml: tls_server_config: cannot load cert_file "
                                          r".*server.crt with key_file .*client.key"):
        webconfig.load(path)
    path = _write(pki, "tls_server_config:\n  cert_file: server.crt\n  key_file: missing.key\n")
    with pytest.raises(ConfigError, match=r"missing\.key"):
        webconfig.load(path)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    """A web config path that does not exist is a ConfigError, not a traceback."""
    with pytest.raises(ConfigError, match="cannot read the web config file"):
        webconfig.load(tmp_path / "absent.yml")


# -- issue 10: what the web config must refuse -------------------------------------------

SECRET = "hunter2-Sup3r"  # noqa: S105 - made up, asserted never to be printed


@pytest.mark.parametrize(("text", "expected"), [
    ("http_server_config:\n  headers:\n    Content-Security-Policy: \"default-src 'self'\\r\\n"
     "Set-Cookie: a=b\"\n", "web.yml:3: http_server_config.headers.Content-Security-Policy: "
                            "contains a control character (#x000d)"),
    ("http_server_config:\n  headers:\n    Strict-Transport-Security: \"max-age=1\\nX: y\"\n",
     "headers.Strict-Transport-Security: contains a control character (#x000a)"),
    ("http_server_config:\n  headers:\n    \"X-Frame-Options\\r\\nSet-Cookie\": deny\n",
     "web.yml:3: http_server_config.headers: a name contains a control character"),
    ("basic_auth_users:\n  alice: '" + HASH.replace("$04$", "$31$") + "'\n",
     "web.yml:2: basic_auth_users.alice: bcrypt cost 31 is above 14"),
    ("basic_auth_users:\n  alice: '" + HASH.replace("$04$", "$17$") + "'\n",
     "basic_auth_users.alice: bcrypt cost 17 is above 14"),
    ("basic_auth_users:\n  alice: '" + HASH.replace("$04$", "$99$") + "'\n",
     "basic_auth_users.alice: bcrypt cost 99 is not valid (4 to 31)"),
    ("basic_auth_users:\n  alice: '" + HASH.replace("$04$", "$00$") + "'\n",
     "basic_auth_users.alice: bcrypt cost 00 is not valid (4 to 31)"),
    ("basic_auth_users:\n  alice: '" + HASH.replace("$04$", "$03$") + "'\n",
     "bcrypt cost 03 is not valid"),
    ("tls_server_config:\n  cert_file: a\n  key_file: b\n  max_version: TLS11\n",
     "web.yml:4: tls_server_config.max_version: TLS11 cannot be negotiated"),
    ("tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS10\n"
     "  max_version: TLS10\n", "tls_server_config.max_version: TLS10 cannot be negotiated"),
    ("tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS13\n"
     "  max_version: TLS12\n", "web.yml:4: tls_server_config.min_version: TLS13 is above "
                               "max_version TLS12"),
])
def test_web_config_refuses_injection_slow_hashes_and_dead_tls_ranges(
        text: str, expected: str) -> None:
    """CRLF in a header injected Set-Cookie into every response; cost 31 pinned a core per
    request; a TLS 1.0-1.1 range made every handshake fail (logged at debug only)."""
    with pytest.raises(ConfigError) as info:
        webconfig.loads(text, "web.yml")
    assert expected in str(info.value)
    assert "\r" not in str(info.value) and "\n" not in str(info.value)


def test_the_documented_costs_are_accepted() -> None:
    """exporter-toolkit's default cost 10, htpasswd's 5 and the highest allowed, 14."""
    for cost in ("05", "10", "14"):
        digest = HASH.replace("$04$", f"${cost}$")
        assert webconfig.loads(f"basic_auth_users:\n  a: '{digest}'\n").auth_required


def test_min_tls10_up_to_tls12_is_accepted(pki: Path) -> None:
    path = _write(pki, "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
                       "  min_version: TLS10\n  max_version: TLS12\n")
    ctx = webconfig.load(path).ssl_context()
    assert ctx is not None and ctx.minimum_version == ssl.TLSVersion.TLSv1_2


def test_one_bcrypt_per_request_and_none_for_a_repeated_scrape(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The per-request budget: a good password costs one bcrypt once, then a cached hash;
    each wrong one costs exactly one (failures are not cached, so no oracle is kept)."""
    config = webconfig.loads(f"basic_auth_users:\n  prometheus: '{HASH}'\n", "web.yml")
    calls: list[bytes] = []
    real = webconfig._checkpw

    def counting(password: bytes, digest: bytes) -> bool:
        calls.append(password)
        return real(password, digest)

    monkeypatch.setattr(webconfig, "_checkpw", counting)
    for _ in range(50):
        assert config.check_basic_auth(_basic("prometheus", PASSWORD))
    assert len(calls) == 1
    for i in range(5):
        assert not config.check_basic_auth(_basic("prometheus", b"wrong%d" % i))
    assert len(calls) == 6


def test_web_config_file_must_be_a_regular_file(tmp_path: Path) -> None:
    """A FIFO hung the daemon and --check-config; /dev/zero ran out of memory."""
    fifo = tmp_path / "web.fifo"
    os.mkfifo(fifo)
    for path, problem in ((fifo, "it is a FIFO (named pipe), not a regular file"),
                          (Path("/dev/zero"), "it is a character device, not a regular file"),
                          (tmp_path, "it is a directory, not a regular file")):
        with pytest.raises(ConfigError) as info:
            webconfig.load(path)
        assert str(info.value) == f"{path}: cannot read the web config file: {problem}"


def test_certificate_files_must_be_regular_files(pki: Path, tmp_path: Path) -> None:
    """OpenSSL would block on a FIFO named as cert_file, key_file or client_ca_file."""
    fifo = tmp_path / "cert.fifo"
    os.mkfifo(fifo)
    for text in (f"tls_server_config:\n  cert_file: {fifo}\n  key_file: {pki}/server.key\n",
                 f"tls_server_config:\n  cert_file: {pki}/server.crt\n  key_file: {fifo}\n",
                 f"tls_server_config:\n  cert_file: {pki}/server.crt\n"
                 f"  key_file: {pki}/server.key\n  client_ca_file: {fifo}\n"
                 "  client_auth_type: RequireAndVerifyClientCert\n"):
        path = _write(tmp_path, text)
        with pytest.raises(ConfigError, match=rf"{fifo}: .*it is a FIFO"):
            webconfig.load(path)


@pytest.mark.parametrize("content", [
    f"root:$6${SECRET}$x:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n",  # /etc/shadow
    f"{SECRET}\n", f"{SECRET}: x\n", f"- {SECRET}\n", f"[{SECRET}\n", f"@{SECRET}\n",
    f"!{SECRET} x\n", f"{SECRET}: [\n",
])
def test_a_web_config_that_is_not_one_is_never_quoted(tmp_path: Path, content: str) -> None:
    """`web_config_file: ../../../../etc/shadow` printed shadow's first line (as root)."""
    path = tmp_path / "shadow"
    path.write_text(content)
    with pytest.raises(ConfigError) as info:
        webconfig.load(path)
    assert str(path) in str(info.value)
    assert SECRET not in str(info.value) and "Sup3r" not in str(info.value), str(info.value)
