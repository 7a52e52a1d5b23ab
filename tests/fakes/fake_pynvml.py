"""A test double of the pynvml calls joulemeter makes, faithful to how NVML behaves.

It never touches the installed nvidia-ml-py: constants, NVMLError and nvmlFieldValue_t are
its own, with the values of NVIDIA's nvml.h (https://docs.nvidia.com/deploy/nvml-api/), and
its module offers only what the oldest binding joulemeter allows (nvidia-ml-py 12.535.77)
offers: no NVML_VALUE_TYPE_UNSIGNED_SHORT, no `usVal` union member. Behaviour modelled:
- the energy counter (mJ) moves in steps, every `counter_period_s`, not on every call;
- nvmlDeviceGetPowerUsage is a 1 s moving average on Ampere (except GA100) and newer,
  instantaneous before (docs/measuring.md, NVML table);
- field values honour the scope asked for (GPU/module) and their value type, and each
  entry carries its own nvmlReturn; Grace Hopper refuses GPU scope;
- errors can be injected per call, once or for good; GPU_IS_LOST and RESET_REQUIRED
  never recover on the same handle; a board hidden by cgroups refuses its handle;
- every call takes `call_s` seconds of real time.

    fake = FakeNvml([FakeGpu(power_w=100.0)])
    monkeypatch.setitem(sys.modules, "pynvml", fake.module)
"""

from __future__ import annotations

import ctypes
import math
import sys
import time
import types
from dataclasses import dataclass, field
from typing import Any

# nvmlReturn_t (nvml.h)
NVML_SUCCESS = 0
ERRORS = {
    "UNINITIALIZED": (1, "Uninitialized"),
    "INVALID_ARGUMENT": (2, "Invalid Argument"),
    "NOT_SUPPORTED": (3, "Not Supported"),
    "NO_PERMISSION": (4, "Insufficient Permissions"),
    "ALREADY_INITIALIZED": (5, "Already Initialized"),
    "NOT_FOUND": (6, "Not Found"),
    "INSUFFICIENT_SIZE": (7, "Insufficient Size"),
    "DRIVER_NOT_LOADED": (9, "Driver Not Loaded"),
    "TIMEOUT": (10, "Timeout"),
    "LIBRARY_NOT_FOUND": (12, "NVML Shared Library Not Found"),
    "FUNCTION_NOT_FOUND": (13, "Function Not Found"),
    "GPU_IS_LOST": (15, "GPU is lost"),
    "RESET_REQUIRED": (16, "GPU requires restart"),
    "OPERATING_SYSTEM": (17, "The operating system has blocked the request."),
    "NO_DATA": (21, "No data"),
    "UNKNOWN": (999, "Unknown Error"),
}
CODE = {name: code for name, (code, _) in ERRORS.items()}
_MESSAGE = {code: message for code, message in ERRORS.values()}
# nvmlDeviceArchitecture_t, nvmlValueType_t, field ids, power scopes, MIG mode (nvml.h)
ARCH = {"KEPLER": 2, "MAXWELL": 3, "PASCAL": 4, "VOLTA": 5, "TURING": 6, "AMPERE": 7,
        "ADA": 8, "HOPPER": 9, "BLACKWELL": 10}
VALUE_TYPE = {"DOUBLE": 0, "UNSIGNED_INT": 1, "UNSIGNED_LONG": 2, "UNSIGNED_LONG_LONG": 3,
              "SIGNED_LONG_LONG": 4, "SIGNED_INT": 5, "UNSIGNED_SHORT": 6}
FI_POWER_AVERAGE, FI_POWER_INSTANT, FI_ENERGY = 185, 186, 191
SCOPE_GPU, SCOPE_MODULE = 0, 1
MIG_DISABLE, MIG_ENABLE = 0, 1


class NVMLError(Exception):
    """pynvml's error: `NVMLError(code)` gives the subclass of that code, as pynvml does."""

    _subclass: dict[int, type[NVMLError]] = {}

    def __new__(cls, value: int) -> NVMLError:
        return Exception.__new__(NVMLError._subclass.get(value, cls))

    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return _MESSAGE.get(self.value, f"Unknown Error {self.value}")


