"""Who has the fans: every transition of the ownership state machine (no I/O)."""

from __future__ import annotations

import itertools

import pytest

from gpuwatchd.control.ownership import TRANSITIONS, Event, FanOwnership, Ownership

AUTO, MANUAL, UNKNOWN = Ownership.AUTO, Ownership.MANUAL, Ownership.UNKNOWN


def test_the_table_is_total() -> None:
    assert set(TRANSITIONS) == set(itertools.product(Ownership, Event))


@pytest.mark.parametrize(("start", "event", "end"), [
    (AUTO, Event.TOOK_CONTROL, MANUAL),
    (MANUAL, Event.TOOK_CONTROL, MANUAL),  # a re-assert
    (UNKNOWN, Event.TOOK_CONTROL, MANUAL),  # re-asserted after a revert
    (AUTO, Event.HANDED_BACK, AUTO),
    (MANUAL, Event.HANDED_BACK, AUTO),  # failsafe or release answered
    (UNKNOWN, Event.HANDED_BACK, AUTO),
    (AUTO, Event.REVERTED, AUTO),
    (MANUAL, Event.REVERTED, UNKNOWN),  # the BMC took its fans back behind our back
    (UNKNOWN, Event.REVERTED, UNKNOWN),
])
def test_every_transition(start: Ownership, event: Event, end: Ownership) -> None:
    assert TRANSITIONS[(start, event)] is end
    for ever in (False, True):
        after = FanOwnership(start, ever).after(event)
        assert after.owner is end
        assert after.ever_manual == (ever or event is Event.TOOK_CONTROL)


@pytest.mark.parametrize(("state", "manual", "handed_back", "release_at_exit"), [
    (FanOwnership(AUTO, False), False, True, False),  # never touched: nothing to release
    (FanOwnership(AUTO, True), False, True, True),  # after a failsafe: exit settings still due
    (FanOwnership(MANUAL, True), True, False, True),
    (FanOwnership(UNKNOWN, True), False, False, True),
])
def test_what_each_state_means(state: FanOwnership, manual: bool, handed_back: bool,
                               release_at_exit: bool) -> None:
    assert state.manual is manual
    assert state.handed_back is handed_back
    assert state.release_at_exit is release_at_exit


def test_a_run_with_a_revert_a_failsafe_and_an_exit() -> None:
    s = FanOwnership()
    assert (s.owner, s.ever_manual) == (AUTO, False)  # as found at start
    s = s.after(Event.TOOK_CONTROL)
    assert s.manual
    s = s.after(Event.REVERTED)
    assert s.owner is UNKNOWN and not s.manual and not s.handed_back
    s = s.after(Event.TOOK_CONTROL).after(Event.HANDED_BACK)  # re-asserted, then failsafe
    assert s.owner is AUTO and s.release_at_exit
    assert FanOwnership() == FanOwnership(AUTO, False)  # frozen values, compared by value
