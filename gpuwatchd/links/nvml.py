"""The one choke point for NVML: every pynvml call in gpuwatchd goes through :class:`NvmlLink`.

It maps ``pynvml.NVMLError_*`` into the project's error classes and counts calls and errors
(``gpuwatchd_nvml_errors_total{call,error}``). The library object is injected: the real
``pynvml`` module (nvidia-ml-py), the simulator (``gpuwatchd.sim.nvml``), or pynvml over a
fake ``libnvidia-ml.so.1`` in the integration tests.

Command-line equivalent of a call: ``nvidia-smi --query-gpu=<field> --format=csv``.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from collections import Counter
from typing import Any

from gpuwatchd.errors import GpuwatchdError, Lost, NotInstalled, Refused, Transient, Unsupported

log = logging.getLogger(__name__)

# NVML return codes (nvml.h); the names are used as the `error` label.
_CODE_NAMES = {
    1: "uninitialized", 2: "invalid_argument", 3: "not_supported", 4: "no_permission",
    5: "already_initialized", 6: "not_found", 7: "insufficient_size", 8: "insufficient_power",
    9: "driver_not_loaded", 10: "timeout", 11: "irq_issue", 12: "library_not_found",
    13: "function_not_found", 14: "corrupted_inforom", 15: "gpu_is_lost", 16: "reset_required",
    17: "operating_system", 18: "lib_rm_version_mismatch", 19: "in_use", 20: "memory",
    21: "no_data", 25: "argument_version_mismatch", 26: "deprecated", 27: "not_ready",
    28: "gpu_not_found", 999: "unknown",
}
_UNSUPPORTED = {3, 6, 13, 25, 26}  # absent reading: not supported / not found / too old a driver
_REFUSED = {2, 4}  # the driver said no: bad argument, no permission
_LOST = {1, 9, 15, 16, 18, 28}  # lifecycle: re-init (uninitialized, driver gone, GPU lost, ...)
_NOT_INSTALLED = 12
_TIMEOUT = 10


def map_error(call: str, code: int, text: str) -> GpuwatchdError:
    """Map an NVML return code to a project error whose message names the call."""
    name = _CODE_NAMES.get(code, f"code_{code}")
    message = f"{call}: {text} ({name})"
    if code in _UNSUPPORTED:
        return Unsupported(message)
    if code in _REFUSED:
        return Refused(message, code)
    if code == _NOT_INSTALLED:
        return NotInstalled(message)
    if code in _LOST:
        return Lost(message)
    return Transient(message)


class NvmlLink:
    """Wraps a pynvml-compatible module; thread-safe (NVML itself is, per its API reference)."""

    def __init__(self, lib: Any, library_path: str | None = None) -> None:
        self._lib = lib
        self._library_path = library_path
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.errors: Counter[tuple[str, str]] = Counter()
        self.initialized = False

    @property
    def lib(self) -> Any:
        """The library object (for its constants: ``link.lib.NVML_TEMPERATURE_GPU``)."""
        return self._lib

    def call(self, name: str, *args: Any) -> Any:
        """Call ``pynvml.<name>(*args)``; raise a project error on failure."""
        fn = getattr(self._lib, name, None)
        with self._lock:
            self.calls[name] += 1
        if fn is None:
            self._count(name, "function_not_found")
            raise Unsupported(f"{name}: not in this nvidia-ml-py")
        try:
            return fn(*args)
        except self._lib.NVMLError as exc:
            code = int(getattr(exc, "value", 999))
            if not (code == _TIMEOUT and name.startswith("nvmlEventSetWait")):
                # an event wait that times out is the XID thread idling, not a failure
                # (fake libnvidia-ml: it counted one "error" per second on a healthy node)
                self._count(name, _CODE_NAMES.get(code, f"code_{code}"))
            raise map_error(name, code, str(exc)) from None

    def _count(self, call: str, error: str) -> None:
        with self._lock:
            self.errors[(call, error)] += 1

    def init(self) -> None:
        """``nvmlInit_v2``; with ``library_path`` set, that file is loaded instead.

        nvidia-smi equivalent: ``nvidia-smi -L`` (fails the same way without a driver).
        """
        if self._library_path and getattr(self._lib, "nvmlLib", "absent") is None:
            try:
                self._lib.nvmlLib = ctypes.CDLL(self._library_path)
            except OSError as exc:
                raise NotInstalled(f"cannot load {self._library_path}: {exc}") from None
        self.call("nvmlInit")
        self.initialized = True

    def shutdown(self) -> None:
        """``nvmlShutdown``, ignoring errors: used on the way to a re-init or exit."""
        if not self.initialized:
            return
        self.initialized = False
        try:
            self.call("nvmlShutdown")
        except GpuwatchdError as exc:
            log.debug("nvmlShutdown failed: %s", exc)

    def text(self, name: str, *args: Any) -> str:
        """A string-valued call; older bindings return bytes."""
        value = self.call(name, *args)
        return value.decode(errors="replace") if isinstance(value, bytes) else str(value)

    def optional(self, name: str, *args: Any) -> Any:
        """A call whose Unsupported/Refused/Transient failure means 'absent' (None).

        Lost propagates: it is a lifecycle event the caller must see.
        """
        try:
            return self.call(name, *args)
        except (Unsupported, Refused, Transient):
            return None
