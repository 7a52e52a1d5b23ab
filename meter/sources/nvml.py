"""NVIDIA GPUs through NVML (package nvidia-ml-py, imported as `pynvml` when opened).

One domain per CUDA device this process uses (`gpu:<index as CUDA numbers it here>`),
matched to its board by UUID or PCI bus id (cuda_devices). Energy comes from the board's
total energy counter where it has one (Volta and newer), else power is integrated by
the meter. Power, read apart from the counter so one failing call never discards the
other: NVML_FI_DEV_POWER_INSTANT, else nvmlDeviceGetPowerUsage (a 1 s average on Ampere
except GA100, and newer). Facts and their sources: docs/measuring.md, "NVML".

Failures: a board NVML refuses (no permission, cgroups) is left out alone and named in
`unreadable()`; a transient error on a counter GPU is bridged by the counter, which keeps
counting; a board fallen off the bus (GPU_IS_LOST, RESET_REQUIRED) stays lost.
"""

from __future__ import annotations

import ctypes
import logging
import os
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from joulemeter.meter.errors import SourceUnavailable
from joulemeter.meter.run import Domain, Provenance
from joulemeter.meter.sources.base import (
    Reading,
    Source,
    SourceStatus,
    bridged_counter_reading,
    read_devices,
    register_source,
)
from joulemeter.meter.sources.cuda_devices import (
    Board,
    CudaDevice,
    map_devices,
    synchronize_cuda,
    torch_cuda_uuids,
)
from joulemeter.meter.units import J_PER_MILLIJOULE, W_PER_MILLIWATT

log = logging.getLogger("joulemeter.sources.nvml")

_MIG_NOTE = (
    "MIG mode is on: NVML gives power and energy for the whole board only, shared by "
    "every MIG instance on it"
)
_MODULE_NOTE = (
    "Grace superchip: NVML's reading covers the whole module (GPU, Grace CPU and memory), "
    "so CPU and RAM are not metered on top"
)
_AVERAGED_NOTE = (
    "power is a 1 s average (nvmlDeviceGetPowerUsage) and this GPU has no energy counter: "
    "window energies are smeared over about 1 s"
)
#: Names of Grace superchips, whose NVML counter and power cover the module (nvml.h,
#: NVML_POWER_SCOPE_MODULE; https://docs.nvidia.com/deploy/nvml-api/).
_SUPERCHIPS = ("GH200", "GB200", "GB300")
#: Boards with the GA100 chip: on Ampere only they give instantaneous nvmlDeviceGetPowerUsage
#: (docs/measuring.md, NVML table).
_GA100 = ("A100", "A30")
#: nvmlValueType_t (nvml.h) as C types, so field values decode on every binding version,
#: including those without NVML_VALUE_TYPE_UNSIGNED_SHORT or the `usVal` member (< 12.570).
_VALUE_CTYPES = {0: ctypes.c_double, 1: ctypes.c_uint, 2: ctypes.c_ulong, 3: ctypes.c_ulonglong,
                 4: ctypes.c_longlong, 5: ctypes.c_int, 6: ctypes.c_ushort}
#: How often the users of a metered GPU are listed (each listing costs a few NVML calls).
_PROCESS_POLL_S = 1.0
#: Measuring the counter's update period: poll this often, until this many updates or the deadline.
_PROBE_POLL_S = 0.002
_PROBE_UPDATES = 6
_PROBE_DEADLINE_S = 2.0


@dataclass(frozen=True)
class _PowerWay:
    """One way of reading power: a field at a scope, or nvmlDeviceGetPowerUsage (field None)."""

    label: str
    field: tuple[int, int] | None
    averaged: bool


@dataclass
class _Usage:
    """Who else uses a GPU, and this process tree's share of its SM utilisation samples."""

    next_poll_s: float = 0.0
    others: dict[int, int] = field(default_factory=dict)  # pid -> most GPU memory seen (bytes)
    ours_seen: bool = False
    sm_ours: float = 0.0
    sm_all: float = 0.0
    last_sample_us: int = 0
    utilisation: bool = True  # nvmlDeviceGetProcessUtilization answers here


