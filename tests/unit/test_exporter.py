"""Exporter: renders the Snapshot only, drops stale collectors' series, serves / and /metrics."""

from __future__ import annotations

import gzip
import http.client
import time
import zlib

import pytest

from gpuwatchd.clock import ManualClock
from gpuwatchd.exporter.http import MetricsServer
from gpuwatchd.exporter.render import Renderer, families
from gpuwatchd.model import (
    Collected,
    CollectorResult,
    ControlReading,
    Family,
    FanControlReading,
    Sample,
    Snapshot,
    ZoneReading,
)


def result(name: str, clock: ManualClock, *, ok: bool = True, age: float = 0.0,
           fams: tuple[Family, ...] = ()) -> CollectorResult:
    return CollectorResult(name, ok=ok, duration_seconds=0.25, updated_wall=clock.time() - age,
                           updated_mono=clock.monotonic() - age, stale_after_seconds=10.0,
                           error="" if ok else "boom", collected=Collected(families=fams))


def temp(bmc: str, value: float) -> Family:
    return Family("gpuwatchd_temperature_celsius", "gauge", "t",
                  (Sample((("bmc", bmc), ("sensor", "Inlet")), value),))


def test_families_merge_by_name_across_collectors() -> None:
    clock = ManualClock()
    snap = Snapshot(1, clock.time(), clock.monotonic(), (
        result("a", clock, fams=(temp("a", 20.0),)), result("b", clock, fams=(temp("b", 30.0),))))
    fams = {f.name: f for f in families(snap, clock.monotonic())}
    assert [s.value for s in fams["gpuwatchd_temperature_celsius"].samples] == [20.0, 30.0]
    assert "gpuwatchd_build_info" in fams


def test_stale_collector_series_are_dropped_but_its_health_stays() -> None:
    clock = ManualClock()
    snap = Snapshot(1, clock.time(), clock.monotonic(), (
        result("fresh", clock, fams=(temp("a", 20.0),)),
        result("old", clock, ok=False, age=11.0, fams=(temp("b", 30.0),))))
    text = Renderer(lambda: snap, clock, process_metrics=False).render().decode()
    assert 'gpuwatchd_temperature_celsius{bmc="a",sensor="Inlet"} 20.0' in text
    assert 'bmc="b"' not in text
    assert 'gpuwatchd_collector_success{collector="old"} 0.0' in text
    assert 'gpuwatchd_collector_success{collector="fresh"} 1.0' in text
    assert 'gpuwatchd_last_update_timestamp_seconds{collector="old"}' in text


def test_the_fan_controllers_families_are_rendered_from_snapshot_control() -> None:
    """Snapshot.control is typed data; the exporter renders its families (one record)."""
    clock = ManualClock()
    zone = ZoneReading("gpu", "control", "", 70.0, 85.0, "gpu:0", 61.0, 0.34, 0.2, 1.0)
    driver = FanControlReading("dell", "idrac", manual=True, message="",
                               channels=(("all", 0.34),), writes=3)
    base = Snapshot(1, clock.time(), clock.monotonic(), (result("a", clock),))
    off = {f.name for f in families(base, clock.monotonic())}
    assert not any(name.startswith("gpuwatchd_fan_") for name in off)
    on = Snapshot(1, clock.time(), clock.monotonic(), base.results,
                  control=ControlReading((zone,), driver))
    fams = {f.name: f for f in families(on, clock.monotonic())}
    assert [s.value for s in fams["gpuwatchd_fan_zone_duty_ratio"].samples] == [0.34]
    assert fams["gpuwatchd_fan_control_writes_total"].samples[0].value == 3
    assert on.readings(ZoneReading) == ()  # control is a field, not a reading to pick out


def test_counter_keeps_total_suffix_and_type() -> None:
    clock = ManualClock()
    fam = Family("gpuwatchd_gpu_energy_joules_total", "counter", "e",
                 (Sample((("gpu", "0"),), 5.0),))
    snap = Snapshot(1, clock.time(), clock.monotonic(), (result("gpu", clock, fams=(fam,)),))
    text = Renderer(lambda: snap, clock, process_metrics=False).render().decode()
    assert "# TYPE gpuwatchd_gpu_energy_joules_total counter" in text
    assert 'gpuwatchd_gpu_energy_joules_total{gpu="0"} 5.0' in text


def test_render_is_cached_per_snapshot_and_staleness() -> None:
    """The same Snapshot renders once; it re-renders when a collector turns stale."""
    clock = ManualClock()
    snap = Snapshot(1, clock.time(), clock.monotonic(),
                    (result("a", clock, fams=(temp("a", 20.0),)),))
    renderer = Renderer(lambda: snap, clock, process_metrics=False)
    first = renderer.render()
    assert renderer.render() is first
    clock.advance(11.0)
    assert b'bmc="a"' not in renderer.render()


