"""The one choke point for python-ipmi: every IPMI command in gpuwatchd goes through IpmiLink.

Transports: RMCP+ (IPMI 2.0 LAN, ``ipmitool -I lanplus``), in-band through ``/dev/ipmi0``
(``ipmitool -I open``), and IPMI 1.5 LAN (``ipmitool -I lan``) only when ``ipmi_version: "1.5"``
asks for it. One session stays open across ticks; we keep it alive ourselves (python-ipmi's
keep-alive thread is off: it runs every second and has no error handling); a session that
stops answering (expired, BMC rebooted) is dropped and re-opened with exponential backoff.

Cipher suites are tried in the configured order (default 17 then 3), one interface per try,
so that both ways a BMC can decline a suite work: an "invalid algorithm" status (ipmi_sim
rejects 17 that way) and silently picking another suite (pyghmi answers 3 to a request for 17,
which python-ipmi reports as "BMC selected other algorithms"). The suite that worked is tried
first on the next open.

Completion codes are facts, not transport failures: ``0xc1``/``0xd5`` (and ``0xcb``) raise
Unsupported, ``0xd4``/``0xcc`` and other refusals raise Refused(code), no reply raises
Transient. Messages name the BMC and its address, never the password.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import replace

from gpuwatchd.clock import Clock
from gpuwatchd.config import BmcConfig
from gpuwatchd.errors import (
    ConfigError,
    GpuwatchdError,
    Refused,
    Transient,
    Unsupported,
)
from gpuwatchd.links import ipmi_pyipmi
from gpuwatchd.links.backoff import SessionBackoff
from gpuwatchd.links.credentials import Secret, describe, load_password
from gpuwatchd.links.ipmi_pyipmi import Connection, Connector, ConnectRequest
from gpuwatchd.links.ipmi_sdr import DeviceId, parse_device_id

log = logging.getLogger(__name__)

DEFAULT_PORT = 623
KEEPALIVE_SECONDS = 20.0  # IPMI 2.0 s. 6.12.15: sessions time out after 60 s +/- 3 s idle

CC_UNSUPPORTED = frozenset({0xc1, 0xc2, 0xcb, 0xd5, 0xd6})  # command/sensor absent or disabled
CC_TRANSIENT = frozenset({0xc0, 0xc3, 0xce, 0xd1, 0xd2, 0xd3, 0xff})  # busy, timeout, in update


def map_completion_code(what: str, cc: int) -> GpuwatchdError:
    """A non-zero completion code as a project error whose message names ``what``."""
    message = f"{what}: completion code 0x{cc:02x}"
    if cc in CC_UNSUPPORTED:
        return Unsupported(message)
    if cc in CC_TRANSIENT:
        return Transient(message)
    return Refused(message, cc)


class IpmiLink:
    """One BMC's IPMI session; thread-safe (the collector and a fan driver may share it)."""

    def __init__(self, bmc: BmcConfig, clock: Clock, connector: Connector | None = None,
                 password: Callable[[], Secret | None] | None = None,
                 keepalive_seconds: float = KEEPALIVE_SECONDS) -> None:
        self.bmc = bmc
        self.name = describe(bmc)
        self._clock = clock
        self._connector = connector or ipmi_pyipmi.connect
        self._password = password or (lambda: load_password(bmc))
        self._keepalive_seconds = keepalive_seconds
        self._lock = threading.RLock()
        self._conn: Connection | None = None
        self._suites = list(bmc.cipher_suites)
        self.backoff = SessionBackoff()
        self._last_used = 0.0
        self._stop = threading.Event()
        self._keeper: threading.Thread | None = None
        self.device: DeviceId | None = None
        self.cipher_suite: int | None = None
        self.requests = 0
        self.sessions_opened = 0
        self.errors: Counter[str] = Counter()

    @property
    def interface(self) -> str:
        """The python-ipmi interface this BMC uses."""
        if self.bmc.transport == "inband":
            return "ipmidev"
        return "rmcp" if self.bmc.ipmi_version == "1.5" else "rmcpplus"

    @property
    def connected(self) -> bool:
        """True while a session is open."""
        return self._conn is not None

    def raw(self, netfn: int, cmd: int, data: bytes = b"", lun: int = 0) -> bytes:
        """Send one command; return the response data after a zero completion code.

        Command-line equivalent: ``ipmitool -I lanplus -C 3 -H HOST -U USER -f PASSFILE raw
        <netfn> <cmd> <data...>`` (the first byte ipmitool prints is the first byte returned
        here). Raises Unsupported/Refused(code) for a completion code, Transient when the BMC
        does not answer (the session is dropped; the next call opens a new one, and while
        opening fails, calls fail fast until the backoff has passed). Thread-safe.
        """
        what = f"{self.name}: netfn 0x{netfn:02x} cmd 0x{cmd:02x}"
        with self._lock:
            conn = self._ensure_open()
            rsp = self._send(conn, lun, netfn, bytes([cmd]) + data, what)
        if not rsp:
            self.errors["empty_response"] += 1
            raise Transient(f"{what}: empty response")
        if rsp[0] != 0:
            self.errors[f"cc_0x{rsp[0]:02x}"] += 1
            raise map_completion_code(what, rsp[0])
        return bytes(rsp[1:])

    def _send(self, conn: Connection, lun: int, netfn: int, payload: bytes, what: str) -> bytes:
        self.requests += 1
        try:
            rsp = conn.send_raw(lun, netfn, payload)
        except Exception as exc:  # noqa: BLE001 - every transport failure maps to Transient
            self.errors[ipmi_pyipmi.error_kind(exc)] += 1
            self._drop(graceful=False)
            raise Transient(f"{what}: no reply ({ipmi_pyipmi.explain(exc)}); "
                            "the session will be re-opened") from None
        self._last_used = self._clock.monotonic()
        return bytes(rsp)

    def open(self) -> None:
        """Open the session now (unless it is open or backing off); raise on failure."""
        with self._lock:
            self._ensure_open()

    def _ensure_open(self) -> Connection:
        if self._conn is not None:
            return self._conn
        now = self._clock.monotonic()
        self.backoff.check(now)
        try:
            conn = self._connect()
            self._conn = conn
            self._last_used = now
            rsp = self._send(conn, 0, 0x06, b"\x01", f"{self.name}: Get Device ID")
            self.device = parse_device_id(rsp[1:]) if rsp[:1] == b"\x00" else None
        except GpuwatchdError as exc:
            self._drop(graceful=False)
            self.backoff.failed(now, exc)
            raise
        self.sessions_opened += 1
        if self.backoff.succeeded():
            log.info("%s: session re-opened", self.name, extra={"BMC": self.bmc.name})
        self._start_keepalive()
        return conn

    def _connect(self) -> Connection:
        """Try each cipher suite in order (RMCP+), or the one way in for rmcp/ipmidev."""
        password = self._password() if self.bmc.transport == "lan" else None
        if self.bmc.transport == "lan" and password is None:
            raise ConfigError(f"{self.name}: no password: set password_file or "
                              "password_credential")
        request = ConnectRequest(
            interface=self.interface, host=self.bmc.host, port=self.bmc.port or DEFAULT_PORT,
            username=self.bmc.username, password=password, privilege=self.bmc.privilege,
            cipher_suite=None, timeout_seconds=self.bmc.timeout_seconds,
            device=self.bmc.ipmi_device)
        suites: list[int | None] = list(self._suites) if self.interface == "rmcpplus" else [None]
        for i, suite in enumerate(suites):
            try:
                conn = self._connector(replace(request, cipher_suite=suite))
            except Exception as exc:  # noqa: BLE001 - mapped below, never re-raised raw
                self.errors[ipmi_pyipmi.error_kind(exc)] += 1
                if ipmi_pyipmi.suite_declined(exc) and i + 1 < len(suites):
                    log.debug("%s: cipher suite %s declined, trying %s", self.name, suite,
                              suites[i + 1])
                    continue
                raise ipmi_pyipmi.map_open_error(self.name, exc, password,
                                                 self.interface) from None
            if isinstance(suite, int):  # the suite that worked goes first next time
                self._suites.remove(suite)
                self._suites.insert(0, suite)
            self.cipher_suite = suite
            return conn
        raise ConfigError(f"{self.name}: cipher_suites is empty")

    def _drop(self, graceful: bool) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close(graceful)
            except Exception as exc:  # noqa: BLE001 - closing a dead session may fail
                log.debug("%s: closing the session: %s", self.name, ipmi_pyipmi.explain(exc))

    def _start_keepalive(self) -> None:
        if self.bmc.transport != "lan" or self._keeper is not None or self._stop.is_set():
            return
        self._keeper = threading.Thread(target=self._keepalive_loop, daemon=True,
                                        name=f"ipmi-keepalive-{self.bmc.name}")
        self._keeper.start()

    def _keepalive_loop(self) -> None:
        """Send Get Device ID (``ipmitool raw 0x06 0x01``) when the session sat idle."""
        while not self._stop.wait(self._keepalive_seconds / 4):
            if not self._lock.acquire(blocking=False):
                continue  # a command is in flight: the session is not idle
            try:
                idle = self._clock.monotonic() - self._last_used
                if self._conn is not None and idle >= self._keepalive_seconds:
                    self._send(self._conn, 0, 0x06, b"\x01", f"{self.name}: keep-alive")
            except GpuwatchdError as exc:
                log.debug("%s", exc)
            finally:
                self._lock.release()

    def close(self) -> None:
        """Stop the keep-alive, close the session politely; the link may be opened again."""
        self._stop.set()
        keeper, self._keeper = self._keeper, None
        if keeper is not None:
            keeper.join(timeout=self.bmc.timeout_seconds + 1)
        with self._lock:
            self._drop(graceful=True)
        self._stop.clear()