@dataclass
class _Gpu:
    """One metered CUDA device, how it is read, and what happened while reading it."""

    domain: Domain
    handle: Any
    device: CudaDevice
    counter: bool
    power: _PowerWay | None  # the best way; None where only the counter reads
    fallback: _PowerWay | None  # used for a read where `power` fails
    module: bool
    lost: str | None = None
    methods: list[tuple[float, str]] = field(default_factory=list)  # (monotonic s, power way)
    bridged: list[list[Any]] = field(default_factory=list)  # [from s, to s or None, error]
    counter_update_s: float | None = None
    usage: _Usage = field(default_factory=_Usage)


@register_source("gpu", label="NVML", per_process=True)
class NvmlSource(Source):
    """The NVIDIA GPUs this process uses, read through NVML.

    `pid`: whose GPU use is ours (None: this process tree); `clock`: the time of reads, as the
    sampler's; `measure_updates`: measure each counter's update period in the background.
    """

    name = "nvml"

    def __init__(
        self, pid: int | None = None, clock: Callable[[], float] = time.monotonic, measure_updates: bool = True
    ) -> None:
        self.pid = pid
        self.clock = clock
        self.measure_updates = measure_updates
        self._nvml: Any = None
        self._gpus: list[_Gpu] = []
        self._unreadable: list[SourceStatus] = []
        self._warnings: list[str] = []
        self._probe: threading.Thread | None = None
        self._closing = threading.Event()

    def open(self) -> list[Domain]:
        pynvml = self._nvml = _load_and_init()
        self._closing.clear()
        try:
            boards, handles = self._boards(pynvml)
            devices, self._warnings = map_devices(
                boards,
                os.environ.get("CUDA_VISIBLE_DEVICES"),
                os.environ.get("CUDA_DEVICE_ORDER"),
                torch_cuda_uuids(),
            )
            for warning in self._warnings:
                log.warning("%s", warning)
            if not devices:
                raise SourceUnavailable(
                    self.name,
                    "CUDA_VISIBLE_DEVICES hides every GPU" if boards else "NVML can read none of the GPUs",
                    "unset CUDA_VISIBLE_DEVICES or list the GPUs to meter in it" if boards
                    else "see the reasons given for each GPU",
                )
            for device in devices:
                gpu = self._describe(pynvml, device, handles[device.board.nvml_index])
                if gpu is not None:
                    self._gpus.append(gpu)
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
        except BaseException:
            self.close()
            raise
        self._start_probe()
        return [g.domain for g in self._gpus]

    def read(self) -> list[Reading]:
        now = self.clock()
        readings = read_devices(self._gpus, now, self._read, log)
        for gpu in self._gpus:  # after every GPU's reading, so that they are read close together
            if gpu.lost is None and now >= gpu.usage.next_poll_s:
                self._poll_usage(gpu, now)
        return readings

    def read_counters(self) -> list[Reading]:
        """The energy counters alone (one NVML call per GPU), for window edges; a GPU whose
        counter fails here is left to the next tick, which records what went wrong."""
        pynvml = self._nvml
        readings = []
        for gpu in self._gpus:
            if not gpu.counter or gpu.lost is not None or pynvml is None:
                continue
            try:
                energy_j = pynvml.nvmlDeviceGetTotalEnergyConsumption(gpu.handle) * J_PER_MILLIJOULE
            except Exception:
                continue
            readings.append(Reading(gpu.domain.name, energy_j=energy_j))
        return readings

    def close(self) -> None:
        self._closing.set()
        probe, self._probe = self._probe, None
        if probe is not None:
            probe.join()
        if self._nvml is None:
            return
        pynvml, self._nvml, self._gpus = self._nvml, None, []
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError as exc:
            log.debug("nvmlShutdown failed: %s", exc)

    def keep(self, names: set[str]) -> None:
        self._gpus = [g for g in self._gpus if g.domain.name in names]

    def synchronize(self) -> None:
        synchronize_cuda(g.device.cuda_index for g in self._gpus)

    def unreadable(self) -> list[SourceStatus]:
        return list(self._unreadable)

    def covers(self) -> frozenset[str]:
        return frozenset({"cpu", "ram"}) if any(g.module for g in self._gpus) else frozenset()

    def counter_update_s(self) -> dict[str, float]:
        return {g.domain.name: g.counter_update_s for g in self._gpus if g.counter_update_s is not None}

    def details(self, t0_s: float) -> dict[str, dict[str, Any]]:
        return {g.domain.name: _details(g, t0_s) for g in self._gpus}

    # -- opening -------------------------------------------------------------------
    def _boards(self, pynvml: Any) -> tuple[list[Board], dict[int, Any]]:
        """Every board NVML can name; the ones it refuses go to `unreadable` with the reason."""
        boards, handles = [], {}
        for index in range(pynvml.nvmlDeviceGetCount()):
            try:
                handle = pynvml.nvmlDeviceGetHandleByIndex(index)
                board = Board(
                    nvml_index=index,
                    uuid=str(pynvml.nvmlDeviceGetUUID(handle)),
                    pci_bus_id=_pci_bus_id(pynvml, handle),
                    name=_name(pynvml, handle),
                    mig_uuids=_mig_uuids(pynvml, handle),
                )
            except pynvml.NVMLError as exc:
                self._refused(f"GPU with NVML index {index}", exc)
                continue
            boards.append(board)
            handles[index] = handle
        return boards, handles

    def _refused(self, what: str, exc: BaseException) -> None:
        code = getattr(exc, "value", None)
        pynvml = self._nvml
        if code in (pynvml.NVML_ERROR_NO_PERMISSION, pynvml.NVML_ERROR_OPERATING_SYSTEM):
            fix = ("give this user access to /dev/nvidia*; in a container, pass the GPU in "
                   "(docker run --gpus) and check the cgroup device rules")
        else:
            fix = "check it with nvidia-smi"
        self._unreadable.append(
            SourceStatus(self.name, False, reason=f"NVML cannot read {what}: {exc}; it is not metered", fix=fix)
        )

    def _describe(self, pynvml: Any, device: CudaDevice, handle: Any) -> _Gpu | None:
        """How one device can be read and its domain; None (and a reason) if it cannot be."""
        board = device.board
        what = f"gpu:{device.cuda_index} ({board.name}, {board.uuid})"
        try:
            counter = _has_energy_counter(pynvml, handle)
            ways = [w for w in _power_ways(pynvml, handle, board.name) if _power_way_works(pynvml, handle, w)]
            mig = _mig_enabled(pynvml, handle)
        except pynvml.NVMLError as exc:
            self._refused(what, exc)
            return None
        except Exception as exc:
            self._unreadable.append(SourceStatus(
                self.name, False, reason=f"describing {what} failed: {type(exc).__name__}: {exc}"))
            return None
        if not counter and not ways:
            self._unreadable.append(SourceStatus(
                self.name, False, reason=f"{what} reports neither energy nor power through NVML"))
            return None
        power = ways[0] if ways else None
        fallback = next((w for w in ways[1:] if w.field is None), None)
        module = any(chip in board.name for chip in _SUPERCHIPS) or (
            power is not None and power.field is not None and power.field[1] == pynvml.NVML_POWER_SCOPE_MODULE
        )
        power_how = power.label if power else "no power reading"
        scope = " for the whole module (GPU + CPU + memory)" if module else ""
        if counter:
            provenance = Provenance.COUNTER
            method = f"NVML total energy counter{scope}; power from {power_how}"
        else:
            provenance = Provenance.SAMPLED
            method = f"NVML power ({power_how}){scope} integrated over time; this GPU has no energy counter"
        notes = [n for n, on in ((_MIG_NOTE, mig), (_MODULE_NOTE, module),
                                 (_AVERAGED_NOTE, not counter and power is not None and power.averaged)) if on]
        domain = Domain(
            name=f"gpu:{device.cuda_index}",
            kind="gpu",
            device=board.name,
            provenance=provenance,
            method=method,
            note="; ".join(notes) or None,
            vendor="nvidia",
        )
        return _Gpu(domain, handle, device, counter, power, fallback, module)

    # -- reading -------------------------------------------------------------------
    def _read(self, gpu: _Gpu, now: float) -> Reading | None:
        """One reading of one GPU; None where the counter bridges a transient error."""
        name = gpu.domain.name
        if gpu.lost is not None:
            return Reading(name, error=gpu.lost)
        pynvml = self._nvml
        energy_j, counter_error = None, None
        try:
            if gpu.counter:
                energy_j = pynvml.nvmlDeviceGetTotalEnergyConsumption(gpu.handle) * J_PER_MILLIJOULE
        except pynvml.NVMLError as exc:
            if self._lost(gpu, exc):
                return Reading(name, error=gpu.lost)
            counter_error = str(exc)
        power_w, way, power_error = self._power(gpu)
        if gpu.lost is not None:
            return Reading(name, error=gpu.lost)
        if way is not None and (not gpu.methods or gpu.methods[-1][1] != way.label):
            if gpu.methods:
                log.warning("%s: power now read from %s", name, way.label)
            gpu.methods.append((now, way.label))
        if gpu.counter:
            return bridged_counter_reading(name, gpu.bridged, now, power_w, energy_j, counter_error)
        if power_w is None:
            return Reading(name, error=f"power read failed: {power_error}")
        return Reading(name, power_w=power_w)

    def _power(self, gpu: _Gpu) -> tuple[float | None, _PowerWay | None, str | None]:
        """(W, the way read, the last error) trying the best way, then the fallback."""
        error = None
        for way in (gpu.power, gpu.fallback):
            if way is None:
                continue
            try:
                value = _read_power_w(self._nvml, gpu.handle, way)
            except self._nvml.NVMLError as exc:
                if self._lost(gpu, exc):
                    return None, None, str(exc)
                error = str(exc)
                continue
            if value is not None:
                return value, way, None
            error = f"{way.label} not answered"
        return None, None, error

    def _lost(self, gpu: _Gpu, exc: Any) -> bool:
        """Mark the GPU lost for good if `exc` says it fell off the bus or needs a reset."""
        pynvml = self._nvml
        if getattr(exc, "value", None) not in (pynvml.NVML_ERROR_GPU_IS_LOST, pynvml.NVML_ERROR_RESET_REQUIRED):
            return False
        gpu.lost = f"GPU lost: {exc}; it is not read again in this run (a reset gives it a new handle)"
        log.warning("%s (%s): %s", gpu.domain.name, gpu.device.board.uuid, gpu.lost)
        return True

    def _poll_usage(self, gpu: _Gpu, now: float) -> None:
        """Note other processes on the GPU and this process tree's share of its SM use."""
        usage, pynvml = gpu.usage, self._nvml
        usage.next_poll_s = now + _PROCESS_POLL_S
        ours = _process_tree(self.pid)
        try:
            for proc in pynvml.nvmlDeviceGetComputeRunningProcesses(gpu.handle):
                if proc.pid in ours:
                    usage.ours_seen = True
                else:
                    usage.others[proc.pid] = max(usage.others.get(proc.pid, 0), int(proc.usedGpuMemory or 0))
        except pynvml.NVMLError as exc:
            log.debug("%s: no process list: %s", gpu.domain.name, exc)
            return
        if not usage.utilisation:
            return
        try:
            samples = pynvml.nvmlDeviceGetProcessUtilization(gpu.handle, usage.last_sample_us)
        except pynvml.NVMLError as exc:
            if getattr(exc, "value", None) != pynvml.NVML_ERROR_NOT_FOUND:  # NOT_FOUND: no new sample
                usage.utilisation = False
            return
        for sample in samples:
            usage.sm_all += sample.smUtil
            usage.sm_ours += sample.smUtil if sample.pid in ours else 0
            usage.last_sample_us = max(usage.last_sample_us, int(sample.timeStamp))

    # -- the counter's update period ------------------------------------------------
    def _start_probe(self) -> None:
        if self.measure_updates and any(g.counter for g in self._gpus):
            self._probe = threading.Thread(target=self._measure_updates, name="joulemeter-nvml-probe", daemon=True)
            self._probe.start()

    def _measure_updates(self) -> None:
        """Measure each counter's update period in the background, as Zeus measures its power's."""
        for gpu in [g for g in self._gpus if g.counter]:
            def stop(wait_s: float, gpu: _Gpu = gpu) -> bool:
                return self._closing.wait(wait_s) or gpu not in self._gpus

            if stop(0.0):
                continue
            try:
                gpu.counter_update_s = counter_update_period_s(self._nvml, gpu.handle, wait=stop)
            except Exception as exc:  # the reads report errors; the probe just gives up
                log.debug("%s: counter update period not measured: %s", gpu.domain.name, exc)


