"""``gpuwatchctl``: ``main`` (the subcommand table, the entry point), one module per
command family (``status``; ``fan``: failsafe, calibrate) and ``common`` (exit codes)."""
