"""python-ipmi behind IpmiLink: the only module that imports ``pyipmi``.

:func:`connect` opens one session the way ``ipmitool`` would (``-I lanplus -C N``, ``-I lan``,
``-I open``) and returns a small :class:`Connection`; :func:`map_open_error` turns python-ipmi's
exceptions into the project's error classes. The connector's types (:class:`ConnectRequest`,
:class:`Connection`, :data:`Connector`) are defined here, so IpmiLink imports this module and
never the reverse. python-ipmi 0.6.1 is needed (Debian's 0.4.2 has
neither RMCP+ nor ``ipmidev``); AES cipher suites (3, 17) need the ``cryptography`` package.

Two leaks closed here: python-ipmi's ``Session.__str__`` prints the password, and
``Rmcp.close_session`` formats the session into a debug message; the session class below
prints no password, and the ``pyipmi`` logger is held at WARNING.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from gpuwatchd.errors import GpuwatchdError, NotInstalled, Refused, Transient, Unsupported
from gpuwatchd.links.credentials import Secret, scrub

logging.getLogger("pyipmi").setLevel(logging.WARNING)

BMC_ADDRESS = 0x20
SOFTWARE_ID = 0x81  # our requester address, as ipmitool's default
# RMCP+ message status codes meaning "not this cipher suite" (IPMI 2.0 table 13-15)
_SUITE_DECLINED_MSC = frozenset({0x03, 0x04, 0x05, 0x06, 0x07, 0x10, 0x11})
_MSC_UNAUTHORIZED = {0x0a: "the user may not have this privilege level",
                     0x0d: "user name unknown to the BMC", 0x0f: "wrong password (or K_g)",
                     0x12: "illegal parameter (check privilege and user name)"}
# IPMI 1.5 Get Session Challenge / Activate Session completion codes (IPMI 2.0 s. 22.16-22.17)
_CC_LOGIN = {0x81: "user name unknown to the BMC", 0x82: "null user name not enabled",
             0x83: "no session slot available", 0x86: "privilege level not permitted"}


class Connection(Protocol):
    """An open IPMI session (python-ipmi's ``Ipmi`` behind a thin wrapper, or a fake)."""

    def send_raw(self, lun: int, netfn: int, raw_bytes: bytes) -> bytes:
        """Send ``cmd + data``; return the response starting with the completion code."""

    def close(self, graceful: bool) -> None:
        """Close the session (``graceful``: send Close Session) and the transport."""


@dataclass(frozen=True)
class ConnectRequest:
    """Everything a connector needs to open one session."""

    interface: str  # rmcpplus | rmcp | ipmidev
    host: str | None
    port: int
    username: str | None
    password: Secret | None
    privilege: str
    cipher_suite: int | None
    timeout_seconds: float
    device: str


Connector = Callable[[ConnectRequest], Connection]


def _session_class() -> type:
    """A pyipmi Session whose str() shows no password (made on first use)."""
    from pyipmi.session import Session  # noqa: PLC0415 - no import of pyipmi at gpuwatchd import

    class QuietSession(Session):
        def __str__(self) -> str:
            return f"Session(host={self.rmcp_host}, port={self.rmcp_port}, user=<set>)"

    return QuietSession


class PyIpmiConnection:
    """An open python-ipmi ``Ipmi`` object."""

    def __init__(self, ipmi: Any) -> None:
        self._ipmi = ipmi

    def send_raw(self, lun: int, netfn: int, raw_bytes: bytes) -> bytes:
        return bytes(self._ipmi.send_raw(lun, netfn, raw_bytes))

    def close(self, graceful: bool) -> None:
        try:
            if graceful:
                self._ipmi.session.close()  # Close Session, under the command timeout
        finally:
            self._ipmi.interface.close()


def connect(req: ConnectRequest) -> PyIpmiConnection:
    """Open one session as ``req`` says; python-ipmi's exceptions propagate unchanged."""
    import pyipmi  # noqa: PLC0415 - loaded on first use only
    import pyipmi.interfaces  # noqa: PLC0415

    if req.interface == "ipmidev":
        intf = pyipmi.interfaces.create_interface("ipmidev", port=req.device,
                                                  timeout=req.timeout_seconds)
    else:
        kwargs: dict[str, Any] = {"slave_address": SOFTWARE_ID,
                                  "host_target_address": BMC_ADDRESS,
                                  "keep_alive_interval": 0}  # IpmiLink keeps it alive
        if req.interface == "rmcpplus":
            kwargs["cipher_suite"] = req.cipher_suite
        intf = pyipmi.interfaces.create_interface(req.interface, **kwargs)
    ipmi = pyipmi.Ipmi(interface=intf, session=_session_class()())
    ipmi.target = pyipmi.Target(ipmb_address=BMC_ADDRESS)
    if req.interface != "ipmidev":
        ipmi.session.set_session_type_rmcp(req.host, port=req.port)
        password = req.password.reveal() if isinstance(req.password, Secret) else ""
        ipmi.session.set_auth_type_user(req.username or "", password)
        ipmi.session.set_priv_level(req.privilege)
    intf.open()
    try:
        if req.interface != "ipmidev":
            intf.set_timeout(req.timeout_seconds)
            ipmi.session.establish()
    except BaseException:
        intf.close()
        raise
    return PyIpmiConnection(ipmi)


def suite_declined(exc: BaseException) -> bool:
    """True when the BMC turned the proposed cipher suite down (try the next one)."""
    from pyipmi.errors import DecodingError, MessageStatusCodeError  # noqa: PLC0415

    if isinstance(exc, MessageStatusCodeError):
        return exc.msc in _SUITE_DECLINED_MSC
    return isinstance(exc, DecodingError) and "selected other algorithms" in str(exc)


def map_open_error(name: str, exc: BaseException, password: Secret | None,
                   interface: str) -> GpuwatchdError:
    """A failed session open as a project error naming the BMC (the password scrubbed)."""
    from pyipmi import errors as pe  # noqa: PLC0415

    text = scrub(explain(exc), password)
    if isinstance(exc, pe.AuthenticationError):
        return Refused(f"{name}: login refused: {text}")
    if isinstance(exc, pe.MessageStatusCodeError):
        hint = _MSC_UNAUTHORIZED.get(exc.msc, text)
        return Refused(f"{name}: session refused: {hint} (status 0x{exc.msc:02x})", exc.msc)
    if isinstance(exc, pe.CompletionCodeError):
        hint = _CC_LOGIN.get(exc.cc, f"completion code 0x{exc.cc:02x}")
        return Refused(f"{name}: login refused: {hint}", exc.cc)
    if isinstance(exc, pe.IpmiLongPasswordError):
        return Refused(f"{name}: the password is longer than the 20 bytes IPMI allows")
    if isinstance(exc, pe.NotSupportedError):
        return Unsupported(f"{name}: {text}")
    if isinstance(exc, FileNotFoundError):
        return NotInstalled(f"{name}: no IPMI device ({text}): load the ipmi_si and "
                            "ipmi_devintf kernel modules")
    if isinstance(exc, PermissionError) or getattr(exc, "errno", None) == errno.EACCES:
        return Refused(f"{name}: permission denied on the IPMI device (needs root)")
    if isinstance(exc, pe.RetryError) and interface == "rmcp":
        return Transient(f"{name}: no answer to the IPMI 1.5 session activation ({text}): "
                         "wrong user name or password? (such a login is dropped silently)")
    return Transient(f"{name}: cannot open a session: {text}")


def explain(exc: BaseException) -> str:
    """``ClassName: message`` (python-ipmi's messages never contain the password)."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def error_kind(exc: BaseException) -> str:
    """A short label for ``gpuwatchd_bmc_errors_total{error}``."""
    name = type(exc).__name__
    return {"RetryError": "timeout", "TimeoutError": "timeout", "IpmiTimeoutError": "timeout",
            "ConnectionRefusedError": "refused", "IpmiConnectionError": "no_ping",
            "AuthenticationError": "auth", "MessageStatusCodeError": "session_status",
            "DecodingError": "decoding"}.get(name, name.lower())