def test_http_endpoints() -> None:
    clock = ManualClock()
    snap = Snapshot(1, clock.time(), clock.monotonic(),
                    (result("a", clock, fams=(temp("a", 20.0),)),))
    renderer = Renderer(lambda: snap, clock)
    server = MetricsServer([("127.0.0.1", 0)], renderer.render)
    server.start()
    try:
        host, port = server.bound[0]
        conn = http.client.HTTPConnection(host, port, timeout=5)
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        body = resp.read().decode()
        assert resp.status == 200
        assert resp.getheader("Content-Type", "").startswith("text/plain; version=0.0.4")
        assert 'gpuwatchd_temperature_celsius{bmc="a",sensor="Inlet"} 20.0' in body
        assert "process_resident_memory_bytes" in body
        conn.request("GET", "/")
        landing = conn.getresponse().read().decode()
        assert 'href="/metrics"' in landing
        conn.request("GET", "/nope")
        missing = conn.getresponse()
        assert missing.status == 404 and missing.read() == b"Not Found\n"
        conn.request("HEAD", "/metrics")
        head = conn.getresponse()
        assert head.status == 200 and head.read() == b""
    finally:
        server.stop()


def test_listen_failure_names_the_address() -> None:
    first = MetricsServer([("127.0.0.1", 0)], lambda: b"")
    first.start()
    try:
        taken = first.bound[0]
        second = MetricsServer([taken], lambda: b"")
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{taken[1]}"):
            second.start()
    finally:
        first.stop()


def test_scrape_does_not_wait_for_a_slow_source() -> None:
    """Rendering reads the published Snapshot only; its cost is independent of hardware."""
    clock = ManualClock()
    fams = tuple(temp(f"b{i}", float(i)) for i in range(50))
    snap = Snapshot(1, clock.time(), clock.monotonic(), (result("a", clock, fams=fams),))
    renderer = Renderer(lambda: snap, clock, process_metrics=False)
    renderer.render()
    start = time.perf_counter()
    for _ in range(100):
        renderer.render()
    assert (time.perf_counter() - start) / 100 < 0.005


def test_refresh_renders_ahead_only_while_scraped() -> None:
    """A new Snapshot is rendered in the loop thread only if someone scraped recently."""
    clock = ManualClock()
    snaps = [Snapshot(1, clock.time(), clock.monotonic(),
                      (result("a", clock, fams=(temp("a", 20.0),)),))]
    renderer = Renderer(lambda: snaps[-1], clock, process_metrics=False)
    renderer.refresh()
    assert renderer._key is None, "nobody scraped yet: nothing rendered ahead"
    renderer.render()
    snaps.append(Snapshot(2, clock.time(), clock.monotonic(),
                          (result("a", clock, fams=(temp("a", 21.0),)),)))
    renderer.refresh()
    assert renderer._key is not None and renderer._key[0] == 2
    assert b"21.0" in renderer._cached


def test_refresh_renders_only_ahead_of_the_expected_scrape() -> None:
    """Scrapes every 15 s, ticks every 1 s: only ticks within the lead render ahead."""
    clock = ManualClock()
    seq = [0]

    def source() -> Snapshot:
        return Snapshot(seq[0], clock.time(), clock.monotonic(),
                        (result("a", clock, fams=(temp("a", float(seq[0])),)),))

    renderer = Renderer(source, clock, process_metrics=False)
    renderer.render()
    clock.advance(15.0)
    renderer.render()  # the scrape period is now known: 15 s
    rendered_ahead = []
    for tick in range(1, 15):
        clock.advance(1.0)
        seq[0] = tick
        renderer.refresh(lead_seconds=2.0)
        if renderer._key is not None and renderer._key[0] == tick:
            rendered_ahead.append(tick)
    assert rendered_ahead == [13, 14]


def test_gzip_exposition_is_the_plain_one_compressed_once_per_snapshot() -> None:
    """One gzip member: the Snapshot's part compressed once (its compressed bytes are the
    same prefix scrape after scrape), process_* live, appended to a copy of the stream."""
    clock = ManualClock()
    snap = Snapshot(1, clock.time(), clock.monotonic(),
                    (result("a", clock, fams=(temp("a", 20.0),)),))
    renderer = Renderer(lambda: snap, clock)
    first = renderer.render_gzip()
    text = gzip.decompress(first).decode()
    assert 'gpuwatchd_temperature_celsius{bmc="a",sensor="Inlet"} 20.0' in text
    assert "process_resident_memory_bytes" in text
    snapshot_part = text.split("# HELP process_", 1)[0]
    assert renderer.render().decode().startswith(snapshot_part)
    stream = zlib.decompressobj(16 + zlib.MAX_WBITS)
    assert stream.decompress(first).decode() == text and stream.eof
    assert stream.unused_data == b"", "more than one gzip member (curl drops the rest)"
    second = renderer.render_gzip()
    head = len(first) // 2
    assert second[:head] == first[:head]  # the cached compressed part, not recompressed
    assert gzip.decompress(second).decode().startswith(snapshot_part)