def _error_classes() -> dict[str, type[NVMLError]]:
    """NVMLError_GpuIsLost and its kin, named as pynvml names them from NVML_ERROR_GPU_IS_LOST."""
    classes = {}
    for name, (code, _) in ERRORS.items():
        cls_name = "NVMLError_" + "".join(part.title() for part in name.split("_"))
        cls = type(cls_name, (NVMLError,), {})
        NVMLError._subclass[code] = cls
        classes[cls_name] = cls
    return classes


_ERROR_CLASSES = _error_classes()


class _Value(ctypes.Union):
    """nvmlValue_t as nvidia-ml-py 12.535.77 declares it: no `usVal` member."""

    _fields_ = [("dVal", ctypes.c_double), ("uiVal", ctypes.c_uint), ("ulVal", ctypes.c_ulong),
                ("ullVal", ctypes.c_ulonglong), ("sllVal", ctypes.c_longlong), ("siVal", ctypes.c_int)]


class c_nvmlFieldValue_t(ctypes.Structure):  # noqa: N801 (pynvml's name)
    _fields_ = [("fieldId", ctypes.c_uint32), ("scopeId", ctypes.c_uint32),
                ("timestamp", ctypes.c_int64), ("latencyUsec", ctypes.c_int64),
                ("valueType", ctypes.c_uint), ("nvmlReturn", ctypes.c_uint), ("value", _Value)]


_CTYPE = {0: ctypes.c_double, 1: ctypes.c_uint, 2: ctypes.c_ulong, 3: ctypes.c_ulonglong,
          4: ctypes.c_longlong, 5: ctypes.c_int, 6: ctypes.c_ushort}


class FakeClock:
    """Seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.t_s = 0.0

    def advance(self, dt_s: float) -> None:
        self.t_s += dt_s

    def __call__(self) -> float:
        return self.t_s


class RealClock:
    """Real monotonic seconds since creation, for runs of the meter's own sampler against the fake."""

    def __init__(self) -> None:
        self._t0 = time.monotonic()

    @property
    def t_s(self) -> float:
        return time.monotonic() - self._t0

    def __call__(self) -> float:
        return self.t_s


@dataclass
class FakeProcess:
    """A process using a board: its pid, memory, and SM utilisation (%) in each sample."""

    pid: int
    used_memory_b: int = 1 << 30
    sm_util: int = 50


