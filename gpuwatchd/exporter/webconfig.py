"""The exporter's web config: TLS, basic auth and response headers, exporter-toolkit format.

The same YAML that ``node_exporter --web.config.file`` reads (exporter-toolkit
``docs/web-configuration.md``), as far as gpuwatchd implements it::

    tls_server_config:
      cert_file: server.crt            # relative paths: relative to this file's directory
      key_file: server.key
      client_auth_type: RequireAndVerifyClientCert
      client_ca_file: clients-ca.crt
      min_version: TLS12
    http_server_config:
      headers: {X-Content-Type-Options: nosniff}
    basic_auth_users:
      prometheus: $2b$10$...           # htpasswd -nBC 10 "" | tr -d ':\\n'

Unknown keys are rejected with file:line like the main config; exporter-toolkit keys that
gpuwatchd does not implement (inline ``cert``/``key``, ``cipher_suites``, ``http2``,
``rate_limit``, ...) are rejected by name rather than silently ignored. The file is read once
at start (exporter-toolkit re-reads it per request): restart the daemon after changing it.

Stricter than exporter-toolkit where its choice is unsafe (issue 10): header names and values
must not contain control characters (a CR/LF would inject a header into every response); a
bcrypt cost must be 4-31 (what bcrypt accepts) and at most :data:`MAX_BCRYPT_COST` (14, about
1 s of CPU per check here; cost 31 pinned a core for every request naming that user; the
toolkit's ``htpasswd`` advice is 10); the TLS range must reach TLS 1.2 (OpenSSL 3 refuses
TLS 1.0 and 1.1 at its default security level, so a TLS10-TLS11 range fails every handshake)
and a lower ``min_version`` means TLS 1.2.
A request costs at most one bcrypt check and a verified password is cached by its SHA-256, so
a scrape every 15 s costs one bcrypt in all. This file, and the certificate, key and CA files
it names, must be regular files (a FIFO or a device is refused, never waited on), and an error
never quotes the file when it is not a web config at all.

Command-line equivalent of a scrape through it:
``curl --cacert ca.crt -u prometheus:PASSWORD https://HOST:10045/metrics``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import ssl
import threading
from pathlib import Path

from gpuwatchd.config.files import (
    MAX_CONFIG_BYTES,
    MAX_PEM_BYTES,
    FileRefused,
    check_regular,
    read_regular,
)
from gpuwatchd.errors import ConfigError
from gpuwatchd.exporter.webconfig_schema import (
    BCRYPT_COSTS,
    MAX_BCRYPT_COST,
    MIN_TLS,
    TLS_VERSIONS,
    VERIFYING_AUTH,
    HttpServerConfig,
    TlsServerConfig,
    WebConfigFile,
    parse_spec,
)

__all__ = ["BCRYPT_COSTS", "MAX_BCRYPT_COST", "HttpServerConfig", "TlsServerConfig",
           "WebConfig", "WebConfigFile", "load", "loads"]

# A valid hash of a random password, checked when the user is unknown so that a wrong user
# name costs the same bcrypt time as a wrong password (no user enumeration by timing).
_DUMMY_HASH = b"$2b$10$ECzae636bsSshZqrHBgQjOI2IC7Gs90xZ0OltnxDgCum7f5bDfCnC"
_CACHE_MAX = 64


class WebConfig:
    """A loaded web config: what the HTTP server needs per connection and per request."""

    def __init__(self, spec: WebConfigFile, base: Path, source: str) -> None:
        self.spec = spec
        self.source = source
        self._base = base
        self._users = {user: digest.encode() for user, digest in spec.basic_auth_users.items()}
        self._good: dict[tuple[str, bytes], bool] = {}
        self._lock = threading.Lock()

    @property
    def tls(self) -> bool:
        """True if the endpoint serves HTTPS."""
        return self.spec.tls_server_config is not None

    @property
    def auth_required(self) -> bool:
        """True if requests need basic auth."""
        return bool(self._users)

    @property
    def headers(self) -> dict[str, str]:
        """Extra headers to add to every response (a copy, in file order)."""
        return dict(self.spec.http_server_config.headers)

    def path(self, name: str) -> Path:
        """A file named in the config: relative names are relative to the config's directory."""
        candidate = Path(name)
        return candidate if candidate.is_absolute() else self._base / candidate

    def ssl_context(self) -> ssl.SSLContext | None:
        """A server SSLContext for the configured certificate and client policy (None: HTTP).

        Raises ConfigError naming the file when a certificate or key cannot be loaded.
        """
        tls = self.spec.tls_server_config
        if tls is None:
            return None
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        # TLS10/TLS11 as the minimum mean TLS12 here: OpenSSL 3 would not negotiate them
        # anyway, and setting them is deprecated in Python 3.10+.
        ctx.minimum_version = max(TLS_VERSIONS[tls.min_version], TLS_VERSIONS[MIN_TLS])
        ctx.maximum_version = TLS_VERSIONS[tls.max_version]
        cert, key = self.path(tls.cert_file), self.path(tls.key_file)
        try:
            for what, name in (("cert_file", cert), ("key_file", key)):
                _check_file(self.source, what, name)
            ctx.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"{self.source}: tls_server_config: cannot load cert_file {cert} "
                              f"with key_file {key}: {_reason(exc)}") from None
        if tls.client_ca_file is not None:
            ca = self.path(tls.client_ca_file)
            _check_file(self.source, "client_ca_file", ca)
            try:
                ctx.load_verify_locations(cafile=ca)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(f"{self.source}: tls_server_config.client_ca_file: cannot "
                                  f"load {ca}: {_reason(exc)}") from None
        ctx.verify_mode = VERIFYING_AUTH.get(tls.client_auth_type, ssl.CERT_NONE)
        return ctx

    def check_basic_auth(self, authorization: str | None) -> bool:
        """True if the request may proceed: no users configured, or valid ``Basic`` creds.

        A success is cached (user + SHA-256 of the password) so that a scrape every 15 s does
        not pay bcrypt's ~70 ms at cost 10 each time; failures are never cached.
        """
        if not self._users:
            return True
        creds = _parse_basic(authorization)
        if creds is None:
            return False
        user, password = creds
        key = (user, hashlib.sha256(password).digest())
        with self._lock:
            if key in self._good:
                return True
        digest = self._users.get(user)
        ok = _checkpw(password, digest if digest is not None else _DUMMY_HASH)
        if not ok or digest is None:
            return False
        with self._lock:
            if len(self._good) >= _CACHE_MAX:
                self._good.clear()
            self._good[key] = True
        return True


