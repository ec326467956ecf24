"""The driver calls' record (gpuwatchd.control.health) and the write record
(gpuwatchd.control.output): errors by type, the fault they become, the duty as written."""

from __future__ import annotations

import pytest

from gpuwatchd.control.actuator import Call
from gpuwatchd.control.health import CallHealth, error_kind
from gpuwatchd.control.output import Output, as_written
from gpuwatchd.control.state import FailsafeReason
from gpuwatchd.errors import (
    DeadlineExceeded,
    GpuwatchdError,
    Lost,
    Refused,
    Transient,
    Unsupported,
)


@pytest.mark.parametrize(("exc", "kind"), [
    (DeadlineExceeded("idrac: duty write got no answer within 1 s"), "deadline"),
    (DeadlineExceeded("idrac: write not sent: the previous call is still waiting"), "deadline"),
    (DeadlineExceeded("worded any way at all"), "deadline"),  # by type, not by message
    (Transient("idrac: no reply"), "no_reply"),
    (Transient("idrac: PATCH: no answer within 5 s"), "no_reply"),  # the link's own timeout
    (Refused("parameter out of range", 0xc9), "refused_0xc9"),
    (Refused("HTTP 403", 403), "refused_0x193"),
    (Refused("no permission"), "refused"),
    (Unsupported("command absent"), "unsupported"),
    (Lost("session dead"), "refused"),
])
def test_error_kinds_by_type(exc: GpuwatchdError, kind: str) -> None:
    assert error_kind(exc) == kind


@pytest.mark.parametrize(("exc", "reason"), [
    (Transient("no reply"), FailsafeReason.BMC_UNREACHABLE),
    (DeadlineExceeded("late"), FailsafeReason.BMC_UNREACHABLE),
    (Refused("out of range", 0xc9), FailsafeReason.WRITES_FAILING),
])
def test_failures_in_a_row_become_a_fault_at_the_limit(exc: GpuwatchdError,
                                                       reason: FailsafeReason) -> None:
    health = CallHealth("idrac", 3)
    for n in (1, 2):
        health.failed(exc, Call.DUTY_WRITE)
        assert (health.failures, health.fault) == (n, None)
    health.failed(exc, Call.DUTY_WRITE)
    assert health.fault is not None and health.fault.reason is reason
    assert health.fault.detail.startswith("3 duty write calls failed in a row: ")
    assert health.errors == {error_kind(exc): 3}
    health.succeeded(Call.DUTY_WRITE)
    assert (health.failures, health.fault, health.errors[error_kind(exc)]) == (0, None, 3)


def test_a_reloaded_limit_applies_to_the_next_failure() -> None:
    health = CallHealth("idrac", 5)
    health.failed(Transient("no reply"), Call.MODE_CHECK)
    health.failures_to_failsafe = 2
    health.failed(Transient("no reply"), Call.MODE_CHECK)
    assert health.fault is not None
    health.clear()
    assert (health.failures, health.fault) == (0, None)


@pytest.mark.parametrize(("duty", "written"), [
    (0.34249999999999997, 0.34), (0.3451, 0.35), (0.0, 0.0), (1.0, 1.0), (1.2, 1.0),
    (-0.1, 0.0)])
def test_the_duty_is_recorded_as_the_whole_percent_the_bmc_gets(duty: float,
                                                                 written: float) -> None:
    assert as_written(duty) == written


def test_output_writes_again_only_on_a_change_of_half_a_percent() -> None:
    out = Output()
    assert out.changed({"fan1": 0.3425})  # never written
    out.wrote({"fan1": 0.3425, "fan2": 0.5}, 10.0)
    assert (out.written, out.last_write_mono, out.writes) == ({"fan1": 0.34, "fan2": 0.5},
                                                              10.0, 1)
    assert not out.changed({"fan1": 0.3470, "fan2": 0.5})  # measured against 0.3425
    assert out.changed({"fan1": 0.348, "fan2": 0.5})
    out.forget()
    assert out.written == {} and out.changed({"fan1": 0.3425, "fan2": 0.5})
