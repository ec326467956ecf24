"""The one choke point for NVML: one :class:`NvmlSession` per process, shared by every user.

Every pynvml call in gpuwatchd goes through the session: it maps ``pynvml.NVMLError_*`` into
the project's error classes and counts calls and errors for all users together
(``gpuwatchd_nvml_errors_total{call,error}``, exported once, by the GPU collector). Each NVML
user (the GPU and licence collectors, the NVML fan driver) holds an :class:`NvmlLink`, its
lease on the session: the first lease's ``init`` calls ``nvmlInit`` and the last one's
``shutdown`` calls ``nvmlShutdown`` (as NVML's own reference count), and the GPUs are
enumerated once per initialisation (:meth:`NvmlSession.devices`). The library object is
injected: the real ``pynvml`` module (nvidia-ml-py), the simulator (``gpuwatchd.sim.nvml``),
or pynvml over a fake ``libnvidia-ml.so.1`` in the integration tests; the daemon makes the
session once and hands it out through ``gpuwatchd.hardware.Hardware.nvml_session``.

Command-line equivalent of a call: ``nvidia-smi --query-gpu=<field> --format=csv``.
"""

from __future__ import annotations

import copy
import ctypes
import dataclasses
import logging
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gpuwatchd.clock import Clock
from gpuwatchd.config import GpuConfig
from gpuwatchd.errors import GpuwatchdError, Lost, NotInstalled, Refused, Transient, Unsupported
from gpuwatchd.hardware import Hardware

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
_NOT_FOUND = 6
# Answers that are the normal case, not failures, so not counted in nvml_errors_total:
# an event wait that times out is the XID thread idling (fake libnvidia-ml: it counted one
# "error" per second on a healthy node); NOT_FOUND for a MIG device index is an empty slot
# (an A100 has 7 slots; 3g.40gb + 2g.20gb + 2x 1g.10gb fills 4).
_EXPECTED = {("nvmlEventSetWait_v2", _TIMEOUT), ("nvmlEventSetWait", _TIMEOUT),
             ("nvmlDeviceGetMigDeviceHandleByIndex", _NOT_FOUND)}
FIRST_BACKOFF_SECONDS = 1.0  # after a failed nvmlInit; doubles up to the configured maximum


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


@dataclass(frozen=True)
class NvmlDevice:
    """One GPU as enumerated at initialisation; ``failure`` set: its handle or UUID failed."""

    index: int
    handle: Any
    uuid: str
    failure: GpuwatchdError | None = None


class NvmlSession:
    """The process's NVML: one library, one lock, one set of counters, one enumeration.

    ``lib`` is the pynvml-compatible module, or a function returning it (called at the first
    use, so that making the session imports nothing). Thread-safe (NVML itself is, per its
    API reference). With a ``clock``, a failed ``nvmlInit`` is not retried for any user until
    the backoff has passed (1 s, doubling up to ``max_backoff_seconds``): the same error is
    raised again without calling NVML, so a node without the driver sees one attempt per
    backoff, not one per NVML user.
    """

    def __init__(self, lib: Any, library_path: str | None = None, *, lazy: bool = False,
                 clock: Clock | None = None, max_backoff_seconds: float = 60.0) -> None:
        self._loader: Callable[[], Any] | None = lib if lazy else None
        self._lib = None if lazy else lib
        self._library_path = library_path
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.errors: Counter[tuple[str, str]] = Counter()
        self._leases = 0  # leases holding nvmlInit
        self._devices: tuple[NvmlDevice, ...] | None = None
        self._clock = clock
        self._max_backoff = max_backoff_seconds
        self._backoff = FIRST_BACKOFF_SECONDS
        self._failure: GpuwatchdError | None = None  # the last nvmlInit's, until retry_at
        self._retry_at = float("-inf")

    @property
    def lib(self) -> Any:
        """The library object (for its constants: ``session.lib.NVML_TEMPERATURE_GPU``)."""
        if self._lib is None and self._loader is not None:
            try:
                self._lib = self._loader()
            except ImportError as exc:  # no nvidia-ml-py: as a node without the driver
                raise NotInstalled(f"nvidia-ml-py is not installed: {exc}") from None
        return self._lib

    @property
    def initialized(self) -> bool:
        """True while some lease holds NVML initialised."""
        return self._leases > 0

    def lease(self) -> NvmlLink:
        """A new user's handle on this session (not yet initialised)."""
        return NvmlLink(self)

    def call(self, name: str, *args: Any) -> Any:
        """Call ``pynvml.<name>(*args)``; raise a project error on failure."""
        lib = self.lib
        fn = getattr(lib, name, None)
        with self._lock:
            self.calls[name] += 1
        if fn is None:
            self._count(name, "function_not_found")
            raise Unsupported(f"{name}: not in this nvidia-ml-py")
        try:
            return fn(*args)
        except lib.NVMLError as exc:
            code = int(getattr(exc, "value", 999))
            if (name, code) not in _EXPECTED:
                self._count(name, _CODE_NAMES.get(code, f"code_{code}"))
            raise map_error(name, code, str(exc)) from None

    def _count(self, call: str, error: str) -> None:
        with self._lock:
            self.errors[(call, error)] += 1

    def acquire(self) -> None:
        """``nvmlInit_v2`` for the first lease; with ``library_path`` set, that file is loaded.

        nvidia-smi equivalent: ``nvidia-smi -L`` (fails the same way without a driver).
        """
        if self._leases == 0:
            now = self._clock.monotonic() if self._clock is not None else 0.0
            if self._failure is not None and now < self._retry_at:
                raise copy.copy(self._failure)  # still backing off: NVML is not asked again
            try:
                self._init()
            except GpuwatchdError as exc:
                if self._clock is not None:
                    self._failure, self._retry_at = exc, now + self._backoff
                    self._backoff = min(self._backoff * 2, self._max_backoff)
                raise
            self._failure, self._backoff = None, FIRST_BACKOFF_SECONDS
            self._devices = None  # a new initialisation: enumerate again
        self._leases += 1

    def _init(self) -> None:
        lib = self.lib
        if self._library_path and getattr(lib, "nvmlLib", "absent") is None:
            try:
                lib.nvmlLib = ctypes.CDLL(self._library_path)
            except OSError as exc:
                raise NotInstalled(f"cannot load {self._library_path}: {exc}") from None
        self.call("nvmlInit")

    def release(self) -> None:
        """``nvmlShutdown`` when the last lease lets go, ignoring errors."""
        self._leases = max(0, self._leases - 1)
        if self._leases:
            return
        self._devices = None
        try:
            self.call("nvmlShutdown")
        except GpuwatchdError as exc:
            log.debug("nvmlShutdown failed: %s", exc)

    def devices(self, refresh: bool = False) -> tuple[NvmlDevice, ...]:
        """Every GPU NVML enumerates (count, handle, UUID), read once per initialisation.

        ``refresh`` reads them again (the GPU collector, re-opening its GPUs). One GPU whose
        handle or UUID fails (lost, transient) is returned with its ``failure``; any other
        error (no count, no driver) propagates.
        """
        if self._devices is None or refresh:
            found = []
            for index in range(self.call("nvmlDeviceGetCount")):
                found.append(self._device(index))
            self._devices = tuple(found)
        return self._devices

    def _device(self, index: int) -> NvmlDevice:
        handle, uuid = None, ""
        try:
            handle = self.call("nvmlDeviceGetHandleByIndex", index)
            uuid = _text(self.call("nvmlDeviceGetUUID", handle))
        except (Lost, Transient) as exc:
            if isinstance(exc, NotInstalled):
                raise
            return NvmlDevice(index, handle, uuid, exc)
        return NvmlDevice(index, handle, uuid)


