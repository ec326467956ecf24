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
import collections.abc
import dataclasses
import hashlib
import os
import re
import ssl
import threading
import types
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, Union, get_args, get_origin

from gpuwatchd.config.files import (
    MAX_CONFIG_BYTES,
    MAX_PEM_BYTES,
    FileRefused,
    check_regular,
    read_regular,
)
from gpuwatchd.config.yamlload import Builder, parse
from gpuwatchd.errors import ConfigError

ClientAuth = Literal["NoClientCert", "RequestClientCert", "RequireAnyClientCert",
                     "VerifyClientCertIfGiven", "RequireAndVerifyClientCert"]
TlsVersion = Literal["TLS10", "TLS11", "TLS12", "TLS13"]

_TLS_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
                 "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
# Python's ssl verifies every certificate it asks for, so Go's "request but do not verify"
# policies have no equivalent; exporter-toolkit itself calls them insecure.
_UNMAPPABLE_AUTH = {"RequestClientCert", "RequireAnyClientCert"}
_VERIFYING_AUTH = {"VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
                   "RequireAndVerifyClientCert": ssl.CERT_REQUIRED}
# The header names exporter-toolkit accepts, and the values it allows where it restricts them.
_HEADERS: dict[str, tuple[str, ...] | None] = {
    "Content-Security-Policy": None, "X-Frame-Options": ("deny", "sameorigin"),
    "X-Content-Type-Options": ("nosniff",), "X-XSS-Protection": None,
    "Strict-Transport-Security": None,
}
_NOT_IMPLEMENTED = {
    "tls_server_config": {"cert": "give cert_file", "key": "give key_file",
                          "client_ca": "give client_ca_file",
                          "client_allowed_sans": "use a dedicated client CA instead",
                          "cipher_suites": "Python's OpenSSL defaults are used",
                          "prefer_server_cipher_suites": "Python's OpenSSL defaults are used",
                          "curve_preferences": "Python's OpenSSL defaults are used"},
    "http_server_config": {"http2": "gpuwatchd serves HTTP/1.1 only"},
    "": {"rate_limit": "put a reverse proxy in front for rate limiting"},
}
_BCRYPT = re.compile(r"^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$")
BCRYPT_COSTS = range(4, 32)  # what bcrypt (and Go's golang.org/x/crypto/bcrypt) accepts
MAX_BCRYPT_COST = 14  # ~0.9 s per check on a 2026 server core (cost 10: ~60 ms)
_MIN_TLS = "TLS12"  # the lowest version OpenSSL 3 negotiates at its default security level
# A valid hash of a random password, checked when the user is unknown so that a wrong user
# name costs the same bcrypt time as a wrong password (no user enumeration by timing).
_DUMMY_HASH = b"$2b$10$ECzae636bsSshZqrHBgQjOI2IC7Gs90xZ0OltnxDgCum7f5bDfCnC"
_CACHE_MAX = 64
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class TlsServerConfig:
    """``tls_server_config:``: the server certificate and the client-certificate policy."""

    cert_file: str
    key_file: str
    client_auth_type: ClientAuth = "NoClientCert"
    client_ca_file: str | None = None
    min_version: TlsVersion = "TLS12"
    max_version: TlsVersion = "TLS13"


@dataclass(frozen=True)
class HttpServerConfig:
    """``http_server_config:``: extra response headers."""

    headers: collections.abc.Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class WebConfigFile:
    """The file's schema, as the loader sees it."""

    tls_server_config: TlsServerConfig | None = None
    http_server_config: HttpServerConfig = field(default_factory=HttpServerConfig)
    basic_auth_users: collections.abc.Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({}))


class _Builder(Builder):
    """The config Builder plus string-to-string mappings (user -> hash, header -> value)."""

    def convert(self, hint: Any, value: Any, path: str, line: int,
                meta: dict[str, Any] | None = None) -> Any:
        if get_origin(hint) is collections.abc.Mapping:
            return self._mapping(hint, value, path, line)
        options = [arg for arg in get_args(hint) if arg is not type(None)]
        if (get_origin(hint) in (Union, types.UnionType) and value is not None
                and len(options) == 1 and dataclasses.is_dataclass(options[0])):
            # An optional section that is present: build it directly so an error inside it
            # keeps its own message (the generic union path would only say "expected ...").
            return self.build(options[0], value, path, line)  # type: ignore[arg-type]
        return super().convert(hint, value, path, line, meta)

    def _mapping(self, hint: Any, value: Any, path: str, line: int) -> Any:
        if value is None:
            return MappingProxyType({})
        if not isinstance(value, dict):
            self.fail(line, path, "expected a mapping")
        key_lines = getattr(value, "key_lines", {})
        out: dict[str, str] = {}
        for key, item in value.items():
            where = key_lines.get(str(key), line)
            if not isinstance(key, str) or not key:
                self.fail(where, path, "keys must be non-empty strings")
            if _CONTROL.search(key) or len(key) > 256:
                self.fail(where, path, "a name contains a control character or is too long")
            out[key] = self.convert(get_args(hint)[1], item, f"{path}.{key}", where)
        return MappingProxyType(out)


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
        ctx.minimum_version = max(_TLS_VERSIONS[tls.min_version], _TLS_VERSIONS[_MIN_TLS])
        ctx.maximum_version = _TLS_VERSIONS[tls.max_version]
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
        ctx.verify_mode = _VERIFYING_AUTH.get(tls.client_auth_type, ssl.CERT_NONE)
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
    data = parse(text, source)
    builder = _Builder(source)
    _reject_not_implemented(data, builder)
    spec = builder.build(WebConfigFile, data)
    _check(spec, data, builder)
    return WebConfig(spec, base or Path.cwd(), source)


