"""nvidia-gridd, the guest's licensing daemon: its systemd unit state and its journal lines.

Unit state: ``systemctl show nvidia-gridd.service --property=...`` (key=value lines; a unit
that is not installed answers rc 0 with ``LoadState=not-found``; without systemd as PID 1 the
command fails and the state is unknown). Journal: ``journalctl --unit=nvidia-gridd.service
--follow --output=cat``, sorted into a few kinds with tolerant patterns. Journal text is
evidence for the operator and a counter, never the source of a GPU's state.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from gpuwatchd.clock import Clock
from gpuwatchd.errors import GpuwatchdError, NotInstalled
from gpuwatchd.licence.commands import Runner

UNIT = "nvidia-gridd.service"
SHOW_ARGV = ("systemctl", "show", UNIT, "--no-pager",
             "--property=LoadState,ActiveState,SubState,ActiveEnterTimestampMonotonic")
SHOW_TIMEOUT_SECONDS = 5.0

# Verbatim gridd lines these patterns were written from are in gridd-licence.md (d) and in
# tests/data/gridd/*.journal (with where each was seen); the renewal and expiry wordings come
# from nvidia-settings' UI strings (no gridd sample was found). The table's order is the
# exposition order of gpuwatchd_gridd_events_total; the first pattern that matches wins.
_HARMLESS_UNSET = re.compile(r"^(?:backup)?server(?:address|port)$", re.IGNORECASE)
# NOTE(field evidence): NLS reports a clock moved back as the reason of a failure, e.g.
# "Failed to acquire license from api.cls.licensing.nvidia.com (Info: NVIDIA RTX Virtual
# Workstation - Error: Clock windback has been detected)": a clock problem, not a server one.
_NOT_WINDBACK = r"(?!.*clock windback)"
_EVENT_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(pattern, re.IGNORECASE)) for kind, pattern in (
        ("acquired", r"licen[cs]e acquired successfully|system is licensed for"),
        ("renew_failed", r"failed to renew licen[cs]e" + _NOT_WINDBACK),
        ("renewing", r"renewing licen[cs]e"),
        ("expired", r"licen[cs]e (?:has )?expired"),
        ("register_failed", r"(?:failed to register client|failed to update local trusted "
                            r"store)" + _NOT_WINDBACK),
        ("acquire_failed", r"failed to acquire" + _NOT_WINDBACK),
        ("acquiring", r"acquiring licen[cs]e"),
        ("not_found", r"valid (?:grid |vgpu )?licen[cs]e not found"),
        # gridd.conf and the client configuration token (NLS): missing, unreadable, corrupt
        # or issued for another service instance; gridd then exits ("Shutdown (1039)").
        ("config_error", r"invalid feature type|unable to open directory"
                         r"|configuration parameter\s*\((?P<keys>[^)]*)\)\s*not set"
                         r"|failed to open file"
                         r"|unable to fetch the client configuration token"
                         r"|failed to read configurations from client configuration token"
                         r"|failed to decode signature from token"
                         r"|failed to setup cloud licen[cs]e manager"),
        ("clock_windback", r"clock windback"),
        ("started", r"^\s*started \(\d+\)|nls initialized|platform initialized"),
    ))
# What journalctl puts before gridd's text in its default ("short", "short-iso", "short-full")
# outputs; the follower asks for --output=cat, but pasted and captured lines carry it.
_JOURNAL_PREFIX = re.compile(
    r"^(?:(?:[A-Z][a-z]{2} )?[A-Z][a-z]{2} [ \d]?\d \d\d:\d\d:\d\d(?:\.\d+)?(?: [A-Z]{2,5})?"
    r"|\d{4}-\d\d-\d\d[T ][\d:.]+(?:[+-]\d\d:?\d\d|Z)?)"
    r"\s+\S+\s+nvidia-gridd(?:\[\d+\])?:\s*")
EVENT_KINDS = (*(kind for kind, _ in _EVENT_PATTERNS), "other")


@dataclass(frozen=True)
class UnitState:
    """The unit as systemd sees it; ``load_state`` "" and ``error`` set when unknown."""

    load_state: str = ""
    active_state: str = ""
    sub_state: str = ""
    active_since_monotonic: float | None = None  # CLOCK_MONOTONIC seconds; None if never
    error: str = ""
    # False: no systemd to ask from here (a container: the GPU operator runs gridd in its
    # driver container); gridd's unit state is then not applicable, never a failure
    visible: bool = True

    @property
    def known(self) -> bool:
        return bool(self.load_state)

    @property
    def installed(self) -> bool:
        return self.load_state not in ("", "not-found")

    @property
    def up(self) -> bool | None:
        """True when active; None when unknown or not installed."""
        if not self.installed:
            return None
        return self.active_state == "active"

    @property
    def label(self) -> str:
        """active, inactive, failed, activating, ..., not_found, masked, not_visible or
        unknown."""
        if not self.known:
            return "unknown" if self.visible else "not_visible"
        if not self.installed:
            return "not_found"
        if self.load_state == "masked":
            return "masked"
        return self.active_state or "unknown"


UNIT_LABELS = ("active", "reloading", "inactive", "failed", "activating", "deactivating",
               "masked", "not_found", "unknown")  # the one-hot; not_visible: no series at all
# systemctl in a container without systemd as PID 1 (observed on Debian 12 images):
# "System has not been booted with systemd as init system (PID 1). Can't operate." and
# "Failed to connect to bus: No such file or directory"
_NO_SYSTEMD = ("not been booted with systemd", "Failed to connect to bus")


def parse_show(text: str) -> UnitState:
    """``systemctl show`` key=value output -> UnitState."""
    values = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    since = values.get("ActiveEnterTimestampMonotonic", "").strip()
    since_s = int(since) / 1e6 if since.isdigit() and int(since) > 0 else None
    return UnitState(values.get("LoadState", "").strip(), values.get("ActiveState", "").strip(),
                     values.get("SubState", "").strip(), since_s)


def read_unit(runner: Runner) -> UnitState:
    """The unit state now; failures (no systemd, timeout) give an unknown state with the error."""
    try:
        result = runner(SHOW_ARGV, SHOW_TIMEOUT_SECONDS)
    except NotInstalled as exc:  # no systemctl: a container
        return UnitState(error=str(exc), visible=False)
    except GpuwatchdError as exc:
        return UnitState(error=str(exc))
    if result.returncode != 0:
        first = (result.stderr or result.stdout).strip().splitlines()[:1]
        visible = not any(text in (result.stderr + result.stdout) for text in _NO_SYSTEMD)
        return UnitState(error=f"systemctl show {UNIT}: "
                               f"{first[0] if first else f'exit {result.returncode}'}",
                         visible=visible)
    state = parse_show(result.stdout)
    if not state.known:
        return UnitState(error=f"systemctl show {UNIT}: no LoadState in the output")
    return state


def message(line: str) -> str:
    """gridd's own text: ``Mar 31 06:53:50 host nvidia-gridd[1039]: NLS initialized`` ->
    ``NLS initialized`` (a line without a journal prefix is returned stripped)."""
    return _JOURNAL_PREFIX.sub("", line.strip(), count=1)


def classify(line: str) -> str:
    """The kind of one gridd journal line (see :data:`EVENT_KINDS`), with or without the
    journal's timestamp/host/``nvidia-gridd[pid]:`` prefix."""
    text = message(line)
    for kind, pattern in _EVENT_PATTERNS:
        match = pattern.search(text)
        if match is None:
            continue
        keys = match.groupdict().get("keys")
        if kind == "config_error" and keys is not None and all(
                _HARMLESS_UNSET.match(k) for k in keys.split()):
            return "other"  # NLS logs "( ServerAddress ) not set" on every start: harmless
        return kind
    return "other"


@dataclass(frozen=True)
class GriddEvent:
    """The latest line of one kind (text shortened; gridd does not log token contents)."""

    kind: str
    wall: float
    text: str
    seq: int = 0  # order of arrival


class EventCounter:
    """Counts gridd journal lines by kind; fed by any iterable-returning line source."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.counts: dict[str, int] = dict.fromkeys(EVENT_KINDS, 0)
        self.last: dict[str, GriddEvent] = {}
        self._seq = 0

    def feed(self, lines: Iterable[str]) -> list[GriddEvent]:
        """Classify and count new lines; returns the events they made."""
        now = self._clock.time()
        out = []
        for line in lines:
            text = message(line)
            if not text:
                continue
            kind = classify(text)
            self.counts[kind] += 1
            self._seq += 1
            event = GriddEvent(kind, now, text[:200], self._seq)
            self.last[kind] = event
            out.append(event)
        return out

    def latest(self) -> GriddEvent | None:
        """The most recent non-"other" event, for the status line."""
        events = [e for e in self.last.values() if e.kind != "other"]
        return max(events, key=lambda e: e.seq) if events else None
