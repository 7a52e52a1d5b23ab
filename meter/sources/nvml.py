"""NVIDIA GPUs through NVML (package nvidia-ml-py, imported as `pynvml` when opened).

One domain per GPU this process can see (`gpu:<index as CUDA numbers it>`, honouring
CUDA_VISIBLE_DEVICES). Energy comes from the board's total energy counter where it
has one (Volta and newer), otherwise power readings are integrated by the meter.
Power comes from the NVML_FI_DEV_POWER_INSTANT field, or nvmlDeviceGetPowerUsage
where the driver does not support that field.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from joulemeter.meter.errors import SourceUnavailable
from joulemeter.meter.run import Domain, Provenance
from joulemeter.meter.sources.base import Reading, Source, register_source
from joulemeter.meter.units import J_PER_MILLIJOULE, W_PER_MILLIWATT

log = logging.getLogger("joulemeter.sources.nvml")

_MIG_NOTE = (
    "MIG mode is on: NVML gives power and energy for the whole board only, shared by "
    "every MIG instance on it"
)


@dataclass
class _Gpu:
    """One visible GPU and how it is read."""

    domain: Domain
    handle: Any
    has_counter: bool
    power_field: bool  # NVML_FI_DEV_POWER_INSTANT works; else nvmlDeviceGetPowerUsage


@register_source("gpu", label="NVML")
class NvmlSource(Source):
    """Every NVIDIA GPU this process can see, read through NVML."""

    name = "nvml"

    def __init__(self) -> None:
        self._nvml: Any = None
        self._gpus: list[_Gpu] = []

    def open(self) -> list[Domain]:
        pynvml = self._nvml = _load_and_init()
        try:
            visible = _visible_devices(pynvml, os.environ.get("CUDA_VISIBLE_DEVICES"))
            if not visible:
                raise SourceUnavailable(
                    self.name,
                    "CUDA_VISIBLE_DEVICES hides every GPU",
                    "unset CUDA_VISIBLE_DEVICES or list the GPUs to meter in it",
                )
            described = [_describe(pynvml, index, handle) for index, handle in visible]
            self._gpus = [gpu for gpu in described if gpu is not None]
            if not self._gpus:
                raise SourceUnavailable(
                    self.name,
                    "no visible GPU reports power or energy through NVML",
                    "this GPU model or driver does not expose power readings; "
                    "update the driver or meter another device",
                )
        except pynvml.NVMLError as exc:
            self.close()
            raise SourceUnavailable(
                self.name, f"NVML cannot describe the GPUs: {exc}", "check that nvidia-smi works"
            ) from None
        except Exception:
            self.close()
            raise
        return [g.domain for g in self._gpus]

    def read(self) -> list[Reading]:
        pynvml = self._nvml
        readings = []
        for gpu in self._gpus:
            try:
                energy_j = None
                if gpu.has_counter:
                    energy_j = pynvml.nvmlDeviceGetTotalEnergyConsumption(gpu.handle) * J_PER_MILLIJOULE
                power_w = _power_w(pynvml, gpu)
            except pynvml.NVMLError as exc:
                readings.append(Reading(gpu.domain.name, error=f"GPU lost: {exc}"))
                continue
            readings.append(Reading(gpu.domain.name, power_w=power_w, energy_j=energy_j))
        return readings

    def close(self) -> None:
        if self._nvml is None:
            return
        pynvml, self._nvml, self._gpus = self._nvml, None, []
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError as exc:
            log.debug("nvmlShutdown failed: %s", exc)


def _load_and_init() -> Any:
    """Import pynvml and initialise NVML, or say why not."""
    try:
        import pynvml
    except ImportError:
        raise SourceUnavailable(
            "nvml", "nvidia-ml-py is not installed", "pip install nvidia-ml-py"
        ) from None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError_LibraryNotFound:
        raise SourceUnavailable(
            "nvml",
            "no NVIDIA driver: the NVML library libnvidia-ml.so.1 was not found",
            "install the NVIDIA driver; in a container, run it with the NVIDIA container "
            "toolkit (docker run --gpus all)",
        ) from None
    except pynvml.NVMLError_DriverNotLoaded:
        raise SourceUnavailable(
            "nvml",
            "the NVIDIA driver is installed but not loaded",
            "load the kernel module (check with nvidia-smi) or reboot after a driver update",
        ) from None
    except pynvml.NVMLError as exc:
        raise SourceUnavailable(
            "nvml", f"NVML failed to start: {exc}", "check that nvidia-smi works"
        ) from None
    try:
        count = pynvml.nvmlDeviceGetCount()
    except pynvml.NVMLError as exc:
        pynvml.nvmlShutdown()
        raise SourceUnavailable("nvml", f"NVML cannot count GPUs: {exc}", None) from None
    if count == 0:
        pynvml.nvmlShutdown()
        raise SourceUnavailable("nvml", "no NVIDIA GPU found", None)
    return pynvml


def _visible_devices(pynvml: Any, spec: str | None) -> list[tuple[int, Any]]:
    """(visible index, NVML board handle) for each GPU CUDA_VISIBLE_DEVICES lets this process see.

    Like CUDA, entries are indices, UUIDs or unique UUID prefixes ("GPU-8932f937"), or
    MIG instances ("MIG-<uuid>" or the older "MIG-GPU-<uuid>/<gi>/<ci>"); parsing stops at
    the first entry that names no device. A MIG instance maps to its board, which is
    listed once however many of its instances are visible.
    """
    count = pynvml.nvmlDeviceGetCount()
    if spec is None:
        return [(i, pynvml.nvmlDeviceGetHandleByIndex(i)) for i in range(count)]
    boards = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
    uuids = [str(pynvml.nvmlDeviceGetUUID(h)) for h in boards]
    chosen: list[int] = []
    for entry in (e.strip() for e in spec.split(",")):
        board = _board_index(pynvml, entry, uuids)
        if board is None:
            if entry:
                log.warning(
                    "CUDA_VISIBLE_DEVICES entry %r names no GPU; ignoring it and the rest", entry
                )
            break
        if board not in chosen:
            chosen.append(board)
    return [(visible, boards[board]) for visible, board in enumerate(chosen)]


def _board_index(pynvml: Any, entry: str, uuids: list[str]) -> int | None:
    """NVML index of the board one CUDA_VISIBLE_DEVICES entry names, None if it names none."""
    if entry.isdigit():
        return int(entry) if int(entry) < len(uuids) else None
    if entry.startswith("MIG-GPU-"):  # legacy form MIG-GPU-<uuid>/<gi>/<ci>
        entry = entry[len("MIG-"):].split("/")[0]
    elif entry.startswith("MIG-"):
        try:
            instance = pynvml.nvmlDeviceGetHandleByUUID(entry)
            board = pynvml.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(instance)
            entry = str(pynvml.nvmlDeviceGetUUID(board))
        except pynvml.NVMLError:
            return None
    if entry.startswith("GPU-"):
        matches = [i for i, uuid in enumerate(uuids) if uuid.startswith(entry)]
        return matches[0] if len(matches) == 1 else None
    return None


def _describe(pynvml: Any, index: int, handle: Any) -> _Gpu | None:
    """Find out how one GPU can be read and name its domain; None if it reports neither."""
    has_counter = _has_energy_counter(pynvml, handle)
    power_field = _power_field_works(pynvml, handle)
    if not has_counter and not power_field and not _power_usage_works(pynvml, handle):
        log.warning("GPU %d reports neither energy nor power through NVML; not metered", index)
        return None
    power_how = "NVML_FI_DEV_POWER_INSTANT" if power_field else "nvmlDeviceGetPowerUsage"
    if has_counter:
        provenance = Provenance.COUNTER
        method = f"NVML total energy counter; power from {power_how}"
    else:
        provenance = Provenance.SAMPLED
        method = f"NVML power ({power_how}) integrated over time; this GPU has no energy counter"
    domain = Domain(
        name=f"gpu:{index}",
        kind="gpu",
        device=str(pynvml.nvmlDeviceGetName(handle)),
        provenance=provenance,
        method=method,
        note=_MIG_NOTE if _mig_enabled(pynvml, handle) else None,
    )
    return _Gpu(domain, handle, has_counter, power_field)


def _has_energy_counter(pynvml: Any, handle: Any) -> bool:
    """Volta or newer (or architecture unknown) and a trial read of the counter succeeds."""
    try:
        arch = pynvml.nvmlDeviceGetArchitecture(handle)
        if arch < pynvml.NVML_DEVICE_ARCH_VOLTA:
            return False
    except pynvml.NVMLError:
        pass  # old driver: let the trial read decide
    try:
        pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    except pynvml.NVMLError:
        return False
    return True


def _power_field_works(pynvml: Any, handle: Any) -> bool:
    try:
        return _power_field_w(pynvml, handle) is not None
    except pynvml.NVMLError:
        return False


def _power_usage_works(pynvml: Any, handle: Any) -> bool:
    try:
        pynvml.nvmlDeviceGetPowerUsage(handle)
    except pynvml.NVMLError:
        return False
    return True


def _mig_enabled(pynvml: Any, handle: Any) -> bool:
    try:
        current, _pending = pynvml.nvmlDeviceGetMigMode(handle)
    except pynvml.NVMLError:
        return False  # not MIG-capable
    return current == pynvml.NVML_DEVICE_MIG_ENABLE


def _power_w(pynvml: Any, gpu: _Gpu) -> float | None:
    """Board power in W; None where neither way of reading it is supported."""
    if gpu.power_field:
        power = _power_field_w(pynvml, gpu.handle)
        if power is not None:
            return power
    try:
        return pynvml.nvmlDeviceGetPowerUsage(gpu.handle) * W_PER_MILLIWATT
    except pynvml.NVMLError_NotSupported:
        return None


def _power_field_w(pynvml: Any, handle: Any) -> float | None:
    """NVML_FI_DEV_POWER_INSTANT in W, None when the driver reports it unsupported."""
    (entry,) = pynvml.nvmlDeviceGetFieldValues(handle, [pynvml.NVML_FI_DEV_POWER_INSTANT])
    if entry.nvmlReturn != pynvml.NVML_SUCCESS:
        return None
    return _field_number(pynvml, entry) * W_PER_MILLIWATT


def _field_number(pynvml: Any, entry: Any) -> float:
    """The value of an nvmlFieldValue_t, read from the union member its valueType names."""
    member = {
        pynvml.NVML_VALUE_TYPE_DOUBLE: "dVal",
        pynvml.NVML_VALUE_TYPE_UNSIGNED_INT: "uiVal",
        pynvml.NVML_VALUE_TYPE_UNSIGNED_LONG: "ulVal",
        pynvml.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG: "ullVal",
        pynvml.NVML_VALUE_TYPE_SIGNED_LONG_LONG: "sllVal",
        pynvml.NVML_VALUE_TYPE_SIGNED_INT: "siVal",
        pynvml.NVML_VALUE_TYPE_UNSIGNED_SHORT: "usVal",
    }[entry.valueType]
    return float(getattr(entry.value, member))
