"""A simulated NVML that quacks like the ``pynvml`` module (nvidia-ml-py) for gpuwatchd.

Every function the GPU collector calls (``gpuwatchd/collectors/gpu*.py`` through
``gpuwatchd/links/nvml.py``) answers with pynvml's signature and return shape (ints, str, the
real ctypes structures), and errors are real ``pynvml.NVMLError(code)`` instances, so the
link's error mapping runs as on hardware. Device handles are real ``c_nvmlDevice_t`` pointers
(never dereferenced). Any other pynvml function raises NOT_SUPPORTED; constants and
structures are pynvml's own.

Realism for a passive Tesla P40 (Pascal, GDDR5, driver 535; the per-device values and their
evidence are in :mod:`gpuwatchd.sim.nvml_device`): no fans (``nvmlDeviceGetNumFans`` is 0, fan
speed unsupported), no memory temperature (field 82 comes back with a NOT_SUPPORTED
``nvmlReturn``), no energy counter (Volta+), no row remapping (Ampere+), SHUTDOWN/SLOWDOWN
thresholds only (GPU max operating temperature is N/A), margin = slowdown - temperature.

Fault injection for tests and benchmarks: :meth:`SimNvml.lose_gpu`, :meth:`unload_driver`,
:meth:`hang`, :meth:`set_unsupported`, :meth:`override_temperature`, :meth:`inject_xid`;
:meth:`calls` counts calls per function. Thread-safe: the collector's worker, the XID thread
and a test thread may call at once.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import threading
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pynvml

from gpuwatchd.sim.nvml_device import DEVICE_CALLS, MEMORY_TOTAL_BYTES, utilization
from gpuwatchd.sim.nvml_mig import MigCalls, MigSlot
from gpuwatchd.sim.plant import P40, GpuSpec, GpuView

NVMLError = pynvml.NVMLError
DRIVER_VERSION = "535.183.01"
CUDA_DRIVER_VERSION = 12020  # CUDA 12.2, as driver 535 reports it
XID = pynvml.nvmlEventTypeXidCriticalError
_HANDLE_BASE, _HANDLE_STRIDE = 0x5A5A_0000, 0x1000
_BUS_IDS = ("00000000:04:00.0", "00000000:82:00.0", "00000000:03:00.0", "00000000:83:00.0")


def _error(code: int) -> pynvml.NVMLError:
    return pynvml.NVMLError(code)


class EventSet:
    """An NVML event set (opaque to callers, like ``c_nvmlEventSet_t``)."""

    SUPPORTED = XID | 0x1 | 0x2 | 0x4 | 0x10  # XID, single/double-bit ECC, P-state, clock

    def __init__(self) -> None:
        self.types: dict[int, int] = {}  # GPU index -> registered event types
        self.events: deque[tuple[int, int, int]] = deque()  # (GPU index, type, data)
        self.freed = False

    def wants(self, index: int, kind: int) -> bool:
        return bool(self.types.get(index, 0) & kind)


class SimNvml(MigCalls):
    """The simulated library; ``read_gpu(i)`` returns GPU i's state advanced to now."""

    NVMLError = pynvml.NVMLError
    nvmlLib: object = "simulated"  # not None: NvmlSession.acquire never loads a real library

    def __init__(self, read_gpu: Callable[[int], GpuView], gpu_count: int,
                 spec: GpuSpec = P40, wall: Callable[[], float] | None = None, *,
                 memory_total_bytes: int = MEMORY_TOTAL_BYTES, mig_capable: bool = False,
                 mig: Mapping[int, Sequence[MigSlot]] | None = None) -> None:
        self._read_gpu, self.gpu_count, self.spec = read_gpu, gpu_count, spec
        self.memory_total_bytes = memory_total_bytes
        # MIG (gpuwatchd.sim.nvml_mig): capable GPUs answer nvmlDeviceGetMigMode; the GPUs in
        # ``mig`` have MIG on, with these MIG devices (slot order)
        self.mig_capable = mig_capable
        self.mig: dict[int, tuple[MigSlot, ...]] = {i: tuple(s) for i, s in (mig or {}).items()}
        self.wall = wall or (lambda: 0.0)
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._refcount, self._driver_loaded = 0, True
        self._lost: set[int] = set()
        self._unsupported: set[tuple[int | None, str]] = set()
        self._hangs: dict[str, float] = {}
        self._release = threading.Event()
        self._temperature: dict[int, int] = {}
        self._sets: list[EventSet] = []
        self._calls: Counter[str] = Counter()
        self._handles = [ctypes.cast(ctypes.c_void_p(_HANDLE_BASE + _HANDLE_STRIDE * i),
                                     pynvml.c_nvmlDevice_t) for i in range(gpu_count)]
        # More device calls, ``name -> f(index, *args)`` (the vGPU guest: gpuwatchd.sim.licence)
        self.extra_calls: dict[str, Callable[..., Any]] = {}

    # --- identity (deterministic per index) ---
    def uuid(self, index: int) -> str:
        d = hashlib.sha256(f"gpuwatchd-sim-gpu-{index}".encode()).hexdigest()
        return f"GPU-{d[:8]}-{d[8:12]}-{d[12:16]}-{d[16:20]}-{d[20:32]}"

    def bus_id(self, index: int) -> str:
        return _BUS_IDS[index] if index < len(_BUS_IDS) else f"00000000:{0x10 + index:02X}:00.0"

    # --- fault injection ---
    def lose_gpu(self, index: int) -> None:
        """GPU_IS_LOST on every call with that handle, and on nvmlDeviceGetHandleByIndex."""
        with self._lock:
            self._lost.add(index)

    def restore_gpu(self, index: int) -> None:
        with self._lock:
            self._lost.discard(index)

    def unload_driver(self) -> None:
        """nvmlInit raises DRIVER_NOT_LOADED, every other call UNINITIALIZED."""
        with self._lock:
            self._driver_loaded, self._refcount = False, 0
            self._cond.notify_all()

    def load_driver(self) -> None:
        with self._lock:
            self._driver_loaded = True

    def hang(self, call: str, seconds: float) -> None:
        """Every call of ``call`` sleeps ``seconds`` before answering, until :meth:`unhang`."""
        with self._lock:
            self._hangs[call] = seconds

    def unhang(self, call: str | None = None) -> None:
        """Stop hanging ``call`` (every call with None) and wake the sleeping calls."""
        with self._lock:
            if call is None:
                self._hangs.clear()
            else:
                self._hangs.pop(call, None)
            release, self._release = self._release, threading.Event()
        release.set()

    def set_unsupported(self, index: int | None, call: str, unsupported: bool = True) -> None:
        """``call`` raises NOT_SUPPORTED on GPU ``index`` (None: a call without a handle)."""
        with self._lock:
            (self._unsupported.add if unsupported else self._unsupported.discard)((index, call))

    def override_temperature(self, index: int, celsius: int | None) -> None:
        """Report this raw value as GPU ``index``'s temperature (None: the plant's again)."""
        with self._lock:
            if celsius is None:
                self._temperature.pop(index, None)
            else:
                self._temperature[index] = celsius

    def inject_xid(self, index: int, xid: int) -> int:
        """Queue an XID event for GPU ``index`` on every set it is registered in; how many."""
        with self._lock:
            targets = [s for s in self._sets if s.wants(index, XID)]
            for event_set in targets:
                event_set.events.append((index, XID, xid))
            self._cond.notify_all()
        return len(targets)

    # --- call accounting ---
    def calls(self) -> Counter[str]:
        """Calls per pynvml function name since creation or :meth:`reset_calls`."""
        with self._lock:
            return Counter(self._calls)

    def reset_calls(self) -> None:
        with self._lock:
            self._calls.clear()

    # --- the gate every call passes ---
    def _count_and_hang(self, name: str) -> None:
        with self._lock:
            self._calls[name] += 1
            delay, release = self._hangs.get(name), self._release
        if delay:
            release.wait(delay)

    def _enter(self, name: str, handle: Any = None) -> int | None:
        self._count_and_hang(name)
        with self._lock:
            if not self._driver_loaded or self._refcount == 0:
                raise _error(pynvml.NVML_ERROR_UNINITIALIZED)
            index = None if handle is None else self._index(handle)
            if index in self._lost:
                raise _error(pynvml.NVML_ERROR_GPU_IS_LOST)
            if (index, name) in self._unsupported:
                raise _error(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return index

    def _index(self, handle: Any) -> int:
        try:
            address = ctypes.cast(handle, ctypes.c_void_p).value or 0
        except (TypeError, ctypes.ArgumentError):
            raise _error(pynvml.NVML_ERROR_INVALID_ARGUMENT) from None
        index, rest = divmod(address - _HANDLE_BASE, _HANDLE_STRIDE)
        if rest or not 0 <= index < self.gpu_count:
            raise _error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return index

    def _device_call(self, name: str, handle: Any, *args: Any) -> Any:
        index = self._enter(name, handle)
        if index is None:
            raise _error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        view = self._read_gpu(index)
        if view.halted:  # past the shutdown threshold: off the bus until reset
            raise _error(pynvml.NVML_ERROR_GPU_IS_LOST)
        return DEVICE_CALLS[name](self, view, *args)

    def temperature(self, view: GpuView) -> int:
        """The raw temperature NVML reports for this GPU (an override, or the die's)."""
        with self._lock:
            override = self._temperature.get(view.index)
        return override if override is not None else round(view.temperature_celsius)

    # --- library, system, events ---
    def nvmlInit(self) -> None:
        self._count_and_hang("nvmlInit")
        with self._lock:
            if not self._driver_loaded:
                raise _error(pynvml.NVML_ERROR_DRIVER_NOT_LOADED)
            self._refcount += 1

    def nvmlInitWithFlags(self, flags: int) -> None:
        self.nvmlInit()

    def nvmlShutdown(self) -> None:
        self._enter("nvmlShutdown")
        with self._lock:
            self._refcount = max(0, self._refcount - 1)
            self._cond.notify_all()

    def nvmlSystemGetDriverVersion(self) -> str:
        self._enter("nvmlSystemGetDriverVersion")
        return DRIVER_VERSION

    def nvmlSystemGetCudaDriverVersion_v2(self) -> int:
        self._enter("nvmlSystemGetCudaDriverVersion_v2")
        return CUDA_DRIVER_VERSION

    def nvmlDeviceGetCount(self) -> int:
        self._enter("nvmlDeviceGetCount")
        return self.gpu_count

    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any:
        self._enter("nvmlDeviceGetHandleByIndex")
        if not 0 <= index < self.gpu_count:
            raise _error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        with self._lock:
            if index in self._lost:
                raise _error(pynvml.NVML_ERROR_GPU_IS_LOST)
        return self._handles[index]

    def nvmlEventSetCreate(self) -> EventSet:
        self._enter("nvmlEventSetCreate")
        event_set = EventSet()
        with self._lock:
            self._sets.append(event_set)
        return event_set

    def nvmlDeviceRegisterEvents(self, handle: Any, event_types: int, event_set: EventSet) -> None:
        index = self._enter("nvmlDeviceRegisterEvents", handle)
        if index is None or event_types & ~EventSet.SUPPORTED:
            raise _error(pynvml.NVML_ERROR_NOT_SUPPORTED)
        with self._lock:
            event_set.types[index] = event_set.types.get(index, 0) | event_types

    def nvmlEventSetWait_v2(self, event_set: EventSet, timeoutms: int) -> Any:
        """Blocks up to ``timeoutms`` of real time for an injected event, else TIMEOUT."""
        self._enter("nvmlEventSetWait_v2")
        with self._cond:
            self._cond.wait_for(lambda: bool(event_set.events) or event_set.freed
                                or self._refcount == 0, timeoutms / 1000.0)
            if self._refcount == 0:
                raise _error(pynvml.NVML_ERROR_UNINITIALIZED)
            if event_set.freed:
                raise _error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
            if not event_set.events:
                raise _error(pynvml.NVML_ERROR_TIMEOUT)
            index, kind, data = event_set.events.popleft()
        return pynvml.c_nvmlEventData_t(device=self._handles[index], eventType=kind,
                                        eventData=data)

    def nvmlEventSetWait(self, event_set: EventSet, timeoutms: int) -> Any:
        return self.nvmlEventSetWait_v2(event_set, timeoutms)

    def nvmlEventSetFree(self, event_set: EventSet) -> None:
        self._enter("nvmlEventSetFree")
        with self._lock:
            event_set.freed = True
            if event_set in self._sets:
                self._sets.remove(event_set)
            self._cond.notify_all()

    def _busy(self, index: int) -> float:
        """GPU ``index``'s utilisation 0-1 now (its MIG devices' memory follows it)."""
        return utilization(self, self._read_gpu(index))

    def __getattr__(self, name: str) -> Any:
        """Device calls from the table; pynvml's constants; other functions NOT_SUPPORTED."""
        if name in self.__dict__.get("extra_calls", {}):  # first: a card's own (fans)
            return functools.partial(self._extra_call, name)
        if name in DEVICE_CALLS:
            return functools.partial(self._device_call, name)
        value = getattr(pynvml, name)
        if name.startswith("nvml") and callable(value) and not isinstance(value, type):
            return functools.partial(self._not_modelled, name)
        return value

    def _extra_call(self, name: str, handle: Any, *args: Any) -> Any:
        index = self._enter(name, handle)
        if index is None:
            raise _error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return self.extra_calls[name](index, *args)

    def _not_modelled(self, name: str, *args: Any, **kwargs: Any) -> Any:
        handle = args[0] if args and isinstance(args[0], pynvml.c_nvmlDevice_t) else None
        self._enter(name, handle)
        raise _error(pynvml.NVML_ERROR_NOT_SUPPORTED)