def load(path: str | Path) -> WebConfig:
    """Read and validate a web config file; ConfigError names file:line: key on any problem.

    The certificate, key and client CA are loaded once here, so a bad file fails at start
    (and in ``gpuwatchd --check-config``), not at the first scrape.
    """
    source = str(path)
    try:
        text = read_regular(path, MAX_CONFIG_BYTES).decode("utf-8")
    except FileRefused as exc:
        raise ConfigError(f"{source}: cannot read the web config file: {exc.problem}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: not UTF-8 text (byte {exc.start})") from None
    config = loads(text, source, Path(path).resolve().parent)
    config.ssl_context()
    return config


def loads(text: str, source: str = "<string>", base: Path | None = None) -> WebConfig:
    """Validate web config text (no file access); ``base`` anchors relative file names."""
    return WebConfig(parse_spec(text, source), base or Path.cwd(), source)

def _check_file(source: str, key: str, path: Path) -> None:
    """A certificate, key or CA file: a regular file, before OpenSSL reads (or blocks on) it.

    A missing or unreadable file is left to OpenSSL, whose error names the pair of files.
    """
    try:
        os.stat(path)
    except OSError:
        return
    try:
        check_regular(path, MAX_PEM_BYTES)
    except FileRefused as exc:
        raise ConfigError(f"{source}: tls_server_config.{key}: cannot load {path}: "
                          f"{exc.problem}") from None

def _checkpw(password: bytes, digest: bytes) -> bool:
    import bcrypt  # noqa: PLC0415 - imported at load time already (see _import_bcrypt)

    try:
        return bool(bcrypt.checkpw(password, digest))
    except ValueError:  # malformed hash: validated at load, so only a corrupt dummy lands here
        return False


def _parse_basic(authorization: str | None) -> tuple[str, bytes] | None:
    if not authorization:
        return None
    scheme, _, payload = authorization.strip().partition(" ")
    if scheme.lower() != "basic" or not payload:
        return None
    try:
        decoded = base64.b64decode(payload.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(b":")
    if not sep:
        return None
    try:
        return user.decode("utf-8"), password
    except UnicodeDecodeError:
        return None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)
