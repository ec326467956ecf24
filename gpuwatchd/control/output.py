"""What the controller wrote to the fans, and when. No I/O.

The duty is recorded as written: the whole percent the BMC gets (``ipmitool raw 0x30 0x30
0x02 0xff 0x22`` for 0.3425: 34 %), as a ratio (0.34), so metrics and status show what was
sent, not the zone's unrounded request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from gpuwatchd.config.fan_drivers import Channel
from gpuwatchd.control.drivers import Written, percent

CHANGE_RATIO = 0.005  # a duty this much away from the last one written is written again


def as_written(duty: float) -> float:
    """The duty as a BMC takes it: a whole percent (0.3425 -> 0.34)."""
    return percent(duty) / 100


@dataclass
class Output:
    """The duties last written per channel, the time of the write and the mode check, and
    the counts the controller publishes."""

    asked: dict[Channel, float] = field(default_factory=dict)  # as the zones asked (change test)
    written: dict[Channel, float] = field(default_factory=dict)  # as the BMC got them
    last_write_mono: float = float("-inf")
    # when manual mode was last sent: re-sent every reassert_seconds from here, whether or
    # not duties were written since (a write every tick must not postpone it forever)
    last_assert_mono: float = float("-inf")
    next_check_mono: float = float("-inf")
    writes: int = 0
    reverts: int = 0

    def changed(self, duties: Mapping[Channel, float]) -> bool:
        """True when a channel's duty moved by CHANGE_RATIO or more (or was never written)."""
        return any(abs(duty - self.asked.get(ch, -1.0)) >= CHANGE_RATIO
                   for ch, duty in duties.items())

    def wrote(self, duties: Mapping[Channel, float], now: float,
              written: Written | None = None) -> None:
        """``duties`` were written at ``now`` (``written``: what the driver says it did, where
        not simply sent as asked). A write the driver held back is not counted, and the duties
        stay "changed" so that the next tick offers them again."""
        self.last_write_mono = now
        if written is not None:
            self.written = dict(written.duties)
            if not written.sent:
                return
            self.asked = dict(duties)
            self.writes += 1
            return
        self.asked = dict(duties)
        self.written = {ch: as_written(duty) for ch, duty in duties.items()}
        self.writes += 1

    def forget(self) -> None:
        """Manual mode was (re)entered: every channel is written afresh."""
        self.asked, self.written = {}, {}
