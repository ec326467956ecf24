"""The one choke point for the DMTF ``redfish`` library: every Redfish request goes through here.

Authentication: a session (``POST SessionService/Sessions``, the ``X-Auth-Token`` kept and
``DELETE``d on close; an expired token is renewed once and the request repeated), or HTTP basic
auth with ``redfish_auth: basic`` or when the service has no SessionService. TLS is verified
by default (the system CA bundle, or ``ca_file``); ``tls_verify: false`` must be explicit and
logs a warning. The library's own retries (10, one second apart, by default) are off: one
attempt per request under ``timeout_seconds``, and at most ``max_requests_per_second``, since
BMC web servers are small and easily overwhelmed.

HTTP status -> error: 401/403 Refused(status), 404 Unsupported (the resource is absent),
5xx, refused connections and malformed JSON Transient, a timeout DeadlineExceeded (a
Transient). Messages name the BMC and the
URL path, never the password or the token.

Command-line equivalent: ``curl -s -u USER https://BMC/redfish/v1/Chassis/<id>/Thermal``.
"""

from __future__ import annotations

import json
import logging
import os
import ssl
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable
from typing import Any

from gpuwatchd.clock import Clock
from gpuwatchd.config import BmcConfig
from gpuwatchd.config.files import MAX_PEM_BYTES, FileRefused, check_regular
from gpuwatchd.errors import (
    ConfigError,
    DeadlineExceeded,
    GpuwatchdError,
    Refused,
    Transient,
    Unsupported,
)
from gpuwatchd.links.backoff import SessionBackoff
from gpuwatchd.links.credentials import Secret, describe, load_password, scrub

log = logging.getLogger(__name__)
logging.getLogger("redfish").setLevel(logging.WARNING)  # it logs every request, token headers

ROOT = "/redfish/v1/"
SESSIONLESS = (404, 405, 501)  # no SessionService: basic auth instead

ClientFactory = Callable[..., Any]  # redfish.redfish_client's signature


def _redfish_client(**kwargs: Any) -> Any:
    import redfish  # noqa: PLC0415 - loaded on first use only

    return redfish.redfish_client(**kwargs)