class NvmlLink:
    """One NVML user's lease on the shared :class:`NvmlSession`."""

    def __init__(self, session: NvmlSession) -> None:
        self.session = session
        self.initialized = False  # this lease holds NVML initialised

    @property
    def lib(self) -> Any:
        """The library object (for its constants: ``link.lib.NVML_TEMPERATURE_GPU``)."""
        return self.session.lib

    @property
    def calls(self) -> Counter[str]:
        """Calls by name, all users of the session together."""
        return self.session.calls

    @property
    def errors(self) -> Counter[tuple[str, str]]:
        """Failed calls by (call, error), all users of the session together."""
        return self.session.errors

    def call(self, name: str, *args: Any) -> Any:
        """Call ``pynvml.<name>(*args)``; raise a project error on failure."""
        return self.session.call(name, *args)

    def init(self) -> None:
        """Take this lease's reference on NVML (``nvmlInit_v2`` if it is the first)."""
        if not self.initialized:
            self.session.acquire()
            self.initialized = True

    def shutdown(self) -> None:
        """Give the reference back (``nvmlShutdown`` if it was the last); used on the way to
        a re-init or exit."""
        if not self.initialized:
            return
        self.initialized = False
        self.session.release()

    def devices(self, refresh: bool = False) -> tuple[NvmlDevice, ...]:
        """The session's enumeration (see :meth:`NvmlSession.devices`)."""
        return self.session.devices(refresh)

    def text(self, name: str, *args: Any) -> str:
        """A string-valued call; older bindings return bytes."""
        return _text(self.call(name, *args))

    def optional(self, name: str, *args: Any) -> Any:
        """A call whose Unsupported/Refused/Transient failure means 'absent' (None).

        Lost propagates: it is a lifecycle event the caller must see.
        """
        try:
            return self.call(name, *args)
        except (Unsupported, Refused, Transient):
            return None


def shared(hw: Hardware, gpus: GpuConfig) -> Hardware:
    """``hw`` with its one NVML session (the daemon calls this once, before building users)."""
    if session_of(hw) is not None:
        return hw
    return dataclasses.replace(hw, nvml_session=_session(hw, gpus))


def session_of(hw: Hardware) -> NvmlSession | None:
    """The hardware's shared session, if it has one."""
    session = hw.nvml_session
    if session is not None and not isinstance(session, NvmlSession):
        raise TypeError(f"Hardware.nvml_session is a {type(session).__name__}, not an NvmlSession")
    return session


def lease(hw: Hardware, gpus: GpuConfig) -> NvmlLink:
    """A lease on the hardware's shared session; without one (a tool, a test) a session of
    its own. Nothing is loaded or initialised yet."""
    return (session_of(hw) or _session(hw, gpus)).lease()


def _session(hw: Hardware, gpus: GpuConfig) -> NvmlSession:
    return NvmlSession(hw.nvml, gpus.library_path, lazy=True, clock=hw.clock,
                       max_backoff_seconds=gpus.reinit_max_backoff_seconds)


def _text(value: Any) -> str:
    """A string-valued result; older bindings return bytes."""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
