"""Opt-in remediation: restart nvidia-gridd, and nothing else, under strict limits.

Off by default (``licence.remediation.restart_gridd: false``). When on, gridd is restarted
(``systemctl restart nvidia-gridd.service``) only:

- ``unit_down``: the unit is ``failed`` or ``inactive``;
- ``config_changed``: gridd.conf or a token changed after gridd started (gridd reads both at
  start), the change is at least :data:`SETTLE_SECONDS` old and a token or server is there;
- ``grace_stalled``: a GPU has been in unlicensed grace for ``unlicensed_seconds`` with gridd up.

Never while any GPU holds a licence, never while a GPU's state is unknown, at most once per
30 minutes and 3 times in any 24 hours; each restart is counted, logged, and written to
``state_file`` *before* it is attempted, so a crash or a daemon restart cannot reset the
limits (with ``state_file: null`` the limits hold only for the life of the process). If the
file cannot be written, nothing is restarted. A restart only mitigates: AgentBaker added one
and reverted it (Azure/AgentBaker#6036, #6067).

Deliberately never automated: fetching or replacing tokens, editing FeatureType, setting the
clock, reloading the driver, resetting the GPU, rebooting, deleting gridd's trusted store.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from dataclasses import dataclass

from gpuwatchd.clock import Clock
from gpuwatchd.config.files import MAX_STATE_BYTES, FileRefused, read_regular
from gpuwatchd.errors import GpuwatchdError
from gpuwatchd.licence.commands import Runner
from gpuwatchd.licence.gridd import UNIT, UnitState

log = logging.getLogger(__name__)

RESTART_ARGV = ("systemctl", "restart", UNIT)
RESTART_TIMEOUT_SECONDS = 60.0  # systemd's default stop timeout is 90 s; gridd stops in ~1 s
MIN_INTERVAL_SECONDS = 1800.0  # at most once per 30 minutes
MAX_PER_DAY = 3
DAY_SECONDS = 86400.0
SETTLE_SECONDS = 60.0  # let an operator finish editing gridd.conf / copying the token
REASONS = ("unit_down", "config_changed", "grace_stalled")
SUPPRESSIONS = ("licensed", "unknown_state", "interval", "daily", "state_file")


@dataclass(frozen=True)
class Situation:
    """What the collector knows this cycle (only guests: gridd is irrelevant on a host)."""

    applicable: bool  # some GPU's licence is held by this OS
    any_licensed: bool  # some GPU reports a licence (the driver's featureState != 0)
    any_unknown: bool  # some GPU's probe failed: do not act blind
    unit: UnitState
    gridd_started_wall: float | None
    changed_wall: float | None  # newest mtime of gridd.conf and the tokens
    configured: bool  # a usable token or a legacy server address
    longest_grace_seconds: float  # the longest current unlicensed-grace stretch


@dataclass(frozen=True)
class Action:
    wall: float
    reason: str
    ok: bool
    message: str


class Remediator:
    """Decides and performs gridd restarts; every decision is counted."""

    def __init__(self, clock: Clock, runner: Runner, *, enabled: bool,
                 grace_seconds: float = 600.0, state_file: str | None = None) -> None:
        self._clock = clock
        self._runner = runner
        self.enabled = enabled
        self._grace = grace_seconds
        self._state_file = state_file
        self._last_mono: float | None = None
        self.restarts: Counter[str] = Counter()
        self.suppressed: Counter[str] = Counter()
        self.last: Action | None = None
        self._history, self._history_error = self._load()

    def trigger(self, s: Situation) -> str | None:
        """The reason gridd would be restarted now, before any guard (None: nothing wrong)."""
        unit = s.unit
        if not s.applicable or not unit.installed or unit.load_state == "masked":
            return None
        if unit.active_state in ("failed", "inactive"):
            return "unit_down"
        if not unit.up:
            return None  # activating, deactivating, reloading: let systemd finish
        now = self._clock.time()
        if (s.configured and s.changed_wall is not None and s.gridd_started_wall is not None
                and s.changed_wall > s.gridd_started_wall + 1.0
                and now - s.changed_wall >= SETTLE_SECONDS):
            return "config_changed"
        if s.longest_grace_seconds >= self._grace:
            return "grace_stalled"
        return None

    def consider(self, s: Situation) -> Action | None:
        """Restart gridd if a trigger holds and every guard allows it."""
        reason = self.trigger(s)
        if reason is None or not self.enabled:
            return None
        blocked = self._guard(s)
        if blocked is not None:
            self.suppressed[blocked] += 1
            return None
        return self._restart(reason)

    def _guard(self, s: Situation) -> str | None:
        if s.any_licensed:
            return "licensed"
        if s.any_unknown:
            return "unknown_state"
        now, mono = self._clock.time(), self._clock.monotonic()
        if self._last_mono is not None and mono - self._last_mono < MIN_INTERVAL_SECONDS:
            return "interval"
        recent = [t for t in self._history if now - t < DAY_SECONDS]  # future stamps count too
        if recent and now - max(recent) < MIN_INTERVAL_SECONDS:
            return "interval"
        if len(recent) >= MAX_PER_DAY:
            return "daily"
        if self._history_error:
            self._history, self._history_error = self._load()  # fixed by the operator?
            if self._history_error:
                return "state_file"
        return None

    def _restart(self, reason: str) -> Action | None:
        now = self._clock.time()
        history = [t for t in self._history if now - t < DAY_SECONDS] + [now]
        if not self._save(history):
            self.suppressed["state_file"] += 1
            return None
        self._history, self._last_mono = history, self._clock.monotonic()
        self.restarts[reason] += 1
        log.warning("licence remediation: restarting %s (%s; restart %d in 24 h)", UNIT, reason,
                    len(history))
        try:
            result = self._runner(RESTART_ARGV, RESTART_TIMEOUT_SECONDS)
            ok = result.returncode == 0
            message = "" if ok else (result.stderr or result.stdout).strip()[:200]
        except GpuwatchdError as exc:
            ok, message = False, str(exc)
        if not ok:
            log.error("licence remediation: restarting %s failed: %s", UNIT, message)
        self.last = Action(now, reason, ok, message)
        return self.last

    def _load(self) -> tuple[list[float], str]:
        if self._state_file is None:
            return [], ""
        try:
            data = json.loads(read_regular(self._state_file, MAX_STATE_BYTES))
            return [float(t) for t in data["restarts"]], ""
        except FileRefused as exc:
            if exc.missing:
                return [], ""
            log.error("licence remediation disabled: cannot read %s", exc)
            return [], exc.problem
        except (ValueError, KeyError, TypeError) as exc:
            log.error("licence remediation disabled: cannot read %s: %s", self._state_file, exc)
            return [], str(exc)

    def _save(self, history: list[float]) -> bool:
        """Write the history atomically; False (and nothing restarted) if it cannot be."""
        if self._state_file is None:
            return True
        tmp = f"{self._state_file}.tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as handle:
                json.dump({"restarts": history}, handle)
            os.replace(tmp, self._state_file)
        except OSError as exc:
            log.error("licence remediation: not restarting, cannot write %s: %s",
                      self._state_file, exc.strerror)
            return False
        self._history_error = ""
        return True
