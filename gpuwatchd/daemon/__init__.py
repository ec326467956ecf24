"""The daemon: ``service`` (the tick loop, signals, reload), ``cli`` (``gpuwatchd``),
``notify`` (sd_notify) and ``logs`` (journal or stderr)."""