def _sleep(wait_s: float) -> bool:
    time.sleep(wait_s)
    return False


def counter_update_period_s(
    pynvml: Any, handle: Any, deadline_s: float = _PROBE_DEADLINE_S, wait: Callable[[float], bool] = _sleep
) -> float | None:
    """The update period of one GPU's energy counter (s): the median time between changes
    while polling it; None if it did not move often enough before the deadline. `wait`
    pauses between polls and returns True to give up."""
    seen: list[float] = []
    last = pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline and len(seen) <= _PROBE_UPDATES:
        value = pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
        if value != last:
            seen.append(time.monotonic())
            last = value
        if wait(_PROBE_POLL_S):
            return None
    return statistics.median(b - a for a, b in zip(seen, seen[1:])) if len(seen) > 2 else None


def _details(gpu: _Gpu, t0_s: float) -> dict[str, Any]:
    """What the run should keep about one GPU: identity, ways read, errors bridged, sharing."""
    board, usage = gpu.device.board, gpu.usage
    out: dict[str, Any] = {
        "uuid": board.uuid,
        "pci_bus_id": board.pci_bus_id,
        "nvml_index": board.nvml_index,
        "mig_uuid": gpu.device.mig_uuid,
        "matched_by": gpu.device.matched_by,
        "scope": "module" if gpu.module else "gpu",
        "power_methods": [{"from_s": round(max(t - t0_s, 0.0), 6), "method": m} for t, m in gpu.methods],
        "counter_update_s": gpu.counter_update_s,
        "lost": gpu.lost,
    }
    if gpu.bridged:
        out["errors_bridged_by_counter"] = [
            {"from_s": round(a - t0_s, 6), "to_s": None if b is None else round(b - t0_s, 6), "error": e}
            for a, b, e in gpu.bridged
        ]
    if usage.others:
        out["other_processes"] = [{"pid": pid, "gpu_memory_b": mem} for pid, mem in sorted(usage.others.items())]
        out["shared"] = True
        if not usage.ours_seen:
            out["shared_note"] = ("none of the listed processes is this one: in a container NVML "
                                  "gives the host's pids")
    if usage.sm_all > 0:
        out["attributed_share"] = {
            "value": round(usage.sm_ours / usage.sm_all, 4),
            "label": "estimate: this process tree's share of the GPU's SM utilisation samples "
                     "(nvmlDeviceGetProcessUtilization), not a measurement of its energy",
        }
    return out


