"""Optional notification without Prometheus: each event to a command or a webhook.

Off by default (``notify:`` in the config). An event (gpuwatchd.health.events) whose severity
(a recovery: its fault's) is at least ``notify.min_severity`` is queued and delivered on the
hook's own thread, each delivery under ``notify.timeout_seconds``, so a slow webhook never
delays the loop; at most ``notify.max_per_hour`` are sent (a token bucket), the rest are
dropped and counted in the log. Payload, one JSON object::

    {"message_id": "...", "kind": "fan_failed", "severity": "critical",
     "message": "BMC idrac fan Fan3A: 0 rpm", "fields": {"BMC": "idrac", "SENSOR": "Fan3A"},
     "host": "node1", "time": 1764650000.0}

- ``command``: run without a shell, the payload on stdin (``echo '{...}' | /usr/local/bin/x``).
- ``webhook_url``: POSTed as ``application/json`` (``curl -H 'Content-Type: application/json'
  -d @event.json URL``), e.g. ntfy (``https://ntfy.sh/<topic>``) or a chat incoming webhook;
  ``Authorization: Bearer <token>`` with the token read from ``webhook_token_file`` (through
  gpuwatchd.config.files; the token and the URL's path never appear in a log line).
"""

from __future__ import annotations

import json
import logging
import queue
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterable
from urllib.parse import urlsplit

from gpuwatchd.config.files import FileRefused, read_regular
from gpuwatchd.config.schema import NotifyConfig
from gpuwatchd.health.events import Event
from gpuwatchd.model import Severity

log = logging.getLogger(__name__)
MAX_TOKEN_BYTES = 4096
QUEUE_LENGTH = 64  # events waiting for delivery; more are dropped (and counted)
CLOSE_WAIT_SECONDS = 1.0
RANK: dict[Severity, int] = {"info": 0, "warning": 1, "critical": 2}


def build(config: NotifyConfig) -> Hook | None:
    """The hook for ``config``, started; None when neither a command nor a URL is set."""
    if not config.command and config.webhook_url is None:
        return None
    token = ""
    if config.webhook_token_file is not None:
        try:
            token = read_regular(config.webhook_token_file, MAX_TOKEN_BYTES).decode().strip()
        except (FileRefused, UnicodeDecodeError) as exc:
            problem = exc.problem if isinstance(exc, FileRefused) else "not UTF-8 text"
            log.error("notify: webhook token file %s: %s; notification off",
                      config.webhook_token_file, problem)
            return None
    return Hook(config, token)


def payload(event: Event, host: str, now_wall: float) -> bytes:
    return json.dumps({"message_id": event.message_id, "kind": event.kind,
                       "severity": event.severity, "message": event.message,
                       "fields": dict(event.fields), "host": host, "time": now_wall}).encode()


class Hook:
    """Delivers events on its own daemon thread; :meth:`offer` never blocks."""

    def __init__(self, config: NotifyConfig, token: str = "") -> None:
        self._config = config
        self._token = token
        self._queue: queue.Queue[Event | None] = queue.Queue(QUEUE_LENGTH)
        self._tokens = float(config.max_per_hour)
        self._refilled = time.monotonic()
        self.dropped = 0
        self.sent = 0
        self._host = socket.gethostname()
        self._thread = threading.Thread(target=self._run, name="notify-hook", daemon=True)
        self._thread.start()

    def offer(self, found: Iterable[Event]) -> None:
        """Queue the events that are heavy enough, within the rate limit."""
        floor = RANK[self._config.min_severity]
        for e in found:
            if RANK[e.weight] < floor:
                continue
            if not self._take_token():
                self._drop(e, "rate limit")
                continue
            try:
                self._queue.put_nowait(e)
            except queue.Full:
                self._drop(e, "queue full")

    def _take_token(self) -> bool:
        now = time.monotonic()
        rate = self._config.max_per_hour / 3600.0
        self._tokens = min(float(self._config.max_per_hour),
                           self._tokens + (now - self._refilled) * rate)
        self._refilled = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    def _drop(self, event: Event, why: str) -> None:
        self.dropped += 1
        log.warning("notify: event %s not sent (%s; %d dropped so far)", event.kind, why,
                    self.dropped)

    def _run(self) -> None:
        while (event := self._queue.get()) is not None:
            try:
                self._deliver(payload(event, self._host, time.time()))
                self.sent += 1
            except (OSError, ValueError, subprocess.SubprocessError, DeliveryFailed) as exc:
                log.warning("notify: delivering %s failed: %s", event.kind, _safe(exc))
            finally:
                self._queue.task_done()

    def _deliver(self, body: bytes) -> None:
        timeout = self._config.timeout_seconds
        if self._config.command:
            # argv from the validated config (an absolute path), never a shell
            done = subprocess.run(self._config.command, input=body, timeout=timeout,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
            if done.returncode != 0:
                tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
                log.warning("notify: %s exited %d %s", self._config.command[0],
                            done.returncode, tail[0][:200])
        if self._config.webhook_url is not None:
            self._post(self._config.webhook_url, body, timeout)

    def _post(self, url: str, body: bytes, timeout: float) -> None:
        headers = {"Content-Type": "application/json", "User-Agent": "gpuwatchd"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 - http(s) only, checked at config load
        try:
            with urllib.request.urlopen(request, timeout=timeout) as reply:  # noqa: S310
                reply.read(4096)
        except OSError as exc:
            raise DeliveryFailed(f"POST to {urlsplit(url).netloc}: {_safe(exc)}") from None

    def drain(self, timeout_seconds: float) -> bool:
        """Wait until every queued event was handled (tests); False on timeout."""
        deadline = time.monotonic() + timeout_seconds
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        return not self._queue.unfinished_tasks

    def close(self) -> None:
        """Stop after the event being delivered (queued ones are dropped); waits at most a
        second (a reload or a shutdown is not held up by a slow webhook: the thread is a
        daemon and ends after its delivery's own timeout)."""
        while True:
            try:
                self._queue.get_nowait()
                self._queue.task_done()
            except queue.Empty:
                break
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass
        self._thread.join(timeout=CLOSE_WAIT_SECONDS)


class DeliveryFailed(Exception):
    """A webhook did not take an event (the message names the host, never the path)."""


def _safe(exc: BaseException) -> str:
    """An error without a URL path (a chat webhook's path is its secret)."""
    if isinstance(exc, DeliveryFailed):
        return str(exc)
    reason = getattr(exc, "reason", None)
    code = getattr(exc, "code", None)
    if code is not None:
        return f"HTTP {code}"
    return f"{type(exc).__name__}: {reason}" if reason is not None else type(exc).__name__
