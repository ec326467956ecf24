"""IpmiLink over FakeIpmi: completion codes, no reply, backoff, cipher suites, secrets."""

# ruff: noqa: S105 - made-up test passwords, asserted never to leak
from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from pyipmi.errors import (
    AuthenticationError,
    CompletionCodeError,
    DecodingError,
    IpmiConnectionError,
    MessageStatusCodeError,
    RetryError,
)

from gpuwatchd.clock import ManualClock
from gpuwatchd.config import BmcConfig
from gpuwatchd.errors import ConfigError, NotInstalled, Refused, Transient, Unsupported
from gpuwatchd.links import credentials, ipmi_pyipmi, redfish
from gpuwatchd.links.backoff import MAX_BACKOFF_SECONDS, SessionBackoff
from gpuwatchd.links.credentials import Secret
from gpuwatchd.links.ipmi import IpmiLink
from gpuwatchd.links.ipmi_sdr import parse_device_id
from tests.fakes.ipmi import FakeIpmi

PASSWORD = "s3cr3t-Pa55"


def lan(**kw: object) -> BmcConfig:
    fields: dict[str, object] = {"name": "idrac", "host": "192.0.2.10", "username": "root",
                                 "password_file": "/nonexistent"}
    fields.update(kw)
    return BmcConfig(**fields)  # type: ignore[arg-type]


def make(fake: FakeIpmi, clock: ManualClock | None = None, **kw: object) -> IpmiLink:
    return IpmiLink(lan(**kw), clock or ManualClock(), connector=fake.connector,
                    password=lambda: Secret(PASSWORD))


@pytest.mark.parametrize(("cc", "error", "code"), [
    (0xc1, Unsupported, None), (0xd5, Unsupported, None), (0xcb, Unsupported, None),
    (0xd4, Refused, 0xd4), (0xcc, Refused, 0xcc), (0xc9, Refused, 0xc9),
    (0xc0, Transient, None), (0xff, Transient, None)])
def test_completion_codes_are_facts(cc: int, error: type, code: int | None) -> None:
    fake = FakeIpmi({(0x30, b"\x30\x01\x00"): bytes([cc])})
    link = make(fake)
    with pytest.raises(error) as info:
        link.raw(0x30, 0x30, b"\x01\x00")
    assert f"0x{cc:02x}" in str(info.value) and "idrac" in str(info.value)
    if code is not None:
        assert info.value.code == code
    assert link.connected, "a completion code is an answer: the session stays open"
    assert link.errors[f"cc_0x{cc:02x}"] == 1


def test_raw_returns_the_data_after_a_zero_completion_code() -> None:
    fake = FakeIpmi({(0x30, b"\x30\x01\x01"): b"\x00\x16\x05"})
    link = make(fake)
    assert link.raw(0x30, 0x30, b"\x01\x01") == b"\x16\x05"
    assert fake.requests[-1] == (0x30, b"\x30\x01\x01")
    assert link.device is not None and link.device.vendor == "Dell"
    assert link.device.firmware == "2.41"


def test_no_reply_is_transient_then_the_session_is_reopened_after_the_backoff() -> None:
    clock = ManualClock()
    fake = FakeIpmi({(0x04, b"\x2d\x01"): RetryError("no reply")})
    link = make(fake, clock)
    with pytest.raises(Transient, match="no reply"):
        link.raw(0x04, 0x2d, b"\x01")
    assert not link.connected and fake.closed == [False]  # dropped, no Close Session sent
    fake.responses[(0x04, b"\x2d\x01")] = b"\x00\x19\xc0\x00"
    # the first re-open is not delayed: the next tick may try at once
    assert link.raw(0x04, 0x2d, b"\x01") == b"\x19\xc0\x00"
    assert link.sessions_opened == 2 and len(fake.opens) == 2


