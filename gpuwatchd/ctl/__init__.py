"""``gpuwatchctl``: ``main`` (status, check-config, version) and ``fan`` (failsafe, calibrate)."""
