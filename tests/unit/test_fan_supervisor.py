"""Connecting the fan driver (gpuwatchd.control.supervisor), with fake drivers and makers on
a real actuator thread: slow connects picked up later, backoff, permanent refusals."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping

import pytest

from gpuwatchd.control.actuator import Actuator, DriverCalls
from gpuwatchd.control.factory import Built
from gpuwatchd.control.supervisor import (
    FIRST_BACKOFF_SECONDS,
    MAX_BACKOFF_SECONDS,
    DriverSupervisor,
)
from gpuwatchd.errors import Refused, Transient, Unsupported

DEADLINE = 0.05


class FakeDriver:
    name = "dell"
    target = "idrac"

    def channels(self) -> tuple[str, ...]:
        return ("fan1", "fan2")

    def take_control(self) -> None:
        pass

    def write(self, duties: Mapping[str, float]) -> None:
        pass

    def in_control(self) -> bool | None:
        return None

    def failsafe(self) -> None:
        pass

    def release(self) -> None:
        pass

    def close(self) -> None:
        pass


class Maker:
    """A fake ``make_driver``: fails with the queued errors, then connects; ``gate`` holds it."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0
        self.closed = 0
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self) -> Built:
        self.calls += 1
        assert self.gate.wait(5.0)
        if self.errors:
            raise self.errors.pop(0)
        return Built(FakeDriver(), [self._closed])

    def _closed(self) -> None:
        self.closed += 1


@pytest.fixture
def actuator() -> Iterator[Actuator]:
    act = Actuator("idrac", DEADLINE)
    yield act
    act.close()


def supervisor(make: Maker, actuator: Actuator, *problems: str) -> DriverSupervisor:
    return DriverSupervisor(make, actuator, lambda driver: list(problems), "auto")


def test_connects_on_the_first_tick(actuator: Actuator) -> None:
    make = Maker()
    sup = supervisor(make, actuator)
    assert (sup.message, sup.driver_name) == ("starting", "auto")
    driver = sup.ensure(0.0)
    assert isinstance(driver, DriverCalls) and driver.channels() == ("fan1", "fan2")
    assert (sup.message, sup.driver_name, make.calls) == ("", "dell", 1)
    assert sup.ensure(1.0) is driver and make.calls == 1


def test_a_slow_connect_is_picked_up_on_a_later_tick_not_started_again(
        actuator: Actuator) -> None:
    make = Maker()
    make.gate.clear()
    sup = supervisor(make, actuator)
    assert sup.ensure(0.0) is None
    assert sup.message == "connecting to the BMC (no answer yet)"
    assert sup.ensure(1.0) is None and make.calls == 1  # still the first connect
    make.gate.set()
    assert actuator.drain(1.0)
    assert sup.ensure(2.0) is not None and make.calls == 1


def test_failed_connects_back_off_doubling_up_to_the_maximum(actuator: Actuator) -> None:
    make = Maker(*[Transient("no reply")] * 9)
    sup = supervisor(make, actuator)
    now, waits = 0.0, []
    while sup.ensure(now) is None:
        assert sup.message == "connecting: no reply"
        calls = make.calls
        wait = next(w for w in (0.5 * n for n in range(1, 1000))
                    if sup.ensure(now + w) is not None or make.calls > calls)
        waits.append(wait)
        now += wait
    assert waits == [FIRST_BACKOFF_SECONDS * 2 ** n for n in range(6)] + [MAX_BACKOFF_SECONDS] * 3
    assert make.calls == 10 and sup.message == ""


def test_an_unexpected_error_is_retried_too(actuator: Actuator) -> None:
    make = Maker(RuntimeError("bug in a driver"))
    sup = supervisor(make, actuator)
    assert sup.ensure(0.0) is None and sup.message == "connecting: bug in a driver"
    assert sup.ensure(FIRST_BACKOFF_SECONDS) is not None


@pytest.mark.parametrize("error", [Unsupported("no fan driver for this BMC (vendor Acme)"),
                                   Refused("not allowed", 0xd4)])
def test_a_refusal_blocks_for_good(actuator: Actuator, error: Exception) -> None:
    make = Maker(error)
    sup = supervisor(make, actuator)
    assert sup.ensure(0.0) is None
    assert sup.blocked == str(error) and sup.message == str(error)
    assert sup.ensure(10_000.0) is None and make.calls == 1


def test_a_vetoed_driver_blocks_control_but_is_kept_to_be_released(actuator: Actuator) -> None:
    sup = supervisor(Maker(), actuator, "zone gpu: fan9 not among the dell channels")
    driver = sup.ensure(0.0)
    assert driver is not None and sup.driver is driver
    assert sup.message == sup.blocked == "zone gpu: fan9 not among the dell channels"
    assert sup.ensure(1.0) is driver


def test_no_connect_is_queued_behind_a_hung_call(actuator: Actuator) -> None:
    hung = threading.Event()
    actuator.submit(lambda: hung.wait(5.0))
    make = Maker()
    sup = supervisor(make, actuator)
    assert sup.ensure(0.0) is None and make.calls == 0
    hung.set()
    assert actuator.drain(1.0)
    assert sup.ensure(1.0) is not None


def test_detach_closes_a_connect_that_finished_too_late(actuator: Actuator) -> None:
    make = Maker()
    make.gate.clear()
    sup = supervisor(make, actuator)
    assert sup.ensure(0.0) is None
    threading.Timer(0.05, make.gate.set).start()
    assert sup.detach(2.0) is None
    assert make.closed == 1


def test_detach_hands_over_the_connected_driver(actuator: Actuator) -> None:
    sup = supervisor(Maker(), actuator)
    driver = sup.ensure(0.0)
    assert sup.detach(1.0) is driver and sup.driver is None
