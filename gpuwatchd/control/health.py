"""How the fan driver's calls go: failures in a row, the driver fault they become, and every
failed call counted by kind (gpuwatchd_fan_control_write_errors_total). No I/O.

A missing reply is retried on the next tick; ``write_failures_to_failsafe`` failures in a
row are a driver fault: ``bmc_unreachable`` when the last was a missing reply (Transient,
DeadlineExceeded included), ``writes_failing`` when the BMC refused.
"""

from __future__ import annotations

import logging
from collections import Counter

from gpuwatchd.control.actuator import Call
from gpuwatchd.control.state import FailsafeReason
from gpuwatchd.control.zones import Fault
from gpuwatchd.errors import DeadlineExceeded, GpuwatchdError, Refused, Transient, Unsupported

log = logging.getLogger(__name__)


def error_kind(exc: GpuwatchdError) -> str:
    """The ``error`` label of a failed call, by the error's type: ``deadline`` (the actuator's
    deadline passed), ``no_reply`` (the link's own timeout or a lost reply),
    ``refused_0xNN`` (the BMC's completion code), ``unsupported``, else ``refused``."""
    if isinstance(exc, DeadlineExceeded):
        return "deadline"
    if isinstance(exc, Transient):
        return "no_reply"
    if isinstance(exc, Refused) and exc.code is not None:
        return f"refused_0x{exc.code:02x}"
    if isinstance(exc, Unsupported):
        return "unsupported"
    return "refused"


class CallHealth:
    """The driver calls' record for one target (a BMC, ``nvml`` or ``hwmon``)."""

    def __init__(self, target: str, failures_to_failsafe: int) -> None:
        self.target = target
        self.failures_to_failsafe = failures_to_failsafe  # a reload may change it
        self.failures = 0  # failed calls in a row
        self.fault: Fault | None = None  # set once the failures reach the limit
        self.errors: Counter[str] = Counter()  # every failed call, by error_kind

    def succeeded(self, call: Call) -> None:
        """A call answered: the run of failures (and the fault) ends."""
        if self.failures:
            log.info("%s: %s answered again after %d failure(s)", self.target, call,
                     self.failures)
        self.clear()

    def clear(self) -> None:
        """No failures in a row, no fault (an answer, or a refusal that is a fact)."""
        self.failures, self.fault = 0, None

    def failed(self, exc: GpuwatchdError, call: Call) -> None:
        """A call failed: counted; at the limit it becomes the driver fault."""
        self.errors[error_kind(exc)] += 1
        self.failures += 1
        if self.failures in (1, self.failures_to_failsafe):
            log.warning("%s: %s failed (%d in a row): %s", self.target, call, self.failures,
                        exc)
        if self.failures >= self.failures_to_failsafe:
            reason = FailsafeReason.BMC_UNREACHABLE if isinstance(exc, Transient) else \
                FailsafeReason.WRITES_FAILING
            self.fault = Fault(reason, f"{self.failures} {call} calls failed in a row: {exc}")
