"""gpuwatchd: GPU server telemetry and fan-control daemon."""

__version__ = "0.1.0"