def _reject_not_implemented(data: Any, b: Builder) -> None:
    for section, keys in _NOT_IMPLEMENTED.items():
        node = data.get(section) if section and isinstance(data, dict) else data
        if not isinstance(node, dict):
            continue
        for key, advice in keys.items():
            if key in node:
                where = f"{section}.{key}" if section else key
                b.fail(getattr(node, "key_lines", {}).get(key, 0), where,
                       f"exporter-toolkit key not implemented by gpuwatchd ({advice})")


def _check(spec: WebConfigFile, data: Any, b: Builder) -> None:
    tls = spec.tls_server_config
    if tls is not None:
        tls_line = _key_line(data, "tls_server_config")
        if tls.client_auth_type in _UNMAPPABLE_AUTH:
            b.fail(tls_line, "tls_server_config.client_auth_type",
                   f"{tls.client_auth_type} (accept unverified client certificates) is not "
                   "supported; use VerifyClientCertIfGiven or RequireAndVerifyClientCert")
        verifying = tls.client_auth_type in _VERIFYING_AUTH
        if verifying and tls.client_ca_file is None:
            b.fail(tls_line, "tls_server_config.client_ca_file",
                   f"required with client_auth_type: {tls.client_auth_type}")
        if not verifying and tls.client_ca_file is not None:
            b.fail(tls_line, "tls_server_config.client_auth_type",
                   "client_ca_file is set but no client certificate is verified; set "
                   "client_auth_type: RequireAndVerifyClientCert")
        _check_tls_range(tls, data, b)
    headers = data.get("http_server_config", {}) if isinstance(data, dict) else {}
    header_lines = getattr((headers or {}).get("headers"), "key_lines", {})
    for name, value in spec.http_server_config.headers.items():
        where = f"http_server_config.headers.{name}"
        if name not in _HEADERS:
            b.fail(header_lines.get(name, 0), where,
                   f"header not allowed; allowed: {', '.join(_HEADERS)}")
        allowed = _HEADERS[name]
        if allowed is not None and value.lower() not in allowed:
            b.fail(header_lines.get(name, 0), where,
                   f"{value!r} is not one of {', '.join(allowed)}")
    users = data.get("basic_auth_users") if isinstance(data, dict) else None
    user_lines = getattr(users, "key_lines", {})
    for user, digest in spec.basic_auth_users.items():
        if ":" in user:
            b.fail(user_lines.get(user, 0), f"basic_auth_users.{user}",
                   "a user name cannot contain ':'")
        match = _BCRYPT.match(digest)
        if not match:  # the value is a secret: never echo it
            b.fail(user_lines.get(user, 0), f"basic_auth_users.{user}",
                   "not a bcrypt hash ($2y$/$2b$/$2a$, 60 characters); make one with "
                   "htpasswd -nBC 10 \"\" | tr -d ':\\n'")
        _check_cost(match.group(1), user_lines.get(user, 0), f"basic_auth_users.{user}", b)
    if spec.basic_auth_users:
        _import_bcrypt(b, user_lines.get(next(iter(spec.basic_auth_users)), 0))


def _key_line(data: Any, key: str) -> int:
    return int(getattr(data, "key_lines", {}).get(key, 0))


def _check_tls_range(tls: TlsServerConfig, data: Any, b: Builder) -> None:
    """A range this Python's OpenSSL can negotiate: it must reach TLS 1.2, and min <= max."""
    section = data.get("tls_server_config") if isinstance(data, dict) else None
    line = _key_line(data, "tls_server_config")
    min_line = _key_line(section, "min_version") or line
    max_line = _key_line(section, "max_version") or line
    if _TLS_VERSIONS[tls.max_version] < _TLS_VERSIONS[_MIN_TLS]:
        b.fail(max_line, "tls_server_config.max_version",
               f"{tls.max_version} cannot be negotiated: {ssl.OPENSSL_VERSION} refuses TLS 1.0 "
               "and 1.1 at its default security level (every handshake would fail); "
               "use TLS12 or TLS13")
    if "TLS13" in (tls.min_version, tls.max_version) and not ssl.HAS_TLSv1_3:
        b.fail(min_line if tls.min_version == "TLS13" else max_line, "tls_server_config",
               f"TLS13 cannot be negotiated: {ssl.OPENSSL_VERSION} has no TLS 1.3")
    if _TLS_VERSIONS[tls.min_version] > _TLS_VERSIONS[tls.max_version]:
        b.fail(min_line, "tls_server_config.min_version",
               f"{tls.min_version} is above max_version {tls.max_version}")


def _check_cost(cost: str, line: int, where: str, b: Builder) -> None:
    """bcrypt's cost: valid (4-31) and cheap enough to check on every request."""
    if int(cost) not in BCRYPT_COSTS:
        b.fail(line, where, f"bcrypt cost {cost} is not valid "
                            f"({BCRYPT_COSTS.start} to {BCRYPT_COSTS.stop - 1})")
    if int(cost) > MAX_BCRYPT_COST:
        b.fail(line, where, f"bcrypt cost {cost} is above {MAX_BCRYPT_COST}: every request "
                            f"would cost about {0.06 * 2 ** (int(cost) - 10):.0f} s of CPU; "
                            "make the hash with htpasswd -nBC 10")


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


def _import_bcrypt(b: Builder, line: int) -> None:
    try:
        import bcrypt  # noqa: F401, PLC0415 - only needed when basic auth is configured
    except ImportError:
        b.fail(line, "basic_auth_users", "needs the bcrypt module: apt-get install "
                                          "python3-bcrypt (or pip install bcrypt)")


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
