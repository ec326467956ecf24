"""Connecting the fan driver: on the actuator thread, under its deadline, with backoff.

Making the driver may open a BMC session and ask who made it (gpuwatchd.control.factory:
``ipmitool mc info``), so it never runs on the control loop's thread. Per tick
(:meth:`DriverSupervisor.ensure`) the supervisor

- starts the connect on the actuator thread and waits at most the actuator's deadline; a slow
  connect (session setup, cipher-suite fallback) is picked up on a later tick rather than
  abandoned with a session open;
- after a failed connect waits 5 s, then twice as long each time, up to 300 s;
- stops for good on Unsupported or Refused (an unknown vendor, a BMC that says no): the
  controller then only monitors, and says why (:attr:`DriverSupervisor.blocked`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from gpuwatchd.control.actuator import Actuator, Call, DriverCalls, Job
from gpuwatchd.control.factory import Built
from gpuwatchd.errors import GpuwatchdError, Refused, Unsupported

log = logging.getLogger(__name__)
FIRST_BACKOFF_SECONDS = 5.0
MAX_BACKOFF_SECONDS = 300.0


class DriverSupervisor:
    """The fan driver's connection, owned by the controller's loop thread.

    ``vet`` names what makes a connected driver unusable (e.g. a zone's channel the driver
    does not have); each such problem blocks control, but the driver is kept (to release).
    """

    def __init__(self, make: Callable[[], Built], actuator: Actuator,
                 vet: Callable[[DriverCalls], list[str]], driver_name: str) -> None:
        self._make = make
        self.actuator = actuator
        self._vet = vet
        self.driver: DriverCalls | None = None
        self.driver_name = driver_name  # the config's until connected (``auto``), then its own
        self.blocked = ""  # why the controller only monitors (permanently)
        self.waiting = "starting"  # why there is no driver yet (retried)
        self._connecting: Job | None = None
        self._next_attempt = float("-inf")
        self._backoff = FIRST_BACKOFF_SECONDS

    @property
    def message(self) -> str:
        """Why there is no control ("" when connected and not blocked)."""
        return self.blocked or ("" if self.driver is not None else self.waiting)

    def block(self, why: str) -> None:
        """Monitor only, for good (a refusal is a fact, not a failing BMC)."""
        self.blocked = why
        log.error("fan control off, monitoring only: %s", why)

    def ensure(self, now: float) -> DriverCalls | None:
        """The driver, connecting it first if due (waits at most the actuator's deadline)."""
        if self.driver is not None or self.blocked or now < self._next_attempt:
            return self.driver
        if self._connecting is None:
            if self.actuator.busy:
                return None
            self._connecting = self.actuator.submit(self._make, Call.CONNECT)
        job = self._connecting
        if not job.done.wait(self.actuator.deadline_seconds):
            self.waiting = "connecting to the BMC (no answer yet)"
            return None
        self._connecting = None
        if isinstance(job.error, (Unsupported, Refused)):
            self.block(str(job.error))
            return None
        if job.error is not None:
            self._retry_later(now, job.error)
            return None
        driver = DriverCalls(job.value, self.actuator)
        for problem in self._vet(driver):
            self.block(problem)
        self.driver, self.driver_name = driver, driver.name
        return driver

    def _retry_later(self, now: float, error: BaseException) -> None:
        wait, self._backoff = self._backoff, min(self._backoff * 2, MAX_BACKOFF_SECONDS)
        self.waiting = f"connecting: {error}"
        self._next_attempt = now + wait
        if isinstance(error, GpuwatchdError):
            log.warning("fan control: %s; retrying in %.0f s", error, wait)
        else:
            log.error("fan control: making the driver failed; retrying in %.0f s", wait,
                      exc_info=error)

    def detach(self, drain_seconds: float) -> DriverCalls | None:
        """Take the driver away (exit); a connect still under way is waited for (at most
        ``drain_seconds``) and its links closed."""
        driver, self.driver = self.driver, None
        job, self._connecting = self._connecting, None
        if driver is None and job is not None:
            self.actuator.drain(drain_seconds)
            if isinstance(job.value, Built):
                job.value.close()
        return driver
