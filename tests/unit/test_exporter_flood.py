"""The metrics endpoint under connection floods: bounded slots, legitimate scrapes answered.

Real sockets on 127.0.0.1 (port 0); the flood comes from this process (bounded in count and
time, loopback only).
"""

from __future__ import annotations

import gzip
import http.client
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from gpuwatchd.exporter.http import Gzipped, MetricsServer, accepts_gzip
from gpuwatchd.slots import MAX_CONNECTIONS, Slots

BODY = b"gpuwatchd_build_info 1\n" * 2000  # ~46 kB, a 2-GPU node's exposition


@pytest.fixture
def server() -> Iterator[tuple[str, int]]:
    srv = MetricsServer([("127.0.0.1", 0)], lambda: BODY)
    srv.start()
    try:
        yield srv.bound[0]
    finally:
        srv.stop()


def _scrape(addr: tuple[str, int], timeout: float = 5.0) -> tuple[int, float]:
    start = time.monotonic()
    conn = http.client.HTTPConnection(*addr, timeout=timeout)
    try:
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        assert resp.read() == BODY
        return resp.status, time.monotonic() - start
    finally:
        conn.close()


def _slowloris(addr: tuple[str, int], count: int) -> list[socket.socket]:
    """``count`` connections that send half a request head and then nothing."""
    out = []
    for _ in range(count):
        sock = socket.create_connection(addr, timeout=5)
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        out.append(sock)
    return out


def test_slots_evict_the_oldest_connection_without_a_head() -> None:
    slots = Slots(limit=2)
    a, b, c, d = (socket.socket() for _ in range(4))
    try:
        assert slots.admit(a, 1.0) and slots.admit(b, 2.0)
        slots.head_received(b)
        assert slots.admit(c, 3.0)  # evicts a (oldest, no head), never b (being answered)
        assert slots.evicted == 1 and len(slots) == 2
        slots.head_received(c)
        assert not slots.admit(d, 4.0, wait_seconds=0.05)  # both answering: refused
        assert slots.refused == 1
        slots.release(b)
        assert slots.admit(d, 5.0, wait_seconds=0.05)
    finally:
        for s in (a, b, c, d):
            s.close()


def test_a_waiting_admit_takes_the_slot_an_answer_frees() -> None:
    slots = Slots(limit=1)
    a, b = socket.socket(), socket.socket()
    try:
        assert slots.admit(a, 1.0)
        slots.head_received(a)
        threading.Timer(0.05, slots.release, (a,)).start()
        assert slots.admit(b, 2.0, wait_seconds=2.0)
    finally:
        a.close()
        b.close()


def test_slowloris_does_not_starve_a_scrape_or_pile_up_threads(server: tuple[str, int]) -> None:
    """Five times the slots in half-sent heads: a scrape still answers within 1 s, and the
    server holds at most MAX_CONNECTIONS connection threads."""
    before = threading.active_count()
    flood = _slowloris(server, 5 * MAX_CONNECTIONS)
    try:
        time.sleep(0.2)
        assert threading.active_count() - before <= MAX_CONNECTIONS + 1
        worst = max(_scrape(server)[1] for _ in range(5))
        assert worst < 1.0, f"a scrape took {worst:.2f} s under a slowloris flood"
    finally:
        for sock in flood:
            sock.close()


def test_200_concurrent_scrapes_all_answer(server: tuple[str, int]) -> None:
    """More scrapers than slots: each waits for a slot instead of being dropped."""
    results: list[tuple[int, float]] = []
    lock = threading.Lock()

    def one() -> None:
        got = _scrape(server, timeout=10.0)
        with lock:
            results.append(got)

    threads = [threading.Thread(target=one) for _ in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 200 and all(code == 200 for code, _ in results)
    p99 = sorted(d for _, d in results)[197]
    assert p99 < 2.0, f"p99 {p99:.2f} s for 200 concurrent scrapes"


def test_keep_alive_gzip_and_no_interpreter_version(server: tuple[str, int]) -> None:
    """HTTP/1.1: two scrapes on one connection, gzip when asked, ``Server: gpuwatchd/V``."""
    conn = http.client.HTTPConnection(*server, timeout=5)
    try:
        conn.request("GET", "/metrics", headers={"Accept-Encoding": "gzip"})
        first = conn.getresponse()
        zipped = first.read()
        assert first.version == 11 and first.getheader("Content-Encoding") == "gzip"
        assert gzip.decompress(zipped) == BODY and len(zipped) < len(BODY) / 5
        server_header = first.getheader("Server", "")
        assert server_header.startswith("gpuwatchd/") and "Python" not in server_header
        sock = conn.sock
        conn.request("GET", "/metrics", headers={"Accept-Encoding": "gzip;q=0"})
        second = conn.getresponse()
        assert conn.sock is sock, "the second request needed a new connection"
        assert second.getheader("Content-Encoding") is None and second.read() == BODY
    finally:
        conn.close()


@pytest.mark.parametrize(("header", "expected"), [
    ("gzip", True), ("deflate, gzip;q=1.0, *;q=0.5", True), ("gzip;q=0", False),
    ("identity", False), (None, False), ("*", True), ("gzip;q=zz", False)])
def test_accept_encoding(header: str | None, expected: bool) -> None:
    assert accepts_gzip(header) is expected


def test_gzip_is_computed_once_per_rendered_body() -> None:
    gz = Gzipped()
    body = b"x" * 1000
    first = gz.of(body)
    assert gz.of(body) is first  # same body object: no recompression
    assert gz.of(b"y" * 1000) is not first


def test_an_idle_keep_alive_connection_can_be_evicted() -> None:
    slots = Slots(limit=1)
    a, b = socket.socket(), socket.socket()
    try:
        assert slots.admit(a, 1.0)
        slots.head_received(a)
        slots.idle(a, 2.0)  # answered; waiting for the next request
        assert slots.admit(b, 3.0, wait_seconds=0.05) and slots.evicted == 1
    finally:
        a.close()
        b.close()


def _hung_up(peer: socket.socket) -> bool:
    """Whether the server side of this socket pair was shut down (the peer reads EOF)."""
    peer.setblocking(False)
    try:
        return peer.recv(1) == b""
    except BlockingIOError:
        return False


def test_a_kept_alive_scraper_outlives_newer_head_less_connections() -> None:
    """Under a flood the connections that never got an answer go first, oldest first; an
    idle kept-alive scraper goes only when no such connection is left."""
    slots = Slots(limit=2)
    (scraper, scraper_peer), (lurker, lurker_peer) = socket.socketpair(), socket.socketpair()
    newcomer, newcomer_peer = socket.socketpair()
    try:
        assert slots.admit(scraper, 1.0)
        slots.head_received(scraper)
        slots.idle(scraper, 2.0)  # answered once, now waiting for its next scrape
        assert slots.admit(lurker, 3.0)  # never sends a head
        assert slots.admit(newcomer, 4.0, wait_seconds=0.05)
        assert _hung_up(lurker_peer) and not _hung_up(scraper_peer)
    finally:
        for s in (scraper, scraper_peer, lurker, lurker_peer, newcomer, newcomer_peer):
            s.close()