@dataclass
class FakeGpu:
    """One board. `arch` below Volta means no energy counter (NVML answers NotSupported)."""

    name: str = "NVIDIA A100-SXM4-40GB"
    uuid: str = "GPU-00000000-0000-0000-0000-000000000000"
    pci_bus_id: str = "00000000:07:00.0"
    arch: int = ARCH["AMPERE"]
    power_w: float = 100.0
    power_field: bool = True  # NVML_FI_DEV_POWER_INSTANT supported (R535+ drivers)
    power_value_type: int = VALUE_TYPE["UNSIGNED_INT"]  # type of the power fields' values
    gpu_scope: bool = True  # False: GPU scope refused, module scope answers (Grace Hopper)
    counter_period_s: float = 0.1  # the energy counter moves once per period
    mig_enabled: bool | None = None  # None: not MIG-capable (nvmlDeviceGetMigMode NotSupported)
    mig_uuids: list[str] = field(default_factory=list)
    hidden: int | None = None  # code nvmlDeviceGetHandleByIndex raises (cgroups hide the board)
    refuses: int | None = None  # code every query on this board raises (NO_PERMISSION, …)
    processes: list[FakeProcess] = field(default_factory=list)
    lost: int | None = None  # GPU_IS_LOST / RESET_REQUIRED once fallen off the bus: for good
    calls: int = 0  # NVML calls made on this board
    _changes: list[tuple[float, float]] = field(default_factory=list)  # (t_s, power from then)
    _failures: dict[str, list[list[Any]]] = field(default_factory=dict)
    _counter_origin_mj: float = 0.0

    @property
    def averaged_power_usage(self) -> bool:
        """nvmlDeviceGetPowerUsage is a 1 s average on Ampere except GA100 (A100, A30), and newer."""
        ga100 = any(model in self.name for model in ("A100", "A30"))
        return self.arch > ARCH["AMPERE"] or (self.arch == ARCH["AMPERE"] and not ga100)

    @property
    def module(self) -> bool:
        """A Grace superchip: its counter and power cover GPU, CPU and memory."""
        return not self.gpu_scope

    def fail(self, call: str, error: str, times: int | None = 1) -> None:
        """Make the next `times` calls of `call` (None: all from now on) raise NVML error `error`.

        `call` is an nvml function name, or "field:<field id>" for one field's nvmlReturn.
        """
        self._failures.setdefault(call, []).append([CODE[error], times])

    def heal(self, call: str) -> None:
        """End the failures injected into `call` (a transient fault that passes)."""
        self._failures.pop(call, None)

    def lose(self, error: str = "GPU_IS_LOST") -> None:
        """The board falls off the bus (or needs a reset): every query fails from now on."""
        self.lost = CODE[error]

    # -- the physics ----------------------------------------------------------
    def power_at(self, t_s: float) -> float:
        """The power drawn at `t_s` (W); before the first change, the first power."""
        power = self._changes[0][1] if self._changes else self.power_w
        for t, p in self._changes:
            if t > t_s:
                break
            power = p
        return power

    def energy_mj(self, t_s: float) -> float:
        """Energy drawn from t = 0 to `t_s` (mJ), negative before 0 (the first power extended)."""
        changes = self._changes or [(0.0, self.power_w)]
        total, t_prev, p_prev = 0.0, 0.0, changes[0][1]
        if t_s < 0:
            return p_prev * t_s * 1e3
        for t, p in changes:
            if t >= t_s:
                break
            if t > t_prev:
                total += p_prev * (t - t_prev)
                t_prev = t
            p_prev = p
        return (total + p_prev * (t_s - t_prev)) * 1e3

    def counter_mj(self, t_s: float) -> int:
        """The counter as NVML shows it: the energy at the last update before `t_s`."""
        step = math.floor(t_s / self.counter_period_s + 1e-9) * self.counter_period_s
        return int(max(self.energy_mj(max(step, 0.0)) - self._counter_origin_mj, 0.0))

    def average_power_w(self, t_s: float) -> float:
        """Mean power over the second before `t_s` (W)."""
        return (self.energy_mj(t_s) - self.energy_mj(t_s - 1.0)) / 1e3

    def _take_failure(self, call: str) -> int | None:
        queue = self._failures.get(call)
        while queue:
            code, times = queue[0]
            if times is None:
                return code
            if times > 0:
                queue[0][1] -= 1
                return code
            queue.pop(0)
        return None


@dataclass(frozen=True)
class _MigHandle:
    board: FakeGpu
    uuid: str


class _PciInfo(ctypes.Structure):
    _fields_ = [("busIdLegacy", ctypes.c_char * 16), ("domain", ctypes.c_uint), ("bus", ctypes.c_uint),
                ("device", ctypes.c_uint), ("pciDeviceId", ctypes.c_uint),
                ("pciSubSystemId", ctypes.c_uint), ("busId", ctypes.c_char * 32)]


