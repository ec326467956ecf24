"""The status document, the status socket server and its client, over real unix sockets.

Helpers here (``make_snapshot``, ``make_info``, ``socket_dir``, ``serving``) are shared with
test_ctl.py. Snapshots are synthetic (gpuwatchd.model); no mocks.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import importlib.util
import json
import os
import pkgutil
import shutil
import socket
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gpuwatchd.clock import ManualClock, span
from gpuwatchd.daemon.cli import _demo_config
from gpuwatchd.daemon.service import Daemon
from gpuwatchd.model import (
    Collected,
    CollectorResult,
    GpuFast,
    GpuReading,
    GpuSlow,
    GpuStatic,
    NvmlReading,
    Snapshot,
)
from gpuwatchd.sim.node import SimNode
from gpuwatchd.status import registry, sections
from gpuwatchd.status.client import NotRunning, ProtocolError, query
from gpuwatchd.status.document import DaemonInfo, build_status
from gpuwatchd.status.paths import (
    SYSTEM_SOCKET,
    StatusServerError,
    client_socket,
    default_socket,
    prepare_dir,
)
from gpuwatchd.status.sections import Section
from gpuwatchd.status.server import StatusServer
from gpuwatchd.status.table import render
from gpuwatchd.status.text import Style, age_text

NOW = 1000.0  # monotonic "now" for every document here


def make_gpu(index: int, temp: float, up: bool = True, error: str = "") -> GpuReading:
    if not up:
        return GpuReading(index, f"GPU-{index:04d}", "Tesla P40", False, error=error)
    return GpuReading(index, f"GPU-{index:04d}", "Tesla P40", True,
                      fast=GpuFast(temperature_celsius=temp, margin_celsius=90.0 - temp,
                                   power_watts=120.5, fan_speed_ratios=(0.35,)),
                      static=GpuStatic(slowdown_celsius=90.0, shutdown_celsius=95.0),
                      slow=GpuSlow(power_limit_enforced_watts=250.0))


def make_result(name: str = "gpu", readings: tuple[object, ...] = (), ok: bool = True,
                age: float | None = 0.5, error: str = "") -> CollectorResult:
    """A collector result whose last success was ``age`` seconds before NOW (None: never)."""
    updated = 0.0 if age is None else NOW - age
    return CollectorResult(name, ok=ok, duration_seconds=0.02, updated_wall=1.7e9,
                           updated_mono=updated, stale_after_seconds=7.5, error=error,
                           collected=Collected(readings=readings))


def make_snapshot(gpus: tuple[GpuReading, ...] | None = None, nvml_up: bool = True,
                  extra: tuple[CollectorResult, ...] = (), age: float = 0.5) -> Snapshot:
    """Two healthy P40s at 54 and 61 C unless told otherwise."""
    gpus = (make_gpu(0, 54.0), make_gpu(1, 61.0)) if gpus is None else gpus
    nvml = NvmlReading(nvml_up, "535.54.03" if nvml_up else "", "" if nvml_up else "driver gone")
    return Snapshot(seq=7, taken_wall=1.7e9, taken_mono=NOW - 0.2,
                    results=(make_result(readings=(nvml, *gpus), age=age), *extra))


def make_info(**changes: Any) -> DaemonInfo:
    values: dict[str, Any] = {
        "version": "0.1.0", "pid": 1234, "started_wall": time.time() - 3700,
        "config_path": "/etc/gpuwatchd/gpuwatchd.yaml", "interval_seconds": 2.0,
        "state": "running", "ticks": 42, "last_tick_mono": NOW - 0.4}
    values.update(changes)
    return DaemonInfo(**values)


@contextlib.contextmanager
def socket_dir(mode: int = 0o700) -> Iterator[Path]:
    """A short temp dir (AF_UNIX paths are limited to 107 bytes), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="gw-"))
    path.chmod(mode)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def serving(path: Path, provider: Callable[[], dict[str, Any]],
            **kwargs: Any) -> Iterator[StatusServer]:
    server = StatusServer(str(path), provider, **kwargs)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def raw_exchange(path: Path, payload: bytes, timeout: float = 2.0) -> bytes:
    """Send ``payload`` as is and read until the server closes."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(payload)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.fixture
def sockdir() -> Iterator[Path]:
    with socket_dir() as path:
        yield path


# --- the document -------------------------------------------------------------------------


def test_healthy_document_has_the_schema_keys_and_both_gpus() -> None:
    """Schema 1 top-level and per-GPU keys; JSON-clean (no NaN/inf); no reasons."""
    doc = build_status(make_snapshot(), make_info(), NOW)
    assert list(doc) == ["schema", "daemon", "health", "hardware", "nvml", "gpus", "energy",
                         "bmcs", "hwmon", "licence", "collectors", "fan_control"]
    assert doc["hwmon"] is None  # no hwmon collector: a node without chips (or disabled)
    assert doc["licence"] is None  # no licence readings: a node without licensing
    assert doc["schema"] == 1
    assert doc["health"] == {"status": "healthy", "reasons": []}
    assert [g["temperature_celsius"] for g in doc["gpus"]] == [54.0, 61.0]
    assert set(doc["gpus"][0]) == {
        "index", "uuid", "name", "up", "temperature_celsius", "margin_celsius",
        "slowdown_celsius", "shutdown_celsius", "power_watts", "power_limit_watts",
        "fan_ratios", "mig", "error", "collector", "age_seconds", "stale"}
    assert doc["gpus"][0]["fan_ratios"] == [0.35]
    assert doc["gpus"][0]["age_seconds"] == 0.5
    assert doc["daemon"]["last_tick_age_seconds"] == 0.4
    assert doc["nvml"] == {"up": True, "driver_version": "535.54.03", "error": ""}
    assert doc["collectors"][0]["name"] == "gpu"
    assert json.loads(json.dumps(doc, allow_nan=False)) == doc


def test_non_finite_readings_become_null() -> None:
    """A NaN or infinite reading must not make the whole document unserialisable."""
    odd = GpuReading(0, "GPU-0000", "Tesla P40", True,
                     fast=GpuFast(temperature_celsius=float("nan"), power_watts=float("inf")))
    doc = build_status(make_snapshot(gpus=(odd,)), make_info(), NOW)
    assert (doc["gpus"][0]["temperature_celsius"], doc["gpus"][0]["power_watts"]) == (None, None)
    json.dumps(doc, allow_nan=False)


def test_gpu_down_is_degraded_and_named() -> None:
    snap = make_snapshot(gpus=(make_gpu(0, 54.0), make_gpu(1, 0, up=False, error="GPU is lost")))
    doc = build_status(snap, make_info(), NOW)
    assert doc["health"]["status"] == "degraded"
    assert doc["health"]["reasons"] == ["GPU 1 (GPU-0001) down: GPU is lost"]
    assert doc["gpus"][1]["temperature_celsius"] is None


def test_failing_collector_is_degraded_and_keeps_its_last_data_age() -> None:
    bad = make_result("chassis_ipmi", ok=False, age=20.0, error="Transient: no reply")
    doc = build_status(make_snapshot(extra=(bad,)), make_info(), NOW)
    assert doc["health"]["reasons"] == ["collector chassis_ipmi failing: Transient: no reply"]
    row = doc["collectors"][1]
    assert (row["ok"], row["age_seconds"], row["stale"]) == (False, 20.0, True)


def test_stale_collector_is_degraded_and_its_gpus_are_marked_stale() -> None:
    doc = build_status(make_snapshot(age=30.0), make_info(), NOW)
    assert doc["health"]["reasons"] == ["collector gpu stale: last data 30 s old"]
    assert [g["stale"] for g in doc["gpus"]] == [True, True]


def test_never_collected_age_is_null_not_infinity() -> None:
    never = make_result("licence", ok=False, age=None, error="not collected yet")
    doc = build_status(make_snapshot(extra=(never,)), make_info(), NOW)
    assert doc["collectors"][1]["age_seconds"] is None
    json.dumps(doc, allow_nan=False)  # would raise on inf


def test_nvml_down_is_degraded_only_when_gpus_are_expected() -> None:
    lost = make_snapshot(gpus=(make_gpu(0, 0, up=False, error="driver gone"),), nvml_up=False)
    reasons = build_status(lost, make_info(), NOW)["health"]["reasons"]
    assert "NVML down: driver gone" in reasons
    no_gpus = make_snapshot(gpus=(), nvml_up=False)  # gpus.enabled: auto on a node without
    assert build_status(no_gpus, make_info(), NOW)["health"]["status"] == "healthy"


@pytest.mark.parametrize(("changes", "reason"), [
    ({"ticks": 0, "state": "starting", "last_tick_mono": 0.0},
     "daemon is starting: no tick completed yet"),
    ({"last_tick_mono": NOW - 60.0}, "control loop stalled: last tick 60 s ago"),
    ({"state": "stopping"}, "daemon is stopping"),
])
def test_daemon_state_reasons(changes: dict[str, Any], reason: str) -> None:
    doc = build_status(make_snapshot(), make_info(**changes), NOW)
    assert doc["health"]["reasons"] == [reason]


class FakeSection:
    """A section module as the registry sees one: ``build`` and ``render``."""

    def __init__(self, name: str, reasons: tuple[str, ...] = (), data: object = "") -> None:
        self.name, self.reasons, self.data = name, reasons, data

    def build(self, snapshot: Snapshot, now_mono: float) -> Section:
        return Section({"made_by": self.name} if self.data == "" else self.data, self.reasons)

    def render(self, data: Any, style: Style) -> list[str]:
        return [f"<{data['made_by']}>"]


@pytest.fixture
def only_sections() -> Iterator[Callable[..., None]]:
    """Replace the registry's rows for one test (in place: both sides read the same dict)."""
    saved = dict(registry.SECTIONS)

    def replace(*modules: FakeSection) -> None:
        registry.SECTIONS.clear()
        registry.SECTIONS.update({m.name: m for m in modules})

    try:
        yield replace
    finally:
        registry.SECTIONS.clear()
        registry.SECTIONS.update(saved)


