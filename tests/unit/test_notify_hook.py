"""The optional notification hook (gpuwatchd.health.hook): a command and a local webhook."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gpuwatchd import config
from gpuwatchd.config.schema import NotifyConfig
from gpuwatchd.errors import ConfigError
from gpuwatchd.health import hook
from gpuwatchd.health.events import MESSAGE_IDS, Event

FAILED = Event("fan_failed", "critical", "BMC idrac fan Fan3A: 0 rpm",
               (("BMC", "idrac"), ("SENSOR", "Fan3A")))
RECOVERED = Event("condition_cleared", "info", "BMC idrac fan Fan3A: recovered", (),
                  fault="critical")
ZONE = Event("zone_mode", "info", "fan zone gpu: start -> control")
SECRET = "s3cr3t-token"  # noqa: S105 - a test token, never a real one


class Receiver:
    """A webhook on 127.0.0.1: records each POST (body, Authorization), optionally slow."""

    def __init__(self, delay_seconds: float = 0.0) -> None:
        self.posts: list[tuple[dict[str, object], str]] = []
        self.delay = delay_seconds
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(receiver.delay)
                receiver.posts.append((json.loads(body), self.headers.get("Authorization", "")))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook/{SECRET}-path"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def test_webhook_gets_the_event_as_json_with_the_token_from_a_file(
        receiver: Receiver, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text(SECRET + "\n")
    h = hook.build(NotifyConfig(webhook_url=receiver.url, webhook_token_file=str(token)))
    assert h is not None
    try:
        h.offer([FAILED, ZONE, RECOVERED])  # the zone change is info: below min_severity
        assert h.drain(5.0)
    finally:
        h.close()
    assert [p["kind"] for p, _ in receiver.posts] == ["fan_failed", "condition_cleared"]
    body, auth = receiver.posts[0]
    assert auth == f"Bearer {SECRET}"
    assert body["message_id"] == MESSAGE_IDS["fan_failed"]
    assert body["severity"] == "critical" and body["message"] == "BMC idrac fan Fan3A: 0 rpm"
    assert body["fields"] == {"BMC": "idrac", "SENSOR": "Fan3A"}
    assert set(body) == {"message_id", "kind", "severity", "message", "fields", "host", "time"}


def test_command_gets_the_event_on_stdin(tmp_path: Path) -> None:
    out = tmp_path / "event.json"
    script = f"import sys; open({str(out)!r}, 'wb').write(sys.stdin.buffer.read())"
    h = hook.build(NotifyConfig(command=(sys.executable, "-c", script)))
    assert h is not None
    try:
        h.offer([FAILED])
        assert h.drain(10.0)
    finally:
        h.close()
    assert json.loads(out.read_text())["kind"] == "fan_failed"
    assert h.sent == 1


def test_rate_limit_drops_the_excess(receiver: Receiver,
                                     caplog: pytest.LogCaptureFixture) -> None:
    h = hook.Hook(NotifyConfig(webhook_url=receiver.url, max_per_hour=2))
    try:
        h.offer([FAILED] * 5)
        assert h.drain(5.0)
    finally:
        h.close()
    assert (len(receiver.posts), h.dropped) == (2, 3)
    assert "rate limit" in caplog.text


def test_a_slow_webhook_never_blocks_the_loop_and_no_secret_is_logged(
        caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    slow = Receiver(delay_seconds=2.0)
    token = tmp_path / "token"
    token.write_text(SECRET)
    h = hook.build(NotifyConfig(webhook_url=slow.url, webhook_token_file=str(token),
                                timeout_seconds=0.5))
    assert h is not None
    try:
        started = time.monotonic()
        h.offer([FAILED, FAILED])
        assert time.monotonic() - started < 0.2  # the loop's side only queues
        assert h.drain(5.0)
    finally:
        h.close()
        slow.close()
    assert h.sent == 0
    assert "delivering fan_failed failed" in caplog.text
    assert SECRET not in caplog.text and "/hook/" not in caplog.text


def test_off_by_default_and_an_unreadable_token_turns_it_off(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert hook.build(config.loads("interval_seconds: 2\n").notify) is None
    missing = NotifyConfig(webhook_url="http://127.0.0.1:9/x",
                           webhook_token_file=str(tmp_path / "none"))
    with caplog.at_level(logging.ERROR):
        assert hook.build(missing) is None
    assert "notification off" in caplog.text


@pytest.mark.parametrize(("text", "message"), [
    ("notify: {webhook_url: 'ftp://x/y'}", "must start with http:// or https://"),
    ("notify: {command: [page-me]}", "must be an absolute path"),
    ("notify: {webhook_token_file: /etc/t}", "has no effect without webhook_url"),
    ("notify: {webhook_url: 'https://x', webhook_token_file: t}", "must be an absolute path"),
    ("notify: {min_severity: loud}", "is not one of info, warning, critical"),
    ("health: {ignore: [fan_gone]}", "'fan_gone' is not one of"),
    ("health: {xid_window_seconds: 1}", "health.xid_window_seconds"),
])
def test_config_refuses(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("?", r"\?")):
        config.loads(text + "\n", "x.yaml")


def test_config_defaults() -> None:
    cfg = config.loads("interval_seconds: 2\n")
    assert cfg.health.ignore == ("sensor_warning",) and cfg.health.xid_window_seconds == 600
    assert cfg.notify == NotifyConfig()
    cfg = config.loads("health: {ignore: []}\nnotify: {command: [/bin/true], "
                       "min_severity: critical, max_per_hour: 5}\n")
    assert cfg.health.ignore == () and cfg.notify.command == ("/bin/true",)