def _process_tree(pid: int | None) -> set[int]:
    """`pid` (None: this process) and its descendants."""
    import psutil

    root = os.getpid() if pid is None else pid
    try:
        return {root, *(p.pid for p in psutil.Process(root).children(recursive=True))}
    except psutil.Error:
        return {root}


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


def _name(pynvml: Any, handle: Any) -> str:
    """The board's model name; a board that refuses it keeps its place in CUDA's order."""
    try:
        return str(pynvml.nvmlDeviceGetName(handle))
    except pynvml.NVMLError:
        return "NVIDIA GPU (name refused)"


def _pci_bus_id(pynvml: Any, handle: Any) -> str:
    try:
        bus_id = pynvml.nvmlDeviceGetPciInfo(handle).busId
    except pynvml.NVMLError:
        return ""
    return (bus_id.decode() if isinstance(bus_id, bytes) else str(bus_id)).upper()


def _mig_uuids(pynvml: Any, handle: Any) -> tuple[str, ...]:
    """UUIDs of the board's MIG devices, where MIG is on."""
    if not _mig_enabled(pynvml, handle):
        return ()
    uuids = []
    for index in range(pynvml.nvmlDeviceGetMaxMigDeviceCount(handle)):
        try:
            uuids.append(str(pynvml.nvmlDeviceGetUUID(pynvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, index))))
        except pynvml.NVMLError:
            continue  # that slot holds no MIG device
    return tuple(uuids)


