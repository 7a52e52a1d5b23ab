"""A test double of the pynvml calls joulemeter makes, driven by a fake clock.

Constants, NVMLError classes and the nvmlFieldValue_t structure are pynvml's own
(nvidia-ml-py is a dependency), so `pynvml.NVMLError(code)` gives the same subclass
here as with a real driver. Units are NVML's: mW for power, mJ for energy. A GPU's
energy counter grows by power × time on the fake clock.

    fake = FakeNvml([FakeGpu(power_w=100.0)])
    monkeypatch.setitem(sys.modules, "pynvml", fake.module)
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field

import pynvml as _real

NVMLError = _real.NVMLError


class FakeClock:
    """Seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.t_s = 0.0

    def advance(self, dt_s: float) -> None:
        self.t_s += dt_s

    def __call__(self) -> float:
        return self.t_s


@dataclass
class FakeGpu:
    """One board. `arch` below Volta means no energy counter (NVML answers NotSupported)."""

    name: str = "NVIDIA A100-SXM4-40GB"
    uuid: str = "GPU-00000000-0000-0000-0000-000000000000"
    arch: int = _real.NVML_DEVICE_ARCH_AMPERE
    power_w: float = 100.0
    power_field: bool = True  # NVML_FI_DEV_POWER_INSTANT supported (R535+ drivers)
    mig_enabled: bool | None = None  # None: not MIG-capable (nvmlDeviceGetMigMode NotSupported)
    mig_uuids: list[str] = field(default_factory=list)
    lost: bool = False  # while True every query raises NVMLError_GPUIsLost
    energy_mj: float = 0.0
    _settled_s: float = 0.0

    def settle(self, now_s: float) -> None:
        """Add the energy drawn at the current power since the last settlement."""
        self.energy_mj += self.power_w * 1e3 * (now_s - self._settled_s)
        self._settled_s = now_s


@dataclass(frozen=True)
class _MigHandle:
    board: FakeGpu
    uuid: str


class FakeNvml:
    """The state behind a fake `pynvml` module: a clock, boards, and whether a driver exists."""

    def __init__(
        self,
        gpus: list[FakeGpu],
        clock: FakeClock | None = None,
        library_missing: bool = False,
        driver_not_loaded: bool = False,
    ) -> None:
        self.gpus = gpus
        self.clock = clock or FakeClock()
        self.library_missing = library_missing
        self.driver_not_loaded = driver_not_loaded
        self.initialised = 0  # nvmlInit calls minus nvmlShutdown calls
        self.module = self._build_module()

    # -- controls for tests ------------------------------------------------
    def set_power(self, gpu: FakeGpu, power_w: float) -> None:
        """Change a board's power from now on (energy so far is kept)."""
        gpu.settle(self.clock.t_s)
        gpu.power_w = power_w

    def reset_counter(self, gpu: FakeGpu) -> None:
        """The driver reloads: the board's energy counter starts again from 0."""
        gpu.settle(self.clock.t_s)
        gpu.energy_mj = 0.0

    # -- the module ----------------------------------------------------------
    def _build_module(self) -> types.ModuleType:
        module = types.ModuleType("pynvml")
        for attr in dir(_real):
            if attr.startswith(("NVML_", "NVMLError")) or attr == "c_nvmlFieldValue_t":
                setattr(module, attr, getattr(_real, attr))
        for attr in dir(self):
            if attr.startswith("nvml"):
                setattr(module, attr, getattr(self, attr))
        return module

    def _check_init(self) -> None:
        if self.initialised <= 0:
            raise NVMLError(_real.NVML_ERROR_UNINITIALIZED)

    def _board(self, handle: FakeGpu) -> FakeGpu:
        self._check_init()
        if handle.lost:
            raise NVMLError(_real.NVML_ERROR_GPU_IS_LOST)
        return handle

    def nvmlInit(self) -> None:
        if self.library_missing:
            raise NVMLError(_real.NVML_ERROR_LIBRARY_NOT_FOUND)
        if self.driver_not_loaded:
            raise NVMLError(_real.NVML_ERROR_DRIVER_NOT_LOADED)
        self.initialised += 1

    def nvmlShutdown(self) -> None:
        self._check_init()
        self.initialised -= 1

    def nvmlDeviceGetCount(self) -> int:
        self._check_init()
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeGpu:
        self._check_init()
        if not 0 <= index < len(self.gpus):
            raise NVMLError(_real.NVML_ERROR_INVALID_ARGUMENT)
        return self.gpus[index]

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> FakeGpu | _MigHandle:
        self._check_init()
        for gpu in self.gpus:
            if gpu.uuid == uuid:
                return gpu
            if uuid in gpu.mig_uuids:
                return _MigHandle(gpu, uuid)
        raise NVMLError(_real.NVML_ERROR_NOT_FOUND)

    def nvmlDeviceGetDeviceHandleFromMigDeviceHandle(self, handle: _MigHandle) -> FakeGpu:
        self._check_init()
        if not isinstance(handle, _MigHandle):
            raise NVMLError(_real.NVML_ERROR_INVALID_ARGUMENT)
        return handle.board

    def nvmlDeviceGetUUID(self, handle: FakeGpu | _MigHandle) -> str:
        self._check_init()
        return handle.uuid

    def nvmlDeviceGetName(self, handle: FakeGpu) -> str:
        return self._board(handle).name

    def nvmlDeviceGetArchitecture(self, handle: FakeGpu) -> int:
        return self._board(handle).arch

    def nvmlDeviceGetMigMode(self, handle: FakeGpu) -> list[int]:
        gpu = self._board(handle)
        if gpu.mig_enabled is None:
            raise NVMLError(_real.NVML_ERROR_NOT_SUPPORTED)
        mode = _real.NVML_DEVICE_MIG_ENABLE if gpu.mig_enabled else _real.NVML_DEVICE_MIG_DISABLE
        return [mode, mode]

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: FakeGpu) -> int:
        gpu = self._board(handle)
        if gpu.arch < _real.NVML_DEVICE_ARCH_VOLTA:
            raise NVMLError(_real.NVML_ERROR_NOT_SUPPORTED)
        gpu.settle(self.clock.t_s)
        return int(gpu.energy_mj)

    def nvmlDeviceGetPowerUsage(self, handle: FakeGpu) -> int:
        return int(self._board(handle).power_w * 1e3)

    def nvmlDeviceGetFieldValues(self, handle: FakeGpu, field_ids: list[int]):
        gpu = self._board(handle)
        values = (_real.c_nvmlFieldValue_t * len(field_ids))()
        for entry, field_id in zip(values, field_ids):
            entry.fieldId = field_id
            entry.timestamp = int(self.clock.t_s * 1e6)  # µs, as NVML gives it
            if field_id == _real.NVML_FI_DEV_POWER_INSTANT and gpu.power_field:
                entry.nvmlReturn = _real.NVML_SUCCESS
                entry.valueType = _real.NVML_VALUE_TYPE_UNSIGNED_INT
                entry.value.uiVal = int(gpu.power_w * 1e3)
            else:
                entry.nvmlReturn = _real.NVML_ERROR_NOT_SUPPORTED
        return values


def install(monkeypatch, fake: FakeNvml) -> FakeNvml:
    """Make `import pynvml` give the fake for the rest of the test."""
    monkeypatch.setitem(sys.modules, "pynvml", fake.module)
    return fake
