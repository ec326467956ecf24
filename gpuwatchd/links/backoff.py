"""Session backoff for the BMC links: one mechanism for IPMI and Redfish logins.

A session that cannot be opened (BMC unreachable, rebooting) is retried after 1 s, doubling to
60 s; while backing off, every call fails fast with the last error and when the next attempt
is due, so a tick never waits on a dead BMC. A refused login (``Refused``, ``ConfigError``)
waits the longest delay at once (see AUTH_BACKOFF_SECONDS).
"""

from __future__ import annotations

from gpuwatchd.errors import ConfigError, GpuwatchdError, Refused

FIRST_BACKOFF_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 60.0
# BMCs lock accounts or block addresses after repeated failed logins, so a refused login is
# retried only after the longest backoff.
AUTH_BACKOFF_SECONDS = MAX_BACKOFF_SECONDS


class SessionBackoff:
    """When the next session open may be tried, and the error to repeat until then."""

    def __init__(self, first_seconds: float = FIRST_BACKOFF_SECONDS,
                 max_seconds: float = MAX_BACKOFF_SECONDS,
                 auth_seconds: float = AUTH_BACKOFF_SECONDS) -> None:
        self._first = first_seconds
        self._max = max_seconds
        self._auth = auth_seconds
        self.delay_seconds = first_seconds  # the wait after the next failure
        self.next_attempt = float("-inf")  # monotonic time of the next allowed attempt
        self.last_error: GpuwatchdError | None = None

    def check(self, now: float) -> None:
        """Raise the last error (same class, Refused with its code) while backing off."""
        err = self.last_error
        if err is None or now >= self.next_attempt:
            return
        retry = f"; next attempt in {self.next_attempt - now:.0f} s"
        if isinstance(err, Refused):
            raise Refused(f"{err}{retry}", err.code)
        raise type(err)(f"{err}{retry}")

    def failed(self, now: float, exc: GpuwatchdError) -> None:
        """An open failed at ``now``: wait before the next one (longest for a refusal)."""
        refused = isinstance(exc, (Refused, ConfigError))
        self.next_attempt = now + (self._auth if refused else self.delay_seconds)
        self.delay_seconds = min(self.delay_seconds * 2, self._max)
        self.last_error = exc

    def succeeded(self) -> bool:
        """An open worked: start again from the first delay; True if it had been failing."""
        recovered = self.last_error is not None
        self.delay_seconds, self.last_error = self._first, None
        return recovered
