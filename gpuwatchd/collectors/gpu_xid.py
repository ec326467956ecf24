"""XID errors as counters, fed by a thread that waits on NVML events.

dcgm-exporter exports the *last* XID as a gauge, which is sticky and misses repeats
(NVIDIA/dcgm-exporter#500, NVIDIA/DCGM#235). Here every event increments
``gpuwatchd_gpu_xid_errors_total{gpu,uuid,xid}``, and the counts survive collection failures.

Command-line equivalent: ``journalctl -k | grep 'NVRM: Xid'``.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from typing import Any

from gpuwatchd.clock import Clock
from gpuwatchd.errors import GpuwatchdError, Transient
from gpuwatchd.links.nvml import NvmlLink

log = logging.getLogger(__name__)

XID_CRITICAL_ERROR = 0x8  # nvmlEventTypeXidCriticalError
# One wait returns at least every WAIT_MS. disarm() joins the thread from inside a collect
# (every re-init), which must finish well within its deadline (1 s at a 1 s interval): a
# 1,000 ms wait made each re-init take ~1 s and miss it (seen with gpuwatchd.sim).
WAIT_MS = 250


class XidWatcher:
    """Waits on an NVML event set for XID events on the GPUs it is armed with."""

    def __init__(self, link: NvmlLink, clock: Clock) -> None:
        self._link = link
        self._clock = clock
        self._lock = threading.Lock()
        self._counts: dict[tuple[int, str, int], tuple[int, float]] = {}
        self._by_handle: dict[Any, tuple[int, str]] = {}
        self._event_set: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def arm(self, gpus: list[tuple[Any, int, str]]) -> None:
        """(Re)register (handle, index, uuid) for XID events; called after every (re)init."""
        self.disarm()
        try:
            event_set = self._link.call("nvmlEventSetCreate")
            for handle, index, uuid in gpus:
                try:
                    self._link.call("nvmlDeviceRegisterEvents", handle, XID_CRITICAL_ERROR,
                                    event_set)
                    self._by_handle[_key(handle)] = (index, uuid)
                except GpuwatchdError as exc:
                    log.info("GPU %d: XID events unavailable: %s", index, exc)
        except GpuwatchdError as exc:
            log.info("XID events unavailable: %s", exc)
            return
        self._event_set = event_set
        # A fresh stop flag per thread: an old waiter whose join timed out (a hung wait) must
        # never be revived by this arm and go on waiting on a freed event set.
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, args=(self._stop, event_set),
                                        name="nvml-xid", daemon=True)
        self._thread.start()

    def disarm(self) -> None:
        """Stop waiting (before nvmlShutdown); counts are kept."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=(WAIT_MS / 1000.0) * 2)
            self._thread = None
        if self._event_set is not None:
            try:
                self._link.call("nvmlEventSetFree", self._event_set)
            except GpuwatchdError:
                pass
            self._event_set = None
        self._by_handle.clear()

    def _loop(self, stop: threading.Event, event_set: Any) -> None:
        while not stop.is_set():
            try:
                data = self._link.call("nvmlEventSetWait_v2", event_set, WAIT_MS)
            except Transient:
                continue  # NVML_ERROR_TIMEOUT: no event within WAIT_MS
            except GpuwatchdError as exc:
                log.info("XID event wait stopped: %s", exc)
                return
            self.record(data)

    def record(self, data: Any) -> None:
        """Count one event (``c_nvmlEventData_t``: device, eventType, eventData = XID)."""
        if not getattr(data, "eventType", 0) & XID_CRITICAL_ERROR:
            return
        index, uuid = self._by_handle.get(_key(data.device), (-1, "unknown"))
        xid = int(data.eventData)
        log.warning("GPU %d: XID %d", index, xid, extra={"GPU": uuid, "XID": xid})
        with self._lock:
            count, _ = self._counts.get((index, uuid, xid), (0, 0.0))
            self._counts[(index, uuid, xid)] = (count + 1, self._clock.time())

    def snapshot(self) -> dict[tuple[int, str, int], tuple[int, float]]:
        """(gpu index, uuid, xid) -> (count, last wall time)."""
        with self._lock:
            return dict(self._counts)


def _key(handle: Any) -> Any:
    """A hashable identity for an NVML handle: its address (ctypes) or the value itself."""
    try:
        return ctypes.cast(handle, ctypes.c_void_p).value
    except (TypeError, ctypes.ArgumentError):
        return handle