def _has_energy_counter(pynvml: Any, handle: Any) -> bool:
    """Volta or newer (or architecture unknown) and a trial read of the counter succeeds."""
    try:
        if pynvml.nvmlDeviceGetArchitecture(handle) < pynvml.NVML_DEVICE_ARCH_VOLTA:
            return False
    except pynvml.NVMLError:
        pass  # old driver: let the trial read decide
    try:
        pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    except pynvml.NVMLError as exc:
        _raise_if_refused(pynvml, exc)
        return False
    return True


def _power_ways(pynvml: Any, handle: Any, name: str) -> list[_PowerWay]:
    """The ways of reading power to try, best first: instant at GPU then module scope, then
    nvmlDeviceGetPowerUsage (a 1 s average on Ampere except GA100, and newer)."""
    try:
        arch = pynvml.nvmlDeviceGetArchitecture(handle)
    except pynvml.NVMLError:
        arch = None
    ampere = pynvml.NVML_DEVICE_ARCH_AMPERE
    averaged = arch is None or arch > ampere or (arch == ampere and not any(m in name for m in _GA100))
    usage_label = "nvmlDeviceGetPowerUsage" + (
        " (1 s average)" if arch is not None and averaged else " (may be a 1 s average)" if averaged else ""
    )
    instant = pynvml.NVML_FI_DEV_POWER_INSTANT
    return [
        _PowerWay("NVML_FI_DEV_POWER_INSTANT", (instant, pynvml.NVML_POWER_SCOPE_GPU), False),
        _PowerWay("NVML_FI_DEV_POWER_INSTANT (module scope)", (instant, pynvml.NVML_POWER_SCOPE_MODULE), False),
        _PowerWay(usage_label, None, averaged),
    ]


