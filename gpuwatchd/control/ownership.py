"""Who has the fans: gpuwatchd (manual control) or the BMC (its automatic control). No I/O.

The controller changes the driver's mode with three kinds of call, and each successful one is
an event here (a failed call changes nothing: the BMC's mode is what it was):

==================  =========================================  ==============================
event               the call that succeeded                    then
==================  =========================================  ==============================
``TOOK_CONTROL``    manual mode (``ipmitool raw 0x30 0x30      ``MANUAL``
                    0x01 0x00`` on a Dell)
``HANDED_BACK``     failsafe or release (``... 0x01 0x01``)     ``AUTO``
``REVERTED``        none: the BMC was found back in automatic  ``MANUAL`` -> ``UNKNOWN``
                    mode behind gpuwatchd's back (read back,   (``AUTO``/``UNKNOWN`` stay)
                    or from fan speeds: gpuwatchd.control.
                    revert)
==================  =========================================  ==============================

``UNKNOWN`` is "not held, and not handed back": the BMC took its fans back on its own, so what
it runs now (and whether the settings gpuwatchd changed, such as the Dell third-party PCIe
response, are restored) is not gpuwatchd's doing. The controller re-asserts manual mode from
there, hands back in failsafe, and releases on exit, as from ``MANUAL``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

from gpuwatchd.model import Ownership


class Event(Enum):
    """A driver call that changed the fans' mode, or a revert found."""

    TOOK_CONTROL = "took_control"
    HANDED_BACK = "handed_back"
    REVERTED = "reverted"


# Every (state, event) pair: the table is total, so no event is ever silently ignored.
TRANSITIONS: dict[tuple[Ownership, Event], Ownership] = {
    (Ownership.AUTO, Event.TOOK_CONTROL): Ownership.MANUAL,
    (Ownership.MANUAL, Event.TOOK_CONTROL): Ownership.MANUAL,
    (Ownership.UNKNOWN, Event.TOOK_CONTROL): Ownership.MANUAL,
    (Ownership.AUTO, Event.HANDED_BACK): Ownership.AUTO,
    (Ownership.MANUAL, Event.HANDED_BACK): Ownership.AUTO,
    (Ownership.UNKNOWN, Event.HANDED_BACK): Ownership.AUTO,
    (Ownership.AUTO, Event.REVERTED): Ownership.AUTO,
    (Ownership.MANUAL, Event.REVERTED): Ownership.UNKNOWN,
    (Ownership.UNKNOWN, Event.REVERTED): Ownership.UNKNOWN,
}


@dataclass(frozen=True, slots=True)
class FanOwnership:
    """The owner now, and whether gpuwatchd ever held manual control in this run."""

    owner: Ownership = Ownership.AUTO
    ever_manual: bool = False

    def after(self, event: Event) -> FanOwnership:
        """The state once ``event`` happened."""
        return replace(self, owner=TRANSITIONS[(self.owner, event)],
                       ever_manual=self.ever_manual or event is Event.TOOK_CONTROL)

    @property
    def manual(self) -> bool:
        """gpuwatchd holds manual control (writes take effect)."""
        return self.owner is Ownership.MANUAL

    @property
    def handed_back(self) -> bool:
        """The BMC runs its automatic control because gpuwatchd left it there or gave it."""
        return self.owner is Ownership.AUTO

    @property
    def release_at_exit(self) -> bool:
        """Release the fans on exit: once manual, the exit settings are applied even after a
        failsafe hand-back (a failsafe is not a release: Dell ``third_party_pcie_on_exit``,
        Supermicro ``release_mode``)."""
        return self.ever_manual or not self.handed_back