class RedfishLink:
    """One BMC's Redfish service; thread-safe; requests are paced."""

    def __init__(self, bmc: BmcConfig, clock: Clock, client_factory: ClientFactory | None = None,
                 password: Callable[[], Secret | None] | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.bmc = bmc
        self.name = describe(bmc)
        self._clock = clock
        self._factory = client_factory or _redfish_client
        self._password = password or (lambda: load_password(bmc))
        self._sleep = sleep
        self._lock = threading.RLock()
        self._client: Any = None
        self._auth = bmc.redfish_auth
        self._allowance = bmc.max_requests_per_second
        self._last_pace = clock.monotonic()
        self.root: dict[str, Any] = {}
        self.backoff = SessionBackoff()
        self.requests = 0
        self.sessions_opened = 0
        self.errors: Counter[str] = Counter()
        if (bmc.host or "").startswith("http://"):
            log.warning("%s: plain HTTP: the password and the session token travel in clear",
                        self.name, extra={"BMC": bmc.name})
        if not bmc.tls_verify:
            log.warning("%s: TLS certificate verification is off (tls_verify: false): the "
                        "password goes to whoever answers at that address", self.name,
                        extra={"BMC": bmc.name})

    @property
    def base_url(self) -> str:
        host = self.bmc.host or ""
        if "://" in host:
            return host.rstrip("/") + (f":{self.bmc.port}" if self.bmc.port else "")
        return f"https://{host}:{self.bmc.port or 443}"

    @property
    def connected(self) -> bool:
        return self._client is not None

    def _cafile(self) -> str | None:
        if not self.bmc.tls_verify:
            return None
        if self.bmc.ca_file and os.path.exists(self.bmc.ca_file):  # a FIFO would block OpenSSL
            try:
                check_regular(self.bmc.ca_file, MAX_PEM_BYTES)
            except FileRefused as exc:
                raise ConfigError(f"{self.name}: ca_file {exc}") from None
        paths = ssl.get_default_verify_paths()
        return self.bmc.ca_file or paths.cafile or paths.openssl_cafile

    def login(self) -> None:
        """Open the session (or check basic credentials) unless already logged in."""
        with self._lock:
            if self._client is None:
                self._login()

    def _login(self) -> None:
        """Log in, or fail fast while backing off from the last failure (1 s doubling to
        60 s; a refused login waits 60 s at once: BMCs lock out repeated bad logins;
        gpuwatchd.links.backoff)."""
        now = self._clock.monotonic()
        self.backoff.check(now)
        try:
            self._open()
        except GpuwatchdError as exc:
            self.backoff.failed(now, exc)
            raise
        self.backoff.succeeded()

    def _open(self) -> None:
        password = self._password()
        if password is None:
            raise ConfigError(f"{self.name}: no password: set password_file or "
                              "password_credential")
        self.requests += 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # InsecureRequestWarning: we warned once above
            try:
                client = self._factory(base_url=self.base_url, username=self.bmc.username or "",
                                       password=password.reveal(), cafile=self._cafile(),
                                       timeout=self.bmc.timeout_seconds, max_retry=0)
                root_ok = getattr(client.root_resp, "status", 200) == 200
                self.root = _json(client.root_resp, ROOT, self.name) if root_ok else {}
                self._authenticate(client)
            except GpuwatchdError:
                raise
            except Exception as exc:  # noqa: BLE001 - the library raises many kinds
                raise self._map(exc, "login", password) from None
        self._client = client
        self.sessions_opened += 1

    def _authenticate(self, client: Any) -> None:
        from redfish.rest.v1 import AuthMethod, SessionCreationError  # noqa: PLC0415

        if self._auth == "session":
            try:
                self.requests += 1
                client.login(auth=AuthMethod.SESSION)
                return
            except SessionCreationError as exc:
                if not any(f"HTTP {code}" in str(exc) for code in SESSIONLESS):
                    raise
                log.info("%s: no Redfish SessionService: using basic auth", self.name,
                         extra={"BMC": self.bmc.name})
                self._auth = "basic"
        self.requests += 1
        client.login(auth=AuthMethod.BASIC)

    def get(self, path: str, query: dict[str, str] | None = None) -> dict[str, Any]:
        """GET one resource as a dict; renews an expired session once."""
        with self._lock:
            status, resp = self._request(path, lambda client: client.get(
                path, args=query, timeout=self.bmc.timeout_seconds, max_retry=0))
            return self._check(status, resp, path)

    def _request(self, what: str, send: Callable[[Any], Any]) -> tuple[int, Any]:
        """One request on the session (GET here, PATCH in gpuwatchd.links.redfish_write):
        log in if needed, pace, send, map the library's errors (``what`` names the request
        in them); an expired session (HTTP 401) is renewed once and the request repeated."""
        with self._lock:
            for attempt in (1, 2):
                if self._client is None:
                    self._login()
                status, resp = self._send(what, send)
                if status == 401 and attempt == 1:
                    log.info("%s: session expired (HTTP 401): logging in again", self.name,
                             extra={"BMC": self.bmc.name})
                    self._drop(logout=False)
                    continue
                return status, resp
        raise AssertionError("unreachable")

    def _send(self, what: str, send: Callable[[Any], Any]) -> tuple[int, Any]:
        self._pace()
        self.requests += 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                resp = send(self._client)
            except Exception as exc:  # noqa: BLE001 - mapped
                err = self._map(exc, what, None)
                if isinstance(err, Transient):
                    self._drop(logout=False)
                raise err from None
        return int(resp.status), resp

    def _check(self, status: int, resp: Any, path: str) -> dict[str, Any]:
        where = f"{self.name}: GET {path}"
        if status == 200:
            return _json(resp, path, self.name)
        self.errors[f"http_{status}"] += 1
        if status in (401, 403):
            raise Refused(f"{where}: HTTP {status} (user lacks the rights?)", status)
        if status == 404:
            raise Unsupported(f"{where}: HTTP 404 (not on this BMC)")
        raise Transient(f"{where}: HTTP {status}")

    def _pace(self) -> None:
        """Token bucket: at most max_requests_per_second, bursts up to one second's worth."""
        rate = self.bmc.max_requests_per_second
        now = self._clock.monotonic()
        self._allowance = min(rate, self._allowance + (now - self._last_pace) * rate)
        self._last_pace = now
        if self._allowance < 1.0:
            wait = (1.0 - self._allowance) / rate
            self._sleep(wait)
            self._allowance += wait * rate
            self._last_pace = self._clock.monotonic()
        self._allowance -= 1.0

    def _map(self, exc: BaseException, what: str, password: Secret | None) -> GpuwatchdError:
        from redfish.rest import v1  # noqa: PLC0415

        kind = type(exc).__name__
        cause = exc.__cause__ or exc.__context__
        text = scrub(f"{kind}: {exc}".split("\n")[0], password)
        if isinstance(exc, v1.InvalidCredentialsError):
            self.errors["auth"] += 1
            return Refused(f"{self.name}: {what} refused (HTTP 401): wrong user name or "
                           "password?", 401)
        if isinstance(exc, v1.RetriesExhaustedError) and cause is not None:
            kind, text = type(cause).__name__, scrub(str(cause), password)
        self.errors[kind.lower()] += 1
        if "SSLError" in kind or "CERTIFICATE_VERIFY_FAILED" in text:
            return Refused(f"{self.name}: {what}: TLS certificate not trusted ({text[:160]}); "
                           "give ca_file, or tls_verify: false")
        if "Timeout" in kind:
            return DeadlineExceeded(f"{self.name}: {what}: no answer within "
                             f"{self.bmc.timeout_seconds:g} s")
        return Transient(f"{self.name}: {what}: {text[:200]}")

    def _drop(self, logout: bool) -> None:
        client, self._client = self._client, None
        if client is not None and logout:
            try:
                client.logout()  # DELETE the session, so it does not linger on the BMC
            except Exception as exc:  # noqa: BLE001 - a dead BMC cannot log us out
                log.debug("%s: logout failed: %s", self.name, type(exc).__name__)

    def close(self) -> None:
        """Log out (delete the session) and forget the client."""
        with self._lock:
            self._drop(logout=True)


def _json(resp: Any, path: str, name: str) -> dict[str, Any]:
    """The body as a JSON object; parsed here, so the library never logs a bad body."""
    try:
        doc = json.loads(resp.text)
    except ValueError:
        raise Transient(f"{name}: GET {path}: malformed JSON") from None
    if not isinstance(doc, dict):
        raise Transient(f"{name}: GET {path}: not a JSON object")
    return doc