def _power_way_works(pynvml: Any, handle: Any, way: _PowerWay) -> bool:
    try:
        return _read_power_w(pynvml, handle, way) is not None
    except pynvml.NVMLError as exc:
        _raise_if_refused(pynvml, exc)
        return False


def _raise_if_refused(pynvml: Any, exc: Any) -> None:
    """Errors that mean "not for you" rather than "not supported" stop describing the GPU."""
    refused = (pynvml.NVML_ERROR_NO_PERMISSION, pynvml.NVML_ERROR_OPERATING_SYSTEM,
               pynvml.NVML_ERROR_GPU_IS_LOST, pynvml.NVML_ERROR_RESET_REQUIRED)
    if getattr(exc, "value", None) in refused:
        raise exc


def _mig_enabled(pynvml: Any, handle: Any) -> bool:
    try:
        current, _pending = pynvml.nvmlDeviceGetMigMode(handle)
    except pynvml.NVMLError:
        return False  # not MIG-capable
    return current == pynvml.NVML_DEVICE_MIG_ENABLE


def _read_power_w(pynvml: Any, handle: Any, way: _PowerWay) -> float | None:
    """Power in W read one way; None when the driver answers that it does not support it."""
    if way.field is None:
        try:
            return pynvml.nvmlDeviceGetPowerUsage(handle) * W_PER_MILLIWATT
        except pynvml.NVMLError as exc:
            if getattr(exc, "value", None) == pynvml.NVML_ERROR_NOT_SUPPORTED:
                return None
            raise
    (entry,) = pynvml.nvmlDeviceGetFieldValues(handle, [way.field])
    if entry.nvmlReturn != pynvml.NVML_SUCCESS:
        if entry.nvmlReturn == pynvml.NVML_ERROR_NOT_SUPPORTED:
            return None
        raise pynvml.NVMLError(entry.nvmlReturn)
    return _field_number(entry) * W_PER_MILLIWATT


def _field_number(entry: Any) -> float:
    """The value of an nvmlFieldValue_t, read from its union as the type its valueType names."""
    ctype = _VALUE_CTYPES.get(int(entry.valueType))
    if ctype is None:
        raise ValueError(f"NVML field value of unknown type {entry.valueType}")
    return float(ctype.from_buffer_copy(bytes(memoryview(entry.value))[: ctypes.sizeof(ctype)]).value)