def test_open_failures_back_off_exponentially_up_to_the_cap() -> None:
    clock = ManualClock()
    fake = FakeIpmi()
    link = make(fake, clock)
    delays = []
    for _ in range(9):
        fake.open_errors.append(IpmiConnectionError("no response to RMCP ping"))
        opens = len(fake.opens)
        with pytest.raises(Transient):
            link.open()
        assert len(fake.opens) == opens + 1
        waited = 0.0
        while True:  # find when the next attempt is allowed
            with pytest.raises(Transient, match="next attempt in"):
                link.open()
            assert len(fake.opens) == opens + 1, "no attempt during the backoff"
            clock.advance(0.5)
            waited += 0.5
            if link.backoff.next_attempt <= clock.monotonic():
                break
        delays.append(waited)
    assert delays[:4] == [1.0, 2.0, 4.0, 8.0]
    assert max(delays) == MAX_BACKOFF_SECONDS
    link.open()  # healthy again: the backoff restarts
    assert link.connected and link.backoff.delay_seconds == 1.0


def test_cipher_suites_fall_back_in_order_and_the_working_one_goes_first() -> None:
    fake = FakeIpmi()
    fake.open_errors.append(MessageStatusCodeError(0x04))  # invalid authentication algorithm
    link = make(fake, cipher_suites=(17, 3))
    link.open()
    assert [r.cipher_suite for r in fake.opens] == [17, 3]
    assert link.cipher_suite == 3
    link.close()
    link.open()
    assert fake.opens[-1].cipher_suite == 3


def test_a_bmc_choosing_another_suite_also_falls_back() -> None:
    fake = FakeIpmi()
    fake.open_errors.append(DecodingError("Open Session Response: BMC selected other "
                                          "algorithms (1, 1, 1)"))
    link = make(fake, cipher_suites=(17, 3))
    link.open()
    assert [r.cipher_suite for r in fake.opens] == [17, 3]


def test_the_last_suite_declined_is_reported() -> None:
    fake = FakeIpmi()
    fake.open_errors += [MessageStatusCodeError(0x11), MessageStatusCodeError(0x11)]
    with pytest.raises(Refused, match="session refused"):
        make(fake, cipher_suites=(17, 3)).open()


@pytest.mark.parametrize(("exc", "text"), [
    (AuthenticationError("RAKP message 2: invalid key exchange authentication code "
                         "(wrong password?)"), "wrong password"),
    (MessageStatusCodeError(0x0d), "user name unknown"),
    (CompletionCodeError(0x81), "user name unknown")])