class FakeNvml:
    """The state behind a fake `pynvml` module: a clock, boards, and whether a driver exists."""

    def __init__(
        self,
        gpus: list[FakeGpu],
        clock: FakeClock | RealClock | None = None,
        library_missing: bool = False,
        driver_not_loaded: bool = False,
        call_s: float = 1e-4,
    ) -> None:
        self.gpus = gpus
        self.clock = clock or FakeClock()
        self.library_missing = library_missing
        self.driver_not_loaded = driver_not_loaded
        self.call_s = call_s
        self.initialised = 0  # nvmlInit calls minus nvmlShutdown calls
        self.calls: dict[str, int] = {}
        for gpu in gpus:
            gpu._changes = [(self.clock.t_s, gpu.power_w)] if not gpu._changes else gpu._changes
        self.module = self._build_module()

    # -- controls for tests ------------------------------------------------
    def set_power(self, gpu: FakeGpu, power_w: float) -> None:
        """Change a board's power from now on (energy so far is kept)."""
        gpu._changes.append((self.clock.t_s, power_w))
        gpu.power_w = power_w

    def reset_counter(self, gpu: FakeGpu) -> None:
        """The driver reloads: the board's energy counter starts again from 0."""
        gpu._counter_origin_mj = gpu.energy_mj(self.clock.t_s)

    # -- the module ----------------------------------------------------------
    def _build_module(self) -> types.ModuleType:
        module = types.ModuleType("pynvml")
        module.__dict__.update(
            NVMLError=NVMLError, c_nvmlFieldValue_t=c_nvmlFieldValue_t, NVML_SUCCESS=NVML_SUCCESS,
            NVML_FI_DEV_POWER_AVERAGE=FI_POWER_AVERAGE, NVML_FI_DEV_POWER_INSTANT=FI_POWER_INSTANT,
            NVML_FI_DEV_ENERGY=FI_ENERGY, NVML_POWER_SCOPE_GPU=SCOPE_GPU,
            NVML_POWER_SCOPE_MODULE=SCOPE_MODULE, NVML_DEVICE_MIG_DISABLE=MIG_DISABLE,
            NVML_DEVICE_MIG_ENABLE=MIG_ENABLE, **_ERROR_CLASSES,
        )
        for name, (code, _) in ERRORS.items():
            setattr(module, f"NVML_ERROR_{name}", code)
        for name, value in ARCH.items():
            setattr(module, f"NVML_DEVICE_ARCH_{name}", value)
        for name, value in VALUE_TYPE.items():
            if name != "UNSIGNED_SHORT":  # added in nvidia-ml-py 12.560
                setattr(module, f"NVML_VALUE_TYPE_{name}", value)
        for attr in dir(self):
            if attr.startswith("nvml"):
                setattr(module, attr, self._timed(attr, getattr(self, attr)))
        return module

    def _timed(self, name: str, call: Any) -> Any:
        def timed(*args: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            time.sleep(self.call_s)
            if name not in ("nvmlInit", "nvmlShutdown"):
                self._check_init()
            if args and isinstance(args[0], FakeGpu):
                args[0].calls += 1
                self._check_board(args[0], name)
            return call(*args)

        return timed

    def _check_init(self) -> None:
        if self.initialised <= 0:
            raise NVMLError(CODE["UNINITIALIZED"])

    def _check_board(self, gpu: FakeGpu, call: str) -> None:
        if gpu.lost is not None:
            raise NVMLError(gpu.lost)
        if gpu.refuses is not None and call != "nvmlDeviceGetUUID":
            raise NVMLError(gpu.refuses)
        code = gpu._take_failure(call)
        if code is not None:
            if code in (CODE["GPU_IS_LOST"], CODE["RESET_REQUIRED"]):
                gpu.lost = code
            raise NVMLError(code)

    def nvmlInit(self) -> None:
        if self.library_missing:
            raise NVMLError(CODE["LIBRARY_NOT_FOUND"])
        if self.driver_not_loaded:
            raise NVMLError(CODE["DRIVER_NOT_LOADED"])
        self.initialised += 1

    def nvmlShutdown(self) -> None:
        self._check_init()
        self.initialised -= 1

    def nvmlSystemGetDriverVersion(self) -> str:
        return "550.54.15"

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeGpu:
        if not 0 <= index < len(self.gpus):
            raise NVMLError(CODE["INVALID_ARGUMENT"])
        gpu = self.gpus[index]
        if gpu.hidden is not None:
            raise NVMLError(gpu.hidden)
        return gpu

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> FakeGpu | _MigHandle:
        for gpu in self.gpus:
            if gpu.uuid == uuid and gpu.hidden is None:
                return gpu
            if uuid in gpu.mig_uuids:
                return _MigHandle(gpu, uuid)
        raise NVMLError(CODE["NOT_FOUND"])

    def nvmlDeviceGetDeviceHandleFromMigDeviceHandle(self, handle: _MigHandle) -> FakeGpu:
        if not isinstance(handle, _MigHandle):
            raise NVMLError(CODE["INVALID_ARGUMENT"])
        return handle.board

    def nvmlDeviceGetUUID(self, handle: FakeGpu | _MigHandle) -> str:
        return handle.uuid

    def nvmlDeviceGetPciInfo(self, handle: FakeGpu) -> _PciInfo:
        info = _PciInfo()
        info.busId = handle.pci_bus_id.encode()
        info.busIdLegacy = handle.pci_bus_id[4:].encode()
        return info

    def nvmlDeviceGetName(self, handle: FakeGpu) -> str:
        return handle.name

    def nvmlDeviceGetArchitecture(self, handle: FakeGpu) -> int:
        return handle.arch

    def nvmlDeviceGetMigMode(self, handle: FakeGpu) -> list[int]:
        if handle.mig_enabled is None:
            raise NVMLError(CODE["NOT_SUPPORTED"])
        mode = MIG_ENABLE if handle.mig_enabled else MIG_DISABLE
        return [mode, mode]

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: FakeGpu) -> int:
        return 7 if handle.mig_enabled is not None else 0

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: FakeGpu, index: int) -> _MigHandle:
        if not handle.mig_enabled or index >= len(handle.mig_uuids):
            raise NVMLError(CODE["NOT_FOUND"])
        return _MigHandle(handle, handle.mig_uuids[index])

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: FakeGpu) -> int:
        if handle.arch < ARCH["VOLTA"]:
            raise NVMLError(CODE["NOT_SUPPORTED"])
        return handle.counter_mj(self.clock.t_s)

    def nvmlDeviceGetPowerUsage(self, handle: FakeGpu) -> int:
        now = self.clock.t_s
        power = handle.average_power_w(now) if handle.averaged_power_usage else handle.power_at(now)
        return int(power * 1e3)

    def nvmlDeviceGetComputeRunningProcesses(self, handle: FakeGpu) -> list[Any]:
        if handle.mig_enabled:
            raise NVMLError(CODE["NOT_SUPPORTED"])
        return [types.SimpleNamespace(pid=p.pid, usedGpuMemory=p.used_memory_b) for p in handle.processes]

    def nvmlDeviceGetProcessUtilization(self, handle: FakeGpu, last_seen_us: int) -> list[Any]:
        if handle.mig_enabled:
            raise NVMLError(CODE["NOT_SUPPORTED"])
        now_us = int(self.clock.t_s * 1e6) + 1
        if not handle.processes or now_us <= last_seen_us:
            raise NVMLError(CODE["NOT_FOUND"])  # no sample since last_seen_us
        return [types.SimpleNamespace(pid=p.pid, timeStamp=now_us, smUtil=p.sm_util, memUtil=0)
                for p in handle.processes]

    def nvmlDeviceGetFieldValues(self, handle: FakeGpu, field_ids: list[Any]) -> Any:
        values = (c_nvmlFieldValue_t * len(field_ids))()
        now = self.clock.t_s
        for entry, asked in zip(values, field_ids):
            field_id, scope = asked if isinstance(asked, tuple) else (asked, SCOPE_GPU)
            entry.fieldId, entry.scopeId = field_id, scope
            entry.timestamp = int(now * 1e6)  # µs, as NVML gives it
            entry.latencyUsec = int(self.call_s * 1e6)
            value = self._field(handle, field_id, scope, now)
            failure = handle._take_failure(f"field:{field_id}")
            if value is None or failure is not None:
                entry.nvmlReturn = failure if failure is not None else CODE["NOT_SUPPORTED"]
                continue
            entry.nvmlReturn = NVML_SUCCESS
            kind = handle.power_value_type if field_id != FI_ENERGY else VALUE_TYPE["UNSIGNED_LONG_LONG"]
            entry.valueType = kind
            raw = _CTYPE[kind](value if kind == VALUE_TYPE["DOUBLE"] else int(value))
            ctypes.memmove(ctypes.byref(entry.value), ctypes.byref(raw), ctypes.sizeof(raw))
        return values

    def _field(self, gpu: FakeGpu, field_id: int, scope: int, now: float) -> float | None:
        """The value of one field at one scope, None where NVML refuses it."""
        if scope == SCOPE_GPU and not gpu.gpu_scope:
            return None
        if scope == SCOPE_MODULE and gpu.gpu_scope:
            return None  # module scope exists only on superchips
        if field_id == FI_POWER_INSTANT and gpu.power_field:
            return gpu.power_at(now) * 1e3
        if field_id == FI_POWER_AVERAGE and gpu.power_field and gpu.averaged_power_usage:
            return gpu.average_power_w(now) * 1e3
        if field_id == FI_ENERGY and gpu.arch >= ARCH["VOLTA"]:
            return gpu.counter_mj(now)
        return None


def install(monkeypatch: Any, fake: FakeNvml) -> FakeNvml:
    """Make `import pynvml` give the fake for the rest of the test."""
    monkeypatch.setitem(sys.modules, "pynvml", fake.module)
    return fake
