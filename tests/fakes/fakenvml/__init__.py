"""A fake ``libnvidia-ml.so.1`` (C, compiled here with gcc) and the state file that drives it.

The real nvidia-ml-py bindings load the fake exactly like the driver's library, so the whole
path pynvml -> ctypes -> C ABI -> NvmlLink -> GpuCollector is exercised without a GPU. The
library re-reads ``$FAKE_NVML_STATE`` whenever the file changes; :class:`FakeNvmlState` writes
it atomically (temp file + rename), so the library never sees a half-written file. The key
format is described at the top of ``fake_libnvidia_ml.c``.

Typical use::

    lib = build_fake_nvml(tmp_dir)                  # .../current/libnvidia-ml.so.1
    state = FakeNvmlState(tmp_path / "nvml.state")  # two GPUs with distinct values
    state.gpus[1]["rc"] = 15                        # GPU 1 is lost
    state.write()
    os.environ.update(state.env())
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

SOURCE = Path(__file__).with_name("fake_libnvidia_ml.c")
CHILD = Path(__file__).with_name("child.py")
LIBRARY_NAME = "libnvidia-ml.so.1"
GCC_MISSING = "gcc not found: install gcc (apt-get install gcc) to build the fake libnvidia-ml.so.1"

# Symbols the "old driver" variant leaves out (pynvml raises NVMLError_FunctionNotFound).
OLD_DRIVER_MISSING = (
    "nvmlDeviceGetMarginTemperature",
    "nvmlDeviceGetRemappedRows",
    "nvmlDeviceGetCurrentClocksEventReasons",
    "nvmlDeviceGetSupportedClocksEventReasons",
    "nvmlDeviceGetMemoryInfo_v2",
    "nvmlSystemGetCudaDriverVersion_v2",
)

# nvml.h enumerations used in the state keys.
CLOCK = {"graphics": 0, "sm": 1, "memory": 2, "video": 3}  # NVML_CLOCK_*
THRESHOLD = {"shutdown": 0, "slowdown": 1, "mem_max": 2, "gpu_max": 3}  # ..._THRESHOLD_*
VIOLATION = {"power": 0, "thermal": 1, "sync_boost": 2, "board_limit": 3,
             "low_utilization": 4, "reliability": 5}  # NVML_PERF_POLICY_*
ECC_VOLATILE = 0  # NVML_VOLATILE_ECC
ECC_TYPE = {"corrected": 0, "uncorrected": 1}  # NVML_MEMORY_ERROR_TYPE_*
FIELD_MEMORY_TEMP = 82  # NVML_FI_DEV_MEMORY_TEMP
EVENT_XID = 0x8  # nvmlEventTypeXidCriticalError
RC_NOT_SUPPORTED = 3
RC_DRIVER_NOT_LOADED = 9
RC_GPU_IS_LOST = 15

Value = str | int

_built: dict[tuple[bool, str], Path] = {}


class FakeNvmlBuildError(RuntimeError):
    """The fake library could not be compiled (the message says what to install or fix)."""


def build_fake_nvml(directory: Path, *, old_driver: bool = False) -> Path:
    """Compile the fake library under ``directory`` and return its path.

    Cached per process and variant (keyed by the C source's digest), so a test session compiles
    each variant once. ``old_driver`` leaves out :data:`OLD_DRIVER_MISSING`.
    Raises :class:`FakeNvmlBuildError` naming the apt package when gcc is missing.
    """
    source = SOURCE.read_bytes()
    key = (old_driver, hashlib.sha256(source).hexdigest())
    cached = _built.get(key)
    if cached is not None and cached.exists():
        return cached
    gcc = shutil.which("gcc")
    if gcc is None:
        raise FakeNvmlBuildError(GCC_MISSING)
    out_dir = Path(directory) / ("old-driver" if old_driver else "current")
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / LIBRARY_NAME
    fd, tmp = tempfile.mkstemp(prefix=".build-", suffix=".so", dir=out_dir)
    os.close(fd)
    command = [gcc, "-shared", "-fPIC", "-O1", "-Wall", "-Werror", "-pthread",
               f"-Wl,-soname,{LIBRARY_NAME}", "-o", tmp, str(SOURCE)]
    if old_driver:
        command.insert(1, "-DFAKE_NVML_OLD_DRIVER")
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        Path(tmp).unlink(missing_ok=True)
        raise FakeNvmlBuildError(f"gcc failed ({done.returncode}) building {SOURCE.name}:\n"
                                 f"{done.stderr.strip()}")
    os.replace(tmp, target)
    _built[key] = target
    return target


def default_gpu(index: int) -> dict[str, Value]:
    """A GPU with every reading present and values distinct per index.

    GPU 0 looks like a passive GDDR card (Tesla P40: no fans, no memory temperature, no
    mem_max threshold); GPU 1 like an HBM card with two fans (values chosen to be distinct).
    """
    gpu: dict[str, Value] = {
        "uuid": f"GPU-fa6e0000-0000-4000-8000-00000000000{index}",
        "name": ["Tesla P40", "NVIDIA A100-PCIE-40GB"][index % 2],
        "serial": f"03240180{index:05d}",
        "vbios": f"86.02.23.00.0{index}",
        "pci.bus_id": f"00000000:{0x3B + index:02X}:00.0",
        "pci.domain": 0, "pci.bus": 0x3B + index, "pci.device": 0,
        "pci.device_id": 0x1B3810DE, "pci.subsystem_id": 0x11D910DE,
        "temperature.0": 41 + 10 * index,
        "margin": 40 - 10 * index,
        "power_mw": 51234 + 1000 * index,
        "energy_mj": 123456789 + index,
        "clock_events": 0x1 if index == 0 else 0x24,  # gpu_idle / sw_power_cap + sw_thermal
        "supported_clock_events": 0x1FF,
        "pstate": 8 if index == 0 else 0,
        "fans": 0 if index == 0 else 2,
        "limit.enforced_mw": 250000 + index, "limit.current_mw": 250000 + index,
        "limit.default_mw": 250000, "limit.min_mw": 125000, "limit.max_mw": 250000,
        "util.gpu": 7 + index, "util.memory": 3 + index,
        "util.encoder": 0, "util.decoder": 1 + index,
        "mem.total": 24 * 2**30 * (1 + index), "mem.used": 512 * 2**20 * (1 + index),
        "ecc.0.0": 5 + index, "ecc.1.0": index,
        "remap.correctable": 2 * index, "remap.uncorrectable": 0,
        "remap.pending": index, "remap.failed": 0,
        "pcie.gen": 3, "pcie.width": 16 - 8 * index, "pcie.max_gen": 3 + index,
        "pcie.max_width": 16, "pcie.replays": 11 + index,
        "persistence": 1 - index,
    }
    gpu["mem.reserved"] = 32 * 2**20
    gpu["mem.free"] = int(gpu["mem.total"]) - int(gpu["mem.used"]) - int(gpu["mem.reserved"])
    for code in CLOCK.values():
        gpu[f"clock.{code}"] = [544, 1303, 3615, 1101][code] + index
        gpu[f"max_clock.{code}"] = [1531, 1531, 3615, 1379][code] + index
    for name, code in THRESHOLD.items():
        if not (index == 0 and name == "mem_max"):
            gpu[f"threshold.{code}"] = [95, 92, 85, 89][code] - index
    for code in VIOLATION.values():
        gpu[f"violation.{code}"] = (code + 1) * 1_500_000_000 + index
    for fan in range(int(gpu["fans"])):
        gpu[f"fan.{fan}"] = 40 + 15 * fan
    if int(gpu["fans"]):
        gpu["fan_speed.min"], gpu["fan_speed.max"] = 30, 100  # as an RTX 2070 reports
    if index % 2 == 1:
        gpu[f"field.{FIELD_MEMORY_TEMP}"] = 47
    return gpu


MIG_A100_80GB = (  # (gpu instance, profile id, slices, SMs, MiB, placement start, size)
    (1, 9, 3, 42, 40_192, 0, 4), (5, 14, 2, 28, 19_968, 4, 2),
    (13, 19, 1, 14, 9_728, 6, 1), (14, 19, 1, 14, 9_728, 7, 1),
)


def add_mig(gpu: dict[str, Value], *, privileged: bool = False, pending: int = 1,
            empty_slots: tuple[int, ...] = (1,)) -> list[str]:
    """Put ``gpu`` in MIG mode with 3g.40gb + 2g.20gb + 1g.10gb x2 (an A100 80GB).

    The MIG devices go into slots 0, 2, 3, 4 (slot 1 left empty by default: indices can be
    sparse); returns their UUIDs in that order. ``privileged``: the GPU-instance calls answer
    (root), else NO_PERMISSION (the DaemonSet's uid 65534).
    """
    gpu.update({"mig.current": 1, "mig.pending": pending, "mig.max": 7})
    if privileged:
        gpu["mig.privileged"] = 1
    slots = [s for s in range(8) if s not in empty_slots][:len(MIG_A100_80GB)]
    uuids = []
    for slot, (gi, profile, slices, sms, mib, start, size) in zip(slots, MIG_A100_80GB,
                                                                 strict=True):
        uuid = f"MIG-0000{gi:04d}-0000-4000-8000-0000000000{slot:02d}"
        used = (100 + 10 * gi) * 2**20
        gpu.update({f"mig.{slot}.{key}": val for key, val in {
            "gi": gi, "ci": 0, "uuid": uuid, "mem.total": mib * 2**20,
            "mem.used": used, "mem.free": mib * 2**20 - used, "slices": slices,
            "ci_slices": slices, "sms": sms, "mem_mb": mib, "profile_id": profile,
            "placement.start": start, "placement.size": size}.items()})
        uuids.append(uuid)
    return uuids


class FakeNvmlState:
    """The state file of the fake library: globals, GPUs, per-call overrides, queued events."""

    def __init__(self, path: Path, gpus: int = 2) -> None:
        self.path = Path(path)
        self.globals: dict[str, Value] = {
            "driver_version": "550.54.15",
            "cuda_version": 12040,
            "event_wait_cap_ms": 50,  # keeps the XID thread's stop (join) short in tests
        }
        self.gpus: list[dict[str, Value]] = [default_gpu(i) for i in range(gpus)]
        self.calls: dict[tuple[int | None, str], dict[str, int]] = {}
        self.events: list[tuple[int, int, int, int]] = []  # (id, gpu, type, data)

    def env(self) -> dict[str, str]:
        """The environment variable that points the library at this file."""
        return {"FAKE_NVML_STATE": str(self.path)}

    def set_call(self, call: str, *, rc: int | None = None, sleep_seconds: float | None = None,
                 gpu: int | None = None) -> None:
        """Make NVML symbol ``call`` return ``rc`` and/or hang, on one GPU or on all."""
        entry = self.calls.setdefault((gpu, call), {})
        if rc is not None:
            entry["rc"] = rc
        if sleep_seconds is not None:
            entry["sleep_ms"] = round(sleep_seconds * 1000)

    def clear_call(self, call: str, gpu: int | None = None) -> None:
        """Drop the overrides of ``call`` (a hang in progress ends within ~10 ms)."""
        self.calls.pop((gpu, call), None)

    def push_event(self, gpu: int, data: int, event_type: int = EVENT_XID) -> int:
        """Queue an event (an XID by default); the library returns it once. Returns its id."""
        event_id = max((e[0] for e in self.events), default=0) + 1
        self.events.append((event_id, gpu, event_type, data))
        return event_id

    def render(self) -> str:
        """The file's text."""
        lines = ["# fake libnvidia-ml.so.1 state (tests/fakes/fakenvml)"]
        values = {"count": len(self.gpus), **self.globals}
        lines += [f"{key} {value}" for key, value in values.items()]
        for index, gpu in enumerate(self.gpus):
            lines += [f"gpu.{index}.{key} {value}" for key, value in gpu.items()]
        for (gpu_index, call), entry in self.calls.items():
            prefix = f"gpu.{gpu_index}.call.{call}" if gpu_index is not None else f"call.{call}"
            lines += [f"{prefix}.{what} {value}" for what, value in entry.items()]
        lines += [f"event.{eid} {gpu_index} {etype} {data}"
                  for eid, gpu_index, etype, data in self.events]
        return "\n".join(lines) + "\n"

    def write(self) -> None:
        """Write the file atomically (temp file in the same directory, then rename)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(self.render())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def collect_in_subprocess(gpu_config: dict[str, Any], env: dict[str, str], ticks: int = 1,
                          timeout: float = 30.0) -> tuple[list[dict[str, Any]], str]:
    """Run the GPU collector in a new process (see ``child.py``); (records, stderr).

    ``env`` replaces the environment (pass ``LD_LIBRARY_PATH`` and ``FAKE_NVML_STATE`` as
    needed). Fails with the child's stderr when it exits non-zero or prints no JSON.
    """
    done = subprocess.run([sys.executable, str(CHILD), json.dumps(gpu_config), str(ticks)],
                          env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0 or not done.stdout.strip():
        raise AssertionError(f"collector child exited {done.returncode}:\n{done.stderr}")
    records: list[dict[str, Any]] = json.loads(done.stdout)
    return records, done.stderr


def reset_pynvml(*libraries: Path) -> None:
    """Forget nvidia-ml-py's loaded library and cached symbols, and reset each fake's state
    (dlopen refcounts: the CDLL here is the same handle as pynvml's), between tests that load
    a fake libnvidia-ml.so.1 in this process."""
    import ctypes

    import pynvml

    pynvml.nvmlLib = None
    pynvml._nvmlGetFunctionPointer_cache.clear()
    pynvml._nvmlLib_refcount = 0
    for path in libraries:
        ctypes.CDLL(str(path)).fakeNvmlReset()
