"""The exporter-toolkit web config's schema and checks (``gpuwatchd.exporter.webconfig``).

What the file may say, and everything refused at load with ``file:line: key`` (issue 10:
control characters in headers, bcrypt costs, TLS ranges that cannot be negotiated).
"""

from __future__ import annotations

import collections.abc
import dataclasses
import re
import ssl
import types
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, Union, get_args, get_origin

from gpuwatchd.config.yamlload import Builder, parse

ClientAuth = Literal["NoClientCert", "RequestClientCert", "RequireAnyClientCert",
                     "VerifyClientCertIfGiven", "RequireAndVerifyClientCert"]
TlsVersion = Literal["TLS10", "TLS11", "TLS12", "TLS13"]

TLS_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
                "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
# Python's ssl verifies every certificate it asks for, so Go's "request but do not verify"
# policies have no equivalent; exporter-toolkit itself calls them insecure.
_UNMAPPABLE_AUTH = {"RequestClientCert", "RequireAnyClientCert"}
VERIFYING_AUTH = {"VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
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
MIN_TLS = "TLS12"  # the lowest version OpenSSL 3 negotiates at its default security level
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


def parse_spec(text: str, source: str) -> WebConfigFile:
    """Parse and validate web config text (no file access); ConfigError names file:line: key."""
    data = parse(text, source)
    builder = _Builder(source)
    _reject_not_implemented(data, builder)
    spec = builder.build(WebConfigFile, data)
    _check(spec, data, builder)
    return spec



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
        verifying = tls.client_auth_type in VERIFYING_AUTH
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
    if TLS_VERSIONS[tls.max_version] < TLS_VERSIONS[MIN_TLS]:
        b.fail(max_line, "tls_server_config.max_version",
               f"{tls.max_version} cannot be negotiated: {ssl.OPENSSL_VERSION} refuses TLS 1.0 "
               "and 1.1 at its default security level (every handshake would fail); "
               "use TLS12 or TLS13")
    if "TLS13" in (tls.min_version, tls.max_version) and not ssl.HAS_TLSv1_3:
        b.fail(min_line if tls.min_version == "TLS13" else max_line, "tls_server_config",
               f"TLS13 cannot be negotiated: {ssl.OPENSSL_VERSION} has no TLS 1.3")
    if TLS_VERSIONS[tls.min_version] > TLS_VERSIONS[tls.max_version]:
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


def _import_bcrypt(b: Builder, line: int) -> None:
    try:
        import bcrypt  # noqa: F401, PLC0415 - only needed when basic auth is configured
    except ImportError:
        b.fail(line, "basic_auth_users", "needs the bcrypt module: apt-get install "
                                          "python3-bcrypt (or pip install bcrypt)")
