"""A test double of the `amdsmi` calls joulemeter makes, built from AMD's documentation.

Sources: AMD SMI Python API reference (https://rocm.docs.amd.com/projects/amdsmi/en/latest/
reference/amdsmi-py-api.html), amdsmi.h (amdsmi_status_t, amdsmi_power_info_t), and
py-interface/amdsmi_exception.py of ROCm/amdsmi. Behaviour modelled:
- amdsmi_get_energy_count gives {"energy_accumulator", "counter_resolution", "timestamp"}
  (the key is "power" before amdsmi 6.2.1): a uint64 count of `counter_resolution` µJ steps
  that moves every `counter_period_s`, and wraps at 2**64;
- amdsmi_get_power_info gives watts as ints and the string "N/A" for what a card does not
  support (current_socket_power on MI300 and newer, average_socket_power on Navi / MI200 and
  older, socket_power from ROCm 7);
- errors are AmdSmiLibraryException(err_code) with the codes of amdsmi_status_t; a lost GPU
  answers AMDSMI_STATUS_NOT_FOUND for good; amdsmi_init fails as the library does;
- `counter_scale` makes the counter wrong by a factor, as on the ROCm versions of
  ROCm/amdsmi#38 (the counter Zeus and joulemeter check against power × time);
- compute partitions (SPX, CPX, …) per GPU, and partitions without their own power reading.

    fake = FakeAmdSmi([FakeAmdGpu(power_w=300.0)])
    monkeypatch.setitem(sys.modules, "amdsmi", fake.module)
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.fake_pynvml import FakeClock

# amdsmi_status_t (amdsmi.h); the same values as Zeus's map in zeus/device/gpu/amd.py
STATUS = {"INVAL": 1, "NOT_SUPPORTED": 2, "TIMEOUT": 8, "NO_PERM": 10, "FILE_ERROR": 14,
          "INIT_ERROR": 18, "BUSY": 30, "NOT_FOUND": 31, "NOT_INIT": 32, "DRIVER_NOT_LOADED": 34}
NA = "N/A"  # what the Python interface gives for an unsupported value
#: A resolution AMD SMI reports on MI200/MI300 (amd-smi metric --energy: 15.259 uJ).
RESOLUTION_UJ = 15.259


class AmdSmiException(Exception):
    """Base exception of the amdsmi package."""


class AmdSmiLibraryException(AmdSmiException):
    """An amdsmi-lib error: `err_code` as amdsmi_status_t."""

    def __init__(self, err_code: int) -> None:
        super().__init__(err_code)
        self.err_code = abs(err_code)
        self.err_info = {v: f"AMDSMI_STATUS_{k}" for k, v in STATUS.items()}.get(self.err_code, "UNKNOWN")

    def __str__(self) -> str:
        return f"An error occured with code: {self.err_code}({self.err_info})"

    def get_error_code(self) -> int:
        return self.err_code


@dataclass
class FakeAmdGpu:
    """One GPU (or compute partition) as AMD SMI shows it."""

    name: str = "AMD Instinct MI300X"
    uuid: str = "64ff74a1-0000-1000-8042-7d2a0e1b3900"
    bdf: str = "0000:05:00.0"
    power_w: float = 300.0
    power_keys: tuple[str, ...] = ("socket_power", "current_socket_power")  # MI300, ROCm 7
    counter: bool = True
    counter_scale: float = 1.0  # 1.0: the counter agrees with power × time
    counter_period_s: float = 0.001
    resolution_uj: float = RESOLUTION_UJ
    start_ticks: int = 0
    old_api: bool = False  # amdsmi < 6.2.1: the count is under "power"
    partition: str | None = "SPX"  # None: the call is not supported
    failures: dict[str, list[int]] = field(default_factory=dict)  # call -> codes, raised once each
    broken: dict[str, int] = field(default_factory=dict)  # call -> code, raised every time
    lost: bool = False
    energy_j: float = 0.0
    last_t: float = 0.0


class FakeAmdSmi:
    """The fake library: GPUs that draw power on a shared clock, and a module exposing it."""

    def __init__(self, gpus: list[FakeAmdGpu], clock: Any = None, init_error: int | None = None,
                 missing: bool = False) -> None:
        self.gpus = gpus
        self.clock = clock or FakeClock()
        self.init_error = init_error
        self.missing = missing
        self.initialised = 0
        self.calls: list[str] = []
        self.module = self._module()

    # -- what a test does --------------------------------------------------------
    def set_power(self, gpu: FakeAmdGpu, power_w: float) -> None:
        self._advance(gpu)
        gpu.power_w = power_w

    def lose(self, gpu: FakeAmdGpu) -> None:
        gpu.lost = True

    # -- the hardware ------------------------------------------------------------
    def _advance(self, gpu: FakeAmdGpu) -> None:
        now = self.clock()
        gpu.energy_j += gpu.power_w * (now - gpu.last_t)
        gpu.last_t = now

    def _ticks(self, gpu: FakeAmdGpu) -> int:
        """The accumulator as of its last update (it steps every counter_period_s)."""
        self._advance(gpu)
        now = self.clock()
        stepped_j = gpu.energy_j - gpu.power_w * (now % gpu.counter_period_s)
        return (gpu.start_ticks + int(max(stepped_j, 0.0) * gpu.counter_scale * 1e6 / gpu.resolution_uj)) % 2**64

    def _call(self, name: str, gpu: FakeAmdGpu | None = None) -> None:
        self.calls.append(name)
        if not self.initialised:
            raise AmdSmiLibraryException(STATUS["NOT_INIT"])
        if gpu is None:
            return
        if gpu.lost:
            raise AmdSmiLibraryException(STATUS["NOT_FOUND"])
        if name in gpu.broken:
            raise AmdSmiLibraryException(gpu.broken[name])
        if gpu.failures.get(name):
            raise AmdSmiLibraryException(gpu.failures[name].pop(0))

    # -- the module --------------------------------------------------------------
    def _module(self) -> types.ModuleType:
        fake = self
        module = types.ModuleType("amdsmi")
        module.AmdSmiException = AmdSmiException  # type: ignore[attr-defined]
        module.AmdSmiLibraryException = AmdSmiLibraryException  # type: ignore[attr-defined]

        def amdsmi_init(flags: Any = None) -> None:
            fake.calls.append("amdsmi_init")
            if fake.init_error is not None:
                raise AmdSmiLibraryException(fake.init_error)
            fake.initialised += 1

        def amdsmi_shut_down() -> None:
            fake._call("amdsmi_shut_down")
            fake.initialised = 0

        def amdsmi_get_processor_handles() -> list[FakeAmdGpu]:
            fake._call("amdsmi_get_processor_handles")
            return list(fake.gpus)

        def amdsmi_get_gpu_device_uuid(gpu: FakeAmdGpu) -> str:
            fake._call("amdsmi_get_gpu_device_uuid", gpu)
            return gpu.uuid

        def amdsmi_get_gpu_device_bdf(gpu: FakeAmdGpu) -> str:
            fake._call("amdsmi_get_gpu_device_bdf", gpu)
            return gpu.bdf

        def amdsmi_get_gpu_asic_info(gpu: FakeAmdGpu) -> dict[str, Any]:
            fake._call("amdsmi_get_gpu_asic_info", gpu)
            return {"market_name": gpu.name, "vendor_id": "0x1002", "device_id": "0x74a1"}

        def amdsmi_get_gpu_compute_partition(gpu: FakeAmdGpu) -> str:
            fake._call("amdsmi_get_gpu_compute_partition", gpu)
            if gpu.partition is None:
                raise AmdSmiLibraryException(STATUS["NOT_SUPPORTED"])
            return gpu.partition

        def amdsmi_get_power_info(gpu: FakeAmdGpu) -> dict[str, Any]:
            fake._call("amdsmi_get_power_info", gpu)
            fake._advance(gpu)
            keys = ("socket_power", "current_socket_power", "average_socket_power")
            info: dict[str, Any] = {k: int(round(gpu.power_w)) if k in gpu.power_keys else NA for k in keys}
            info.update(gfx_voltage=NA, soc_voltage=NA, mem_voltage=NA, power_limit=750)
            return info

        def amdsmi_get_energy_count(gpu: FakeAmdGpu) -> dict[str, Any]:
            fake._call("amdsmi_get_energy_count", gpu)
            if not gpu.counter:
                raise AmdSmiLibraryException(STATUS["NOT_SUPPORTED"])
            key = "power" if gpu.old_api else "energy_accumulator"
            return {key: fake._ticks(gpu), "counter_resolution": gpu.resolution_uj,
                    "timestamp": int(fake.clock() * 1e9)}

        for fn in (amdsmi_init, amdsmi_shut_down, amdsmi_get_processor_handles, amdsmi_get_gpu_device_uuid,
                   amdsmi_get_gpu_device_bdf, amdsmi_get_gpu_asic_info, amdsmi_get_gpu_compute_partition,
                   amdsmi_get_power_info, amdsmi_get_energy_count):
            setattr(module, fn.__name__, fn)
        return module


def install(monkeypatch: Any, fake: FakeAmdSmi) -> FakeAmdSmi:
    """Make `import amdsmi` give the fake (or fail, for `missing`) for the rest of the test."""
    monkeypatch.setitem(sys.modules, "amdsmi", None if fake.missing else fake.module)
    for name in ("ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES"):
        monkeypatch.delenv(name, raising=False)
    return fake
