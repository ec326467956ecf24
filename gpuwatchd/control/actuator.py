"""Fan-driver calls on their own thread, each under a deadline: a BMC that stops answering
never blocks the control loop (DESIGN.md: "a missed deadline is a stale input, never a
blocked loop").

:meth:`Actuator.call` runs one driver function on the worker and waits at most
``deadline_seconds``. A call that misses it raises DeadlineExceeded (a Transient: counted as a
failed write, and the controller goes to failsafe after ``write_failures_to_failsafe`` of
them); while it is still hung, further calls fail at once instead of queueing behind it.
The mechanism is the collectors' (gpuwatchd.worker).
"""

from __future__ import annotations

from gpuwatchd.worker import Job, Worker

__all__ = ["Actuator", "Job"]


class Actuator(Worker):
    """One worker thread for one fan driver's calls (thread name ``fan-<target>``)."""

    def __init__(self, name: str, deadline_seconds: float) -> None:
        super().__init__(name, deadline_seconds, thread_name=f"fan-{name}")