def test_a_new_section_adds_its_key_its_reasons_and_its_table_lines(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The extension point: one module with build and render, one registry row."""
    zones = FakeSection("fan_zones", ("zone gpu in failsafe",),
                        [{"zone": "gpu", "mode": "failsafe", "made_by": "fan_zones"}])
    monkeypatch.setitem(registry.SECTIONS, "fan_zones", zones)
    doc = build_status(make_snapshot(), make_info(), NOW)
    assert list(doc)[-1] == "fan_zones"
    assert doc["fan_zones"] == [{"zone": "gpu", "mode": "failsafe", "made_by": "fan_zones"}]
    assert doc["health"] == {"status": "degraded", "reasons": ["zone gpu in failsafe"]}
    monkeypatch.setattr(zones, "render", lambda data, style: [f"zones: {len(data)}"])
    assert render(doc, 0.0).endswith("\n\nzones: 1")


def test_the_registry_orders_the_document_and_the_table(
        only_sections: Callable[..., None]) -> None:
    """Every section built is rendered; document keys and table blocks in registry order;
    a null section is in the document and not in the table."""
    only_sections(FakeSection("c"), FakeSection("a", ("a is unhappy",)), FakeSection("b"),
                  FakeSection("absent", data=None))
    doc = build_status(make_snapshot(), make_info(), NOW)
    assert list(doc) == ["schema", "daemon", "health", "c", "a", "b", "absent"]
    assert doc["health"]["reasons"] == ["a is unhappy"]
    lines = render(doc, 0.0).splitlines()
    assert lines[-6:] == ["", "<c>", "", "<a>", "", "<b>"]
    assert [lines.index(f"<{n}>") for n in "cab"] == sorted(lines.index(f"<{n}>") for n in "cab")


def test_every_section_module_is_one_registry_row_named_after_it() -> None:
    """A section module left out of the registry (or a row without a module) fails here."""
    found = {m.name for m in pkgutil.iter_modules(sections.__path__)}
    assert found - {"daemon", "health"} == set(registry.SECTIONS)  # the head is not a row
    for name, module in registry.SECTIONS.items():
        assert module is importlib.import_module(f"gpuwatchd.status.sections.{name}")
        assert callable(module.build) and callable(module.render)


def test_the_demo_document_and_table_follow_the_registry(tmp_path: Path) -> None:
    """The real sections, end to end: each present section's lines appear in the table, in
    the registry's order, after the daemon and health lines."""
    clock = ManualClock()
    node = SimNode(clock=clock, profile="full")
    daemon = Daemon(_demo_config(str(tmp_path)), node.hardware())
    daemon._build(daemon.config)
    try:
        for _ in range(3):
            daemon.tick()
            clock.advance(1.0)
        doc = json.loads(json.dumps(daemon.status()))
    finally:
        daemon._close_hardware()
    assert list(doc) == ["schema", "daemon", "health", *registry.SECTIONS]
    present = [name for name in registry.SECTIONS if doc[name] is not None]
    assert {"nvml", "gpus", "bmcs", "licence", "collectors", "fan_control"} <= set(present)
    text = render(doc, clock.time())
    blocks = ["\n".join(registry.SECTIONS[n].render(doc[n], Style(color=False)))
              for n in present]
    starts = [text.index("\n\n" + block + "\n") if n != present[-1] else
              text.rindex("\n\n" + block) for n, block in zip(present, blocks, strict=True)]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    assert text.endswith(blocks[-1])


def test_server_and_client_modules_import_only_their_own_side() -> None:
    """document/server never reach client/table (nor ctl), and client/table never reach
    document/server; both may use the shared modules (paths, wire, registry, sections, text)."""
    server_side = _reach("gpuwatchd.status.document") | _reach("gpuwatchd.status.server")
    client_side = _reach("gpuwatchd.status.client") | _reach("gpuwatchd.status.table")
    assert not {m for m in server_side
                if m in {"gpuwatchd.status.client", "gpuwatchd.status.table"}
                or m.startswith("gpuwatchd.ctl")}
    assert not client_side & {"gpuwatchd.status.document", "gpuwatchd.status.server"}
    assert "gpuwatchd.status.sections.gpus" in server_side & client_side  # shared


def _reach(start: str) -> set[str]:
    """The project modules ``start`` imports, directly or not (read with ast, not imported)."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            continue
        tree = ast.parse(Path(spec.origin).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                todo += [a.name for a in node.names if a.name.startswith("gpuwatchd")]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("gpuwatchd"):
                module = node.module or ""
                todo.append(module)
                if _is_package(module):  # `from pkg import mod` imports pkg.mod
                    todo += [f"{module}.{a.name}" for a in node.names
                             if importlib.util.find_spec(f"{module}.{a.name}") is not None]
    return seen


def _is_package(name: str) -> bool:
    spec = importlib.util.find_spec(name)
    return spec is not None and spec.submodule_search_locations is not None


def test_one_duration_format_for_the_whole_table() -> None:
    """Uptime, data ages and licence times all read ``1m30s`` (gpuwatchd.clock.span)."""
    assert span(90) == age_text(90) == "1m30s"
    assert (span(5), span(3720), span(90000), span(-3)) == ("5s", "1h02m", "1d1h", "0s")
    doc = build_status(make_snapshot(), make_info(started_wall=1.7e9), NOW)
    assert "  up 1m30s  " in render(doc, 1.7e9 + 90)


# --- paths --------------------------------------------------------------------------------


def test_default_socket_paths() -> None:
    assert default_socket(0, {"XDG_RUNTIME_DIR": "/run/user/0"}) == SYSTEM_SOCKET
    xdg = {"XDG_RUNTIME_DIR": "/run/user/1000"}
    assert default_socket(1000, xdg) == "/run/user/1000/gpuwatchd/status.sock"
    assert default_socket(1000, {}) == "/tmp/gpuwatchd-1000/status.sock"
    assert client_socket("/x.sock", {"GPUWATCHD_SOCKET": "/y.sock"}) == "/x.sock"
    assert client_socket(None, {"GPUWATCHD_SOCKET": "/y.sock"}) == "/y.sock"


def test_client_prefers_the_system_service_socket_when_it_exists(tmp_path: Path) -> None:
    """A gpuwatchd group member without --socket reaches the packaged service's socket."""
    system = tmp_path / "status.sock"
    assert client_socket(None, {}, system_socket=str(system)) == default_socket(environ={})
    system.touch()
    assert client_socket(None, {}, system_socket=str(system)) == str(system)
    assert client_socket(None, {"GPUWATCHD_SOCKET": "/y.sock"}, str(system)) == "/y.sock"


# --- the server and the client ------------------------------------------------------------


def test_round_trip_creates_the_directory_and_a_0660_socket(sockdir: Path) -> None:
    path = sockdir / "run" / "status.sock"
    doc = build_status(make_snapshot(), make_info(), NOW)
    with serving(path, lambda: doc):
        assert query(str(path)) == doc
        assert stat.S_IMODE(path.stat().st_mode) == 0o660
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o755
    assert not path.exists()  # stop() unlinks


@pytest.mark.parametrize(("request_line", "error"), [
    (b'{"command": "reboot"}\n', "unknown command 'reboot'; known: status"),
    (b"status\n", "request is not JSON"),
    (b'["status"]\n', 'expected a request like {"command": "status"}'),
    (b"x" * 5000, "request refused: line longer than 4096 bytes"),
])
def test_bad_requests_get_a_json_error(sockdir: Path, request_line: bytes, error: str) -> None:
    path = sockdir / "s.sock"
    with serving(path, lambda: {"schema": 1}):
        reply = json.loads(raw_exchange(path, request_line))
        assert reply == {"schema": 1, "error": error}
        assert query(str(path)) == {"schema": 1}  # still serving


def test_a_request_without_newline_is_answered_at_eof(sockdir: Path) -> None:
    path = sockdir / "s.sock"
    with serving(path, lambda: {"schema": 1}), socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(2.0)
        sock.connect(str(path))
        sock.sendall(b'{"command": "status"}')
        sock.shutdown(socket.SHUT_WR)
        assert json.loads(sock.recv(4096)) == {"schema": 1}


def test_a_failing_provider_is_an_error_reply_not_a_dead_server(sockdir: Path) -> None:
    calls = []

    def provider() -> dict[str, Any]:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return {"schema": 1, "n": float("nan")}  # not JSON either

    path = sockdir / "s.sock"
    with serving(path, provider):
        with pytest.raises(ProtocolError, match="internal error: RuntimeError: boom"):
            query(str(path))
        with pytest.raises(ProtocolError, match="internal error: ValueError"):
            query(str(path))


def test_a_stuck_client_does_not_block_others_and_is_dropped(sockdir: Path) -> None:
    path = sockdir / "s.sock"
    with serving(path, lambda: {"schema": 1}, timeout_seconds=1.0), \
            socket.socket(socket.AF_UNIX) as stuck:
        stuck.connect(str(path))  # sends nothing, ever
        started = time.monotonic()
        assert query(str(path), timeout_seconds=1.0) == {"schema": 1}
        stuck.setblocking(False)
        with pytest.raises(BlockingIOError):  # answered while the stuck one is still held
            stuck.recv(10)
        stuck.settimeout(3.0)
        assert stuck.recv(10) == b""  # then the server hangs up on it after its 1 s
        assert 0.9 < time.monotonic() - started < 2.5


def test_a_dripping_client_is_cut_off_at_the_deadline(sockdir: Path) -> None:
    """One byte per 50 ms never completes a line; the whole exchange is bounded, not per recv."""
    path = sockdir / "s.sock"
    with serving(path, lambda: {"schema": 1}, timeout_seconds=0.5), \
            socket.socket(socket.AF_UNIX) as drip:
        drip.connect(str(path))
        started = time.monotonic()
        with pytest.raises(OSError):  # EPIPE/ECONNRESET once the server has closed
            for _ in range(60):
                drip.sendall(b" ")
                time.sleep(0.05)
        assert time.monotonic() - started < 2.0


def test_too_many_clients_are_told_busy(sockdir: Path) -> None:
    """Busy only when every slot is answering (an idle client is evicted instead: see
    test_status_bounds); the slot comes back when the answer is done."""
    path = sockdir / "s.sock"
    release = threading.Event()

    def slow() -> dict[str, Any]:
        release.wait(5.0)
        return {"schema": 1}

    with serving(path, slow, timeout_seconds=0.5, max_connections=1):
        first = threading.Thread(target=query, args=(str(path), 5.0), daemon=True)
        first.start()
        time.sleep(0.2)  # the first one has sent its request and is being answered
        with pytest.raises(ProtocolError, match="busy"):
            query(str(path))
        release.set()
        first.join(5.0)
        assert query(str(path)) == {"schema": 1}


def test_many_parallel_clients_all_get_answers(sockdir: Path) -> None:
    path = sockdir / "s.sock"
    doc = build_status(make_snapshot(), make_info(), NOW)
    results: list[dict[str, Any]] = []
    with serving(path, lambda: doc, max_connections=64):
        threads = [threading.Thread(target=lambda: results.append(query(str(path))))
                   for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(5.0)
    assert results == [doc] * 20


def test_a_stale_socket_file_is_replaced(sockdir: Path) -> None:
    path = sockdir / "s.sock"
    with socket.socket(socket.AF_UNIX) as dead:  # a daemon that died without unlinking
        dead.bind(str(path))
    assert path.is_socket()
    with pytest.raises(NotRunning, match="nothing listens"):
        query(str(path))
    with serving(path, lambda: {"schema": 1}):
        assert query(str(path)) == {"schema": 1}


def test_a_live_daemon_on_the_socket_is_not_displaced(sockdir: Path) -> None:
    path = sockdir / "s.sock"
    with serving(path, lambda: {"schema": 1, "who": "first"}):
        second = StatusServer(str(path), lambda: {"schema": 1, "who": "second"})
        with pytest.raises(StatusServerError, match="another gpuwatchd is already answering"):
            second.start()
        assert query(str(path))["who"] == "first"


def test_a_regular_file_at_the_socket_path_is_left_alone(sockdir: Path) -> None:
    path = sockdir / "s.sock"
    path.write_text("precious")
    with pytest.raises(StatusServerError, match="exists and is not a socket"):
        StatusServer(str(path), dict).start()
    assert path.read_text() == "precious"


def test_stop_leaves_a_socket_that_another_server_now_owns(sockdir: Path) -> None:
    path = sockdir / "s.sock"
    first = StatusServer(str(path), lambda: {"schema": 1, "who": "first"})
    first.start()
    path.unlink()  # e.g. an operator removed it and started another daemon
    with serving(path, lambda: {"schema": 1, "who": "second"}):
        first.stop()
        assert query(str(path))["who"] == "second"


def test_a_socket_dir_owned_by_someone_else_is_refused(sockdir: Path) -> None:
    """A planted /tmp/gpuwatchd-<uid> of another user is refused, as root or not."""
    planted = sockdir / "planted"
    planted.mkdir()
    if os.geteuid() == 0:  # the real case: a directory another user owns
        os.chown(planted, 65534, 65534)
        with pytest.raises(StatusServerError, match="belongs to uid 65534"):
            StatusServer(str(planted / "s.sock"), dict).start()
    mine = planted.stat().st_uid
    with pytest.raises(StatusServerError, match=f"belongs to uid {mine}"):
        prepare_dir(str(planted), euid=mine + 1)  # the same check, seen by another user


def test_an_unusable_path_is_a_clear_error(sockdir: Path) -> None:
    too_long = str(sockdir / ("x" * 120))
    with pytest.raises(StatusServerError, match="cannot listen on"):
        StatusServer(too_long, dict).start()


def test_query_errors_name_the_socket(sockdir: Path) -> None:
    missing = sockdir / "none.sock"
    with pytest.raises(NotRunning, match=f"no socket at {missing}"):
        query(str(missing))
    (sockdir / "afile").write_text("")
    with pytest.raises(NotRunning, match="no socket at"):  # ENOTDIR
        query(str(sockdir / "afile" / "s.sock"))
