"""Run the GPU collector in a fresh process, as the daemon builds it; print the results as JSON.

Used by the integration tests to prove how a real node loads NVML: a new process, the real
``pynvml`` module, the loader's own lookup of ``libnvidia-ml.so.1`` (``LD_LIBRARY_PATH``,
``ld.so.cache``) unless ``library_path`` is given. Usage::

    python child.py '{"enabled": "auto", "library_path": null}' [ticks]

stdout: one JSON list, one record per tick: ``{"ok", "error", "samples": [[name, labels,
value], ...]}``. Logging goes to stderr at INFO, so the caller can check it has no traceback.
This file imports only gpuwatchd (it runs outside the test tree's sys.path).
"""

from __future__ import annotations

import json
import logging
import sys

from gpuwatchd.clock import ManualClock
from gpuwatchd.collectors import gpu
from gpuwatchd.collectors.runner import CollectorRunner
from gpuwatchd.config import Config, GpuConfig
from gpuwatchd.hardware import Hardware


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    config = Config(gpus=GpuConfig(**json.loads(argv[1])))
    ticks = int(argv[2]) if len(argv) > 2 else 1
    clock = ManualClock()
    records = []
    for scheduled in gpu.build(config, Hardware(clock=clock)):
        runner = CollectorRunner(scheduled, clock)
        for _ in range(ticks):
            runner.start_if_due()
            result = runner.finish()
            records.append({
                "ok": result.ok,
                "error": result.error,
                "samples": [[family.name, dict(sample.labels), sample.value]
                            for family in result.collected.families
                            for sample in family.samples],
            })
            clock.advance(scheduled.interval_seconds)
        runner.close()
    sys.stdout.write(json.dumps(records) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
