"""AMD Instinct and Radeon GPUs through AMD SMI (package `amdsmi`, imported when opened).

One domain per device HIP gives this process (`gpu:<HIP index>`), matched to AMD SMI's
boards by UUID or PCI order (hip_devices). Energy comes from the accumulator of
amdsmi_get_energy_count (a uint64 count of `counter_resolution` µJ steps: AMD SMI API,
"Power Queries"), checked at open against power × time as Zeus does (zeus/device/gpu/amd.py,
AMDGPUs._init_gpus: 0.5 s, ratio within 0.1–10), because on some ROCm versions it is wrong
(ROCm/amdsmi#38); where it fails the check, or is missing, power from
amdsmi_get_power_info is integrated instead and the reason is kept in the domain's note.
Power fields (amdsmi_power_info_t, amdsmi.h): socket_power (ROCm 7), current_socket_power
(MI300 and newer), average_socket_power (Navi, MI200 and older), all in W; "N/A" where a
card lacks one.

Failures follow the NVML source: a device AMD SMI refuses is left out and named in
`unreadable()`; a transient error on a counter GPU is bridged by the counter; a GPU that
AMD SMI no longer finds (NOT_FOUND, FILE_ERROR) stays lost for the run.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import time
from pathlib import Path
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from joulemeter.meter.errors import SourceUnavailable
from joulemeter.meter.run import Domain, Provenance
from joulemeter.meter.sources.base import (
    MEASURED,
    Reading,
    Source,
    SourceStatus,
    bridged_counter_reading,
    read_devices,
    register_source,
)
from joulemeter.meter.sources.cuda_devices import synchronize_cuda
from joulemeter.meter.sources.hip_devices import AmdBoard, HipDevice, map_devices
from joulemeter.meter.units import J_PER_MICROJOULE

log = logging.getLogger("joulemeter.sources.amd")

# amdsmi_status_t (amdsmi.h; the same values as Zeus's map in zeus/device/gpu/amd.py).
_NO_PERM, _FILE_ERROR, _NOT_FOUND, _DRIVER_NOT_LOADED = 10, 14, 31, 34
_LOST = (_NOT_FOUND, _FILE_ERROR)
#: The counter check: how long, and the ratio of counter energy to power × time it accepts
#: (Zeus's bounds, zeus/device/gpu/amd.py).
CHECK_S = 0.5
_CHECK_RATIO = (0.1, 10.0)
#: The accumulator is a uint64 (amdsmi_get_energy_count, AMD SMI API "Power Queries").
_COUNTER_STEPS = 2**64
#: Power fields, best first: instantaneous before averaged (amdsmi_power_info_t, amdsmi.h).
_POWER_FIELDS = (("current_socket_power", False), ("socket_power", False), ("average_socket_power", True))
_PERMISSION_FIX = "add the user to the render and video groups (sudo usermod -aG render,video $USER), then log in again"


@dataclass
class _Gpu:
    """One metered AMD GPU, how it is read, and what happened while reading it."""

    domain: Domain
    handle: Any
    device: HipDevice
    partition: str | None
    counter: bool
    resolution_uj: float
    power_field: str | None
    check: dict[str, Any] = field(default_factory=dict)
    lost: str | None = None
    bridged: list[list[Any]] = field(default_factory=list)  # [from s, to s or None, error]


@register_source("gpu", label="AMD SMI", preference=MEASURED + 1)
class AmdSmiSource(Source):
    """The AMD GPUs this process uses, read through AMD SMI.

    `clock` times the reads (the sampler's); `sleep` waits during the counter check, which
    lasts `check_s` (0: no check, the counter is trusted).
    """

    name = "amdsmi"

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        check_s: float = CHECK_S,
    ) -> None:
        self.clock = clock
        self.sleep = sleep
        self.check_s = check_s
        self._smi: Any = None
        self._gpus: list[_Gpu] = []
        self._unreadable: list[SourceStatus] = []

    def open(self) -> list[Domain]:
        smi = self._smi = _load_and_init()
        try:
            boards = self._boards(smi)
            devices, warnings = map_devices(
                [b for b, _ in boards],
                os.environ.get("ROCR_VISIBLE_DEVICES"),
                os.environ.get("HIP_VISIBLE_DEVICES"),
                os.environ.get("CUDA_VISIBLE_DEVICES"),
            )
            for warning in warnings:
                log.warning("%s", warning)
            if not devices:
                raise SourceUnavailable(
                    self.name,
                    "ROCR_VISIBLE_DEVICES / HIP_VISIBLE_DEVICES hide every GPU" if boards
                    else "AMD SMI can read none of the GPUs",
                    "list the GPUs to meter in them, or unset them" if boards else "see the reasons given for each GPU",
                )
            handles = {b.smi_index: h for b, h in boards}
            described = [self._describe(smi, d, handles[d.board.smi_index]) for d in devices]
            self._gpus = [g for g in described if g is not None]
            self._check_counters()
            self._gpus = [g for g in self._gpus if self._usable(g)]
            if not self._gpus:
                raise SourceUnavailable(self.name, "no visible AMD GPU reports power or energy through AMD SMI",
                                        "see the reasons given for each GPU")
        except smi.AmdSmiException as exc:
            self.close()
            raise SourceUnavailable(self.name, f"AMD SMI cannot describe the GPUs: {exc}",
                                    "check that amd-smi list works") from None
        except BaseException:
            self.close()
            raise
        return [g.domain for g in self._gpus]

    def read(self) -> list[Reading]:
        return read_devices(self._gpus, self.clock(), self._read, log)

    def read_counters(self) -> list[Reading]:
        """The energy counters alone (one AMD SMI call per GPU), for window edges."""
        readings = []
        for gpu in self._gpus:
            if not gpu.counter or gpu.lost is not None or self._smi is None:
                continue
            try:
                energy_j = self._energy_j(gpu)
            except Exception:
                continue  # the next tick records what went wrong
            readings.append(Reading(gpu.domain.name, energy_j=energy_j))
        return readings

    def close(self) -> None:
        if self._smi is None:
            return
        smi, self._smi, self._gpus = self._smi, None, []
        try:
            smi.amdsmi_shut_down()
        except Exception as exc:
            log.debug("amdsmi_shut_down failed: %s", exc)

    def keep(self, names: set[str]) -> None:
        self._gpus = [g for g in self._gpus if g.domain.name in names]

    def synchronize(self) -> None:
        synchronize_cuda(g.device.hip_index for g in self._gpus)  # torch's ROCm build: torch.cuda is HIP

    def unreadable(self) -> list[SourceStatus]:
        return list(self._unreadable)

    def details(self, t0_s: float) -> dict[str, dict[str, Any]]:
        out = {}
        for gpu in self._gpus:
            board = gpu.device.board
            info: dict[str, Any] = {
                "uuid": board.uuid, "bdf": board.bdf, "amdsmi_index": board.smi_index,
                "matched_by": gpu.device.matched_by, "compute_partition": gpu.partition,
                "power_field": gpu.power_field, "counter_check": gpu.check, "lost": gpu.lost,
            }
            if gpu.bridged:
                info["errors_bridged_by_counter"] = [
                    {"from_s": round(a - t0_s, 6), "to_s": None if b is None else round(b - t0_s, 6), "error": e}
                    for a, b, e in gpu.bridged
                ]
            out[gpu.domain.name] = info
        return out

    # -- opening -------------------------------------------------------------------
    def _boards(self, smi: Any) -> list[tuple[AmdBoard, Any]]:
        boards = []
        for index, handle in enumerate(smi.amdsmi_get_processor_handles()):
            try:
                board = AmdBoard(index, str(smi.amdsmi_get_gpu_device_uuid(handle)),
                                 str(smi.amdsmi_get_gpu_device_bdf(handle)).upper(), _name(smi, handle))
            except smi.AmdSmiLibraryException as exc:
                self._refused(f"GPU with AMD SMI index {index}", exc)
                continue
            boards.append((board, handle))
        return boards

    def _refused(self, what: str, exc: Any) -> None:
        fix = _PERMISSION_FIX if _code(exc) == _NO_PERM else "check it with amd-smi list"
        self._unreadable.append(SourceStatus(
            self.name, False, reason=f"AMD SMI cannot read {what}: {exc}; it is not metered", fix=fix))

    def _describe(self, smi: Any, device: HipDevice, handle: Any) -> _Gpu | None:
        """How one device can be read; None (and a reason in `unreadable`) if it cannot be."""
        board = device.board
        what = f"gpu:{device.hip_index} ({board.name}, {board.bdf or board.uuid})"
        try:
            partition = _partition(smi, handle)
            resolution = _counter_resolution(smi, handle)
            power_field = next((f for f, _ in _POWER_FIELDS if _power_w(smi, handle, f) is not None), None)
        except smi.AmdSmiLibraryException as exc:
            self._refused(what, exc)
            return None
        if resolution is None and power_field is None:
            reason = f"{what} reports neither energy nor power through AMD SMI"
            if partition not in (None, "SPX"):
                reason += (f": in {partition} mode AMD SMI gives the socket's power through its first partition "
                           "only; meter that device, whose reading covers every partition of the socket")
            self._unreadable.append(SourceStatus(self.name, False, reason=reason))
            return None
        domain = Domain(
            name=f"gpu:{device.hip_index}", kind="gpu", device=board.name, provenance=Provenance.COUNTER,
            method="", vendor="amd",
            counter_range_j=_COUNTER_STEPS * resolution * J_PER_MICROJOULE if resolution else None,
        )
        return _Gpu(domain, handle, device, partition, resolution is not None, resolution or 0.0, power_field)

    def _check_counters(self) -> None:
        """Zeus's check, for every counter GPU at once: does the counter move as power × time?"""
        counters = [g for g in self._gpus if g.counter]
        if counters and self.check_s > 0:
            before = {id(g): self._check_read(g) for g in counters}
            t0 = self.clock()
            self.sleep(self.check_s)
            elapsed = self.clock() - t0
            for gpu in counters:
                (e0, p0), (e1, p1) = before[id(gpu)], self._check_read(gpu)
                if e0 is None or e1 is None:
                    gpu.check = {"verdict": "unchecked: the counter could not be read twice during the check"}
                    continue
                expected = None if p0 is None or p1 is None else (p0 + p1) / 2 * elapsed
                self._judge(gpu, e1 - e0, expected, elapsed)
        for gpu in self._gpus:
            gpu.domain = self._finished_domain(gpu)

    def _check_read(self, gpu: _Gpu) -> tuple[float | None, float | None]:
        """(counter J, power W) for the check; None for a value a transient error withheld."""
        smi = self._smi
        try:
            energy_j = self._energy_j(gpu)
        except smi.AmdSmiLibraryException:
            energy_j = None
        try:
            power_w = self._power(gpu)
        except smi.AmdSmiLibraryException:
            power_w = None
        return energy_j, power_w

    def _judge(self, gpu: _Gpu, counted_j: float, expected_j: float | None, elapsed_s: float) -> None:
        gpu.check = {"duration_s": round(elapsed_s, 4), "counter_j": round(counted_j, 4),
                     "power_x_time_j": None if expected_j is None else round(expected_j, 4)}
        low, high = _CHECK_RATIO
        if expected_j is None:
            gpu.check["verdict"] = "unchecked: no power reading to check the counter against"
        elif expected_j < 1e-3:
            if counted_j <= 0:
                gpu.counter = False
                gpu.check["verdict"] = "power reads 0 W and the counter does not move"
            else:
                gpu.check["verdict"] = "unchecked: power reads 0 W"
        elif low < counted_j / expected_j < high:
            gpu.check["verdict"] = "agrees"
        else:
            gpu.counter = False
            gpu.check["verdict"] = (
                f"rejected: the counter moved {counted_j:.3g} J in {elapsed_s:.2f} s while power × time was "
                f"{expected_j:.3g} J (outside {low}–{high}×; ROCm/amdsmi#38)"
            )

    def _usable(self, gpu: _Gpu) -> bool:
        """A GPU with neither a trusted counter nor power that moves is named in `unreadable`."""
        if gpu.counter or gpu.check.get("verdict") != "power reads 0 W and the counter does not move":
            return True
        board = gpu.device.board
        self._unreadable.append(SourceStatus(self.name, False, reason=(
            f"gpu:{gpu.device.hip_index} ({board.name}) reads 0 W and its energy counter does not move: "
            "on MI250/MI250X the second die of a package reports nothing, its draw is in its pair's reading; "
            "it is not metered")))
        return False

    def _finished_domain(self, gpu: _Gpu) -> Domain:
        power = gpu.power_field or "no power reading"
        notes = []
        if gpu.partition not in (None, "SPX"):
            notes.append(f"compute partition mode {gpu.partition}: power and energy are the whole socket's, "
                         "shared by every partition on it")
        if gpu.counter:
            method = f"AMD SMI energy counter (amdsmi_get_energy_count); power from {power}"
            if gpu.check.get("verdict", "").startswith("unchecked"):
                notes.append(f"energy counter {gpu.check['verdict']}")
            provenance, counter_range = Provenance.COUNTER, gpu.domain.counter_range_j
        else:
            method = f"AMD SMI power ({power}) integrated over time"
            if gpu.check.get("verdict", "").startswith("rejected"):
                notes.append(f"energy counter {gpu.check['verdict']}")
            elif gpu.resolution_uj == 0.0:
                notes.append("this GPU has no energy counter")
            provenance, counter_range = Provenance.SAMPLED, None
            if dict(_POWER_FIELDS).get(gpu.power_field or ""):
                notes.append("power is the firmware's average: window energies are smeared over its window")
        return replace(gpu.domain, provenance=provenance, method=method, counter_range_j=counter_range,
                       note="; ".join(notes) or None)

    # -- reading -------------------------------------------------------------------
    def _energy_j(self, gpu: _Gpu) -> float:
        return _ticks(self._smi.amdsmi_get_energy_count(gpu.handle)) * gpu.resolution_uj * J_PER_MICROJOULE

    def _power(self, gpu: _Gpu) -> float | None:
        return None if gpu.power_field is None else _power_w(self._smi, gpu.handle, gpu.power_field)

    def _read(self, gpu: _Gpu, now: float) -> Reading | None:
        """One reading of one GPU; None where the counter bridges a transient error."""
        name, smi = gpu.domain.name, self._smi
        if gpu.lost is not None:
            return Reading(name, error=gpu.lost)
        energy_j, power_w, error = None, None, None
        try:
            if gpu.counter:
                energy_j = self._energy_j(gpu)
            power_w = self._power(gpu)
        except smi.AmdSmiLibraryException as exc:
            if _code(exc) in _LOST:
                gpu.lost = f"GPU lost: {exc}; it is not read again in this run"
                log.warning("%s (%s): %s", name, gpu.device.board.bdf, gpu.lost)
                return Reading(name, error=gpu.lost)
            error = str(exc)
        if gpu.counter:
            return bridged_counter_reading(name, gpu.bridged, now, power_w, energy_j, error)
        if power_w is None:
            return Reading(name, error=f"power read failed: {error or gpu.power_field + ' not answered'}")
        return Reading(name, power_w=power_w)


def _code(exc: Any) -> int | None:
    get = getattr(exc, "get_error_code", None)
    return get() if callable(get) else getattr(exc, "err_code", None)


def _ticks(count: dict[str, Any]) -> int:
    """The raw accumulator: "energy_accumulator" since amdsmi 6.2.1, "power" before (Zeus, amd.py)."""
    return int(count["energy_accumulator"] if "energy_accumulator" in count else count["power"])


def _counter_resolution(smi: Any, handle: Any) -> float | None:
    """µJ per counter step, or None where the GPU has no energy counter (a VM guest, old cards)."""
    try:
        count = smi.amdsmi_get_energy_count(handle)
    except smi.AmdSmiLibraryException as exc:
        if _code(exc) == _NO_PERM:
            raise
        return None
    resolution = float(count.get("counter_resolution") or 0.0)
    return resolution if resolution > 0 else None


def _power_w(smi: Any, handle: Any, name: str) -> float | None:
    """One field of amdsmi_get_power_info in W; None for "N/A" or the UINT32_MAX of unsupported fields."""
    value = smi.amdsmi_get_power_info(handle).get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value >= 0xFFFFFFFF or value < 0:
        return None
    return float(value)


def _partition(smi: Any, handle: Any) -> str | None:
    """The compute partition mode (SPX, DPX, TPX, QPX, CPX), None where the GPU cannot partition."""
    try:
        return str(smi.amdsmi_get_gpu_compute_partition(handle)) or None
    except (smi.AmdSmiLibraryException, AttributeError):
        return None


def _name(smi: Any, handle: Any) -> str:
    try:
        return str(smi.amdsmi_get_gpu_asic_info(handle).get("market_name") or "AMD GPU")
    except smi.AmdSmiLibraryException:
        return "AMD GPU (name refused)"


def _load_and_init() -> Any:
    """Import amdsmi and initialise it, or say why not."""
    fix = ("install ROCm, then the amdsmi package of the same version (pip install joulemeter[amd], or "
           "pip install /opt/rocm/share/amd_smi)")
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # amdsmi prints when libamd_smi.so is missing
            import amdsmi
    except ImportError:
        # without the binding, the amdgpu kernel module tells whether an AMD GPU could be here
        raise SourceUnavailable("amdsmi", "the amdsmi package is not installed", fix,
                                absent=not Path("/sys/module/amdgpu").exists()) from None
    except (OSError, AttributeError, KeyError) as exc:  # no libamd_smi.so, or a binding of another ROCm
        raise SourceUnavailable("amdsmi", f"amdsmi cannot load the AMD SMI library: {exc}",
                                "install ROCm and an amdsmi package of the same version; set ROCM_PATH") from None
    try:
        amdsmi.amdsmi_init()
    except amdsmi.AmdSmiException as exc:
        code = _code(exc)
        if code == _DRIVER_NOT_LOADED:
            raise SourceUnavailable("amdsmi", "the amdgpu driver is not loaded",
                                    "load it (sudo modprobe amdgpu) or install the AMD GPU driver", absent=True) from None
        if code == _NO_PERM:
            raise SourceUnavailable("amdsmi", f"AMD SMI refused this user: {exc}", _PERMISSION_FIX) from None
        raise SourceUnavailable("amdsmi", f"AMD SMI failed to start: {exc}", "check that amd-smi list works") from None
    try:
        count = len(amdsmi.amdsmi_get_processor_handles())
    except amdsmi.AmdSmiException as exc:
        amdsmi.amdsmi_shut_down()
        raise SourceUnavailable("amdsmi", f"AMD SMI cannot list GPUs: {exc}", None) from None
    if count == 0:
        amdsmi.amdsmi_shut_down()
        raise SourceUnavailable("amdsmi", "no AMD GPU found", None, absent=True)
    return amdsmi
