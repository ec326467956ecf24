"""Fan-driver calls on their own thread, each under a deadline: a BMC that stops answering
never blocks the control loop (DESIGN.md: "a missed deadline is a stale input, never a
blocked loop").

:meth:`Actuator.call` runs one driver function on the worker and waits at most
``deadline_seconds``. A call that misses it raises DeadlineExceeded (a Transient: counted as a
failed write, and the controller goes to failsafe after ``write_failures_to_failsafe`` of
them); while it is still hung, further calls fail at once instead of queueing behind it.
The mechanism is the collectors' (gpuwatchd.worker).

:class:`DriverCalls` is the one place the controller calls a fan driver: every call but
``channels`` runs on the actuator thread.
"""

from __future__ import annotations

from collections.abc import Mapping

from gpuwatchd.compat import StrEnum
from gpuwatchd.config.fan_drivers import Channel
from gpuwatchd.control.drivers import Written
from gpuwatchd.control.factory import Built
from gpuwatchd.worker import Job, Worker

__all__ = ["Actuator", "Call", "DriverCalls", "Job"]


class Call(StrEnum):
    """The driver calls, as log lines and fault details name them."""

    CONNECT = "connect"
    MANUAL_MODE = "manual mode"
    DUTY_WRITE = "duty write"
    MODE_CHECK = "mode check"
    FAILSAFE = "failsafe"
    RELEASE = "release"


class Actuator(Worker):
    """One worker thread for one fan driver's calls (thread name ``fan-<target>``)."""

    def __init__(self, name: str, deadline_seconds: float) -> None:
        super().__init__(name, deadline_seconds, thread_name=f"fan-{name}")


class DriverCalls:
    """A connected driver; each method raises what the driver (or a missed deadline) raises:
    Unsupported, Refused(code), Transient (DeadlineExceeded)."""

    def __init__(self, built: Built, actuator: Actuator) -> None:
        self._built = built
        self._driver = built.driver
        self._actuator = actuator

    @property
    def name(self) -> str:
        """The driver's config name (``dell``, also where the config says ``auto``)."""
        return self._driver.name

    def channels(self) -> tuple[Channel, ...]:
        """Every channel the driver can set. On the caller's thread, not the actuator's:
        no BMC call (the NVML driver looks for GPU fans here while it has found none)."""
        return self._driver.channels()

    def take_control(self) -> None:
        self._actuator.call(self._driver.take_control, what=Call.MANUAL_MODE)

    def write(self, duties: Mapping[Channel, float]) -> Written | None:
        return self._actuator.call(lambda: self._driver.write(duties), what=Call.DUTY_WRITE)

    def in_control(self) -> bool | None:
        return self._actuator.call(self._driver.in_control, what=Call.MODE_CHECK)

    def failsafe(self) -> None:
        self._actuator.call(self._driver.failsafe, what=Call.FAILSAFE)

    def release(self) -> None:
        self._actuator.call(self._driver.release, what=Call.RELEASE)

    def release_on_exit(self, deadline_seconds: float) -> None:
        """Hand back for good: wait for a hung call first, then give ``release`` as long."""
        self._actuator.drain(deadline_seconds)
        self._actuator.call(self._driver.release, deadline_seconds, Call.RELEASE)

    def close(self) -> None:
        """Close the driver's links (after release)."""
        self._built.close()
