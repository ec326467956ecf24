"""Series budget: how many series and bytes one scrape of the demo node exposes.

Usage: ``.venv/bin/python bench/bench_series.py [--gpus 8]``. Runs the ``--demo`` node
in-process on a manual clock (three ticks, as the golden test), renders ``/metrics`` with
``exporter.detail: default`` and ``full``, for the ``default`` (Tesla P40) and ``cluster``
(A100 80GB, GPU 0 in MIG mode) demo profiles, and prints series and bytes (process_* included,
as a scrape sees them). The budget (<= 300 series for 8 GPUs and one BMC at defaults) is held
by tests/unit/test_series_budget.py; figures in docs/PERFORMANCE.md ("Series budget").
"""

from __future__ import annotations

import argparse
import gzip

from gpuwatchd.clock import ManualClock
from gpuwatchd.daemon.cli import _demo_config
from gpuwatchd.daemon.service import Daemon
from gpuwatchd.exporter.detail import Detail
from gpuwatchd.exporter.render import Renderer
from gpuwatchd.sim.node import DEMO_PROFILES, demo_node

BUDGET = 300


def exposition(profile: str, gpus: int, detail: Detail) -> bytes:
    """One scrape of the demo node after three ticks."""
    clock = ManualClock()
    daemon = Daemon(_demo_config(), demo_node(profile, gpus, clock).hardware())
    daemon._build(daemon.config)
    try:
        for _ in range(3):
            daemon.tick()
            clock.advance(daemon.config.interval_seconds)
        return Renderer(lambda: daemon.snapshot, clock, detail=detail).render()
    finally:
        daemon._close_hardware()


def count(text: bytes) -> int:
    """Series (sample lines) in an exposition."""
    return sum(1 for line in text.decode().splitlines() if line and not line.startswith("#"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gpus", type=int, default=8)
    args = ap.parse_args()
    print(f"{'profile':8} {'detail':8} {'series':>7} {'bytes':>7} {'gzip':>6}")
    for profile in DEMO_PROFILES:
        for detail in Detail:
            text = exposition(profile, args.gpus, detail)
            print(f"{profile:8} {detail.value:8} {count(text):7d} {len(text):7d} "
                  f"{len(gzip.compress(text, 6)):6d}")
    print(f"budget at defaults, {args.gpus} GPUs: <= {BUDGET} series")


if __name__ == "__main__":
    main()