def test_a_refused_login_names_the_bmc_not_the_password(
        exc: Exception, text: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    clock = ManualClock()
    fake = FakeIpmi()
    fake.open_errors.append(exc)
    link = make(fake, clock)
    with pytest.raises(Refused) as info:
        link.open()
    message = str(info.value)
    assert text in message and "BMC idrac (192.0.2.10" in message
    assert PASSWORD not in message and PASSWORD not in caplog.text
    assert PASSWORD not in repr(fake.opens[0])  # the request holds a Secret
    clock.advance(MAX_BACKOFF_SECONDS - 1)  # a refused login is not retried soon (lockouts)
    with pytest.raises(Refused, match="next attempt"):
        link.open()
    assert len(fake.opens) == 1


def test_password_comes_from_the_file_and_is_read_per_login(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text(PASSWORD + "\n")
    secret.chmod(0o600)
    fake = FakeIpmi()
    link = IpmiLink(lan(password_file=str(secret)), ManualClock(), connector=fake.connector)
    link.open()
    assert fake.opens[0].password is not None
    assert fake.opens[0].password.reveal() == PASSWORD
    link.close()
    secret.write_text("rotated")
    link.open()
    assert fake.opens[1].password.reveal() == "rotated"  # type: ignore[union-attr]


def test_a_lan_bmc_without_a_password_source_is_a_config_error() -> None:
    fake = FakeIpmi()
    link = IpmiLink(lan(password_file=None), ManualClock(), connector=fake.connector)
    with pytest.raises(ConfigError, match="password_file or password_credential"):
        link.open()
    assert fake.opens == []


def test_inband_uses_ipmidev_on_the_configured_device_without_a_password() -> None:
    fake = FakeIpmi()
    bmc = BmcConfig(name="local", transport="inband", ipmi_device="/dev/ipmi7")
    link = IpmiLink(bmc, ManualClock(), connector=fake.connector)
    link.open()
    req = fake.opens[0]
    assert (req.interface, req.device, req.password, req.cipher_suite) == (
        "ipmidev", "/dev/ipmi7", None, None)
    assert "in-band /dev/ipmi7" in link.name


def test_a_missing_ipmi_device_is_not_installed() -> None:
    fake = FakeIpmi()
    fake.open_errors.append(FileNotFoundError(2, "No such file or directory"))
    link = IpmiLink(BmcConfig(name="local", transport="inband"), ManualClock(),
                    connector=fake.connector)
    with pytest.raises(NotInstalled, match="ipmi_devintf"):
        link.open()


def test_ipmi_15_only_when_configured() -> None:
    fake = FakeIpmi()
    make(fake).open()
    make(fake, ipmi_version="1.5").open()
    assert [(r.interface, r.cipher_suite) for r in fake.opens] == [("rmcpplus", 17),
                                                                   ("rmcp", None)]


def test_keepalive_pings_an_idle_session_and_drops_a_dead_one() -> None:
    clock = ManualClock()
    fake = FakeIpmi()
    link = IpmiLink(lan(), clock, connector=fake.connector, password=lambda: Secret("x"),
                    keepalive_seconds=0.2)
    link.open()
    opened = len(fake.requests)
    clock.advance(5)  # idle for longer than the keep-alive interval
    deadline = time.monotonic() + 5
    while len(fake.requests) == opened and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fake.requests[opened] == (0x06, b"\x01")
    fake.responses[(0x06, b"\x01")] = RetryError("gone")
    clock.advance(5)
    while link.connected and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not link.connected, "a failed keep-alive drops the session for a re-open"
    link.close()
    assert link._keeper is None


@pytest.mark.parametrize(("manufacturer", "vendor"), [
    (674, "Dell"), (10876, "Supermicro"), (11, "HPE"), (19046, "Lenovo"), (343, "343")])
def test_vendor_by_iana_number(manufacturer: int, vendor: str) -> None:
    data = bytes([0x20, 0x01, 0x05, 0x12, 0x02, 0x9f]) + manufacturer.to_bytes(3, "little") \
        + b"\x34\x12"
    device = parse_device_id(data)
    assert device is not None
    assert (device.vendor, device.firmware, device.product_id) == (vendor, "5.12", 0x1234)


def test_session_backoff_is_one_mechanism_for_both_links() -> None:
    """gpuwatchd.links.backoff (IpmiLink and RedfishLink): 1 s doubling to the cap; a refusal
    waits the cap at once."""
    b = SessionBackoff()
    b.check(0.0)  # nothing failed yet: no wait
    b.failed(0.0, Transient("BMC x: no reply"))
    with pytest.raises(Transient, match="no reply; next attempt in 1 s"):
        b.check(0.0)
    b.check(1.0)
    b.failed(1.0, Refused("BMC x: login refused", 0x0d))
    with pytest.raises(Refused, match="next attempt in 60 s") as info:
        b.check(1.0)
    assert info.value.code == 0x0d
    assert b.succeeded() and b.delay_seconds == 1.0 and not b.succeeded()


def test_one_scrubber_for_every_link() -> None:
    secret = Secret("hunter22")
    assert credentials.scrub("login hunter22 failed", secret) == "login ******** failed"
    assert credentials.scrub("ab in text", Secret("ab")) == "ab in text"  # too short to blank
    assert ipmi_pyipmi.scrub is credentials.scrub and redfish.scrub is credentials.scrub
