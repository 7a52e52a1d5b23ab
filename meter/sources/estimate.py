"""CPU and RAM power estimated from utilisation when no counter can be read.

CPU: power = logical CPUs × min_w + busy CPUs × (max_w − min_w), the Cloud Carbon
Footprint (CCF) per-vCPU model. min/max per logical CPU are CCF's AWS averages, or,
on bare metal whose CPU model is in CodeCarbon's TDP table, TDP / threads per socket
at full load with idle at CCF's min/max ratio of that. Under a hypervisor (or where
that cannot be told) the host's thread count is unknown, so TDP cannot be shared out
and CCF is used.
Busy CPUs come from CPU-time deltas between reads: machine-wide, or of one process
and its descendants when a pid is given. Being linear in CPU time, the energy is also a
counter of CPU time (meter/cpu_time.py), exact over any window, read at its edges.

RAM: power = GB in use × CCF's W per GB (machine-wide memory not available for reuse,
or the process tree's resident memory).
"""

from __future__ import annotations

import csv
import functools
import importlib.resources
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from joulemeter.meter.cpu_time import CpuTimeEnergy
from joulemeter.meter.errors import SourceUnavailable
from joulemeter.meter.run import Domain, Provenance
from joulemeter.meter.sources.base import ESTIMATED, Reading, Source, register_source
from joulemeter.meter.tables import Citation, load_table
from joulemeter.meter.units import BYTES_PER_GB

log = logging.getLogger("joulemeter.sources.estimate")


CpuSecondsReader = Callable[[], tuple[float, float]]
"""Returns cumulative (busy CPU-seconds, capacity CPU-seconds); raises OSError if unreadable."""

BytesReader = Callable[[], float]
"""Returns bytes of memory in use now; raises OSError if unreadable."""

R = TypeVar("R")


@dataclass(frozen=True)
class PowerModelFigure:
    """A row of meter/data/cpu_power_model.csv: one figure of the CPU/RAM power model."""

    quantity: str
    value: float
    unit: str
    citation: Citation


def power_model_constants() -> dict[str, float]:
    """The per-vCPU and per-GB figures of meter/data/cpu_power_model.csv, by quantity."""
    return {f.quantity: f.value for f in load_table("joulemeter.meter", "cpu_power_model.csv", PowerModelFigure)}


@dataclass(frozen=True)
class CpuPowerModel:
    """Power of one logical CPU when idle and at full load, and the model in words."""

    min_w_per_cpu: float
    max_w_per_cpu: float
    method: str

    def power_w(self, logical_cpus: int, busy_cpus: float) -> float:
        """Every logical CPU's idle power plus the dynamic power of the busy ones."""
        busy = min(max(busy_cpus, 0.0), float(logical_cpus))
        return logical_cpus * self.min_w_per_cpu + busy * (self.max_w_per_cpu - self.min_w_per_cpu)


def cpu_power_model(
    cpu_model: str | None, threads_per_socket: int | None, virtual_machine: bool | None
) -> CpuPowerModel:
    """TDP-derived model on bare metal with a known CPU, else CCF's per-vCPU averages."""
    constants = power_model_constants()
    ccf_min, ccf_max = constants["cpu_min_w_per_vcpu"], constants["cpu_max_w_per_vcpu"]
    tdp = tdp_w(cpu_model) if cpu_model and virtual_machine is False else None
    if tdp and threads_per_socket:
        max_w = tdp / threads_per_socket
        idle_ratio = ccf_min / ccf_max
        return CpuPowerModel(
            max_w * idle_ratio,
            max_w,
            f"estimate: {cpu_model} TDP {tdp:g} W (CodeCarbon cpu_power.csv) / "
            f"{threads_per_socket} threads = {max_w:.2f} W per thread at full load, idle at "
            f"{idle_ratio:.0%} of that (CCF min/max ratio) × measured utilisation",
        )
    return CpuPowerModel(
        ccf_min,
        ccf_max,
        f"estimate: CCF per-vCPU {ccf_min:g}–{ccf_max:g} W (AWS average, SPECpower) "
        "× measured utilisation",
    )


def tdp_w(cpu_model: str) -> float | None:
    """The CPU's TDP from CodeCarbon's cpu_power.csv, matched on the cleaned model name."""
    return _tdp_table().get(_clean_cpu_name(cpu_model))


@functools.lru_cache(maxsize=1)
def _tdp_table() -> dict[str, float]:
    try:
        table = importlib.resources.files("codecarbon").joinpath("data/hardware/cpu_power.csv")
        text = table.read_text()
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        log.info("CodeCarbon's CPU TDP table is unavailable (%s); using CCF averages", exc)
        return {}
    out = {}
    for row in csv.DictReader(text.splitlines()):
        try:
            out[_clean_cpu_name(row["Name"])] = float(row["TDP"])
        except (KeyError, ValueError):
            continue
    return out


_CPU_NAME_NOISE = re.compile(
    r"\((?:R|TM)\)|@\s*[\d.]+\s*GHz|\b\d+-Core\b|\bCPU\b|\bProcessor\b|\bwith Radeon.*$",
    re.IGNORECASE,
)


def _clean_cpu_name(name: str) -> str:
    """"Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz" -> "intel xeon gold 6148"."""
    return " ".join(_CPU_NAME_NOISE.sub(" ", name).split()).lower()


# -- utilisation readers ------------------------------------------------------
#: The fields of /proc/stat's `cpu` line (man 5 proc) counted as busy and as waiting, as
#: psutil.cpu_times names them (ProcStatCpuSeconds counts the same).
_BUSY_FIELDS = ("user", "nice", "system", "irq", "softirq")
_WAITING_FIELDS = ("idle", "iowait", "steal")


def machine_cpu_seconds() -> tuple[float, float]:
    """Busy and total CPU-seconds of the whole machine, summed over logical CPUs (psutil:
    any platform)."""
    import psutil

    times = psutil.cpu_times()
    busy = sum(getattr(times, f, 0.0) for f in _BUSY_FIELDS)
    waiting = sum(getattr(times, f, 0.0) for f in _WAITING_FIELDS)
    return busy, busy + waiting


def machine_ram_used_bytes() -> float:
    """Memory in use machine-wide: total minus what is available for new processes (psutil:
    any platform)."""
    import psutil

    vm = psutil.virtual_memory()
    return float(vm.total - vm.available)


class ProcFile:
    """A /proc file kept open and read again from its start at each call: no open, no
    buffer and no parse of lines not asked for (a tick reads it after a sleep, with cold
    caches, where psutil's open-read-parse costs about 4 times as much: docs/benchmarks.md)."""

    def __init__(self, path: str, size: int) -> None:
        self._fd: int | None = os.open(path, os.O_RDONLY)
        self._size = size

    def head(self) -> bytes:
        """The first `size` bytes as they are now; OSError once closed."""
        if self._fd is None:
            raise OSError("read after close")
        return os.pread(self._fd, self._size, 0)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _clock_ticks_per_s() -> int:
    """USER_HZ, the unit of Linux's CPU-time counters (100 nearly everywhere; psutil's too)."""
    return os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class ProcStatCpuSeconds(ProcFile):
    """`machine_cpu_seconds` from the first line of /proc/stat (Linux), the file kept open."""

    def __init__(self) -> None:
        super().__init__("/proc/stat", 256)
        self._s_per_tick = 1.0 / _clock_ticks_per_s()  # /proc/stat counts USER_HZ ticks
        self()  # a file without the line fails here, at open, not at a tick

    def __call__(self) -> tuple[float, float]:
        fields = self.head().split(None, 9)  # "cpu" and its first 8 counts (Linux 2.6.11 and later)
        if fields[0] != b"cpu":
            raise OSError(f"/proc/stat does not start with the cpu line: {fields[:3]!r}")
        user, nice, system, idle, iowait, irq, softirq, steal = map(int, fields[1:9])
        busy = (user + nice + system + irq + softirq) * self._s_per_tick
        return busy, busy + (idle + iowait + steal) * self._s_per_tick


class ProcMeminfoUsed(ProcFile):
    """`machine_ram_used_bytes` from MemTotal and MemAvailable of /proc/meminfo (Linux 3.14
    and later), the file kept open."""

    def __init__(self) -> None:
        super().__init__("/proc/meminfo", 256)
        self._total_b = self._kib(b"MemTotal:") * 1024

    def __call__(self) -> float:
        return float(self._total_b - self._kib(b"MemAvailable:") * 1024)

    def _kib(self, field: bytes) -> int:
        head = self.head()
        at = head.find(field)
        if at < 0:
            raise OSError(f"/proc/meminfo has no {field.decode()} in its first lines")
        return int(head[at + len(field):head.index(b"\n", at)].split()[0])


def machine_cpu_reader() -> CpuSecondsReader:
    """`machine_cpu_seconds` through /proc/stat kept open where it opens (Linux), else psutil."""
    try:
        return ProcStatCpuSeconds()
    except (OSError, ValueError):
        return machine_cpu_seconds


def machine_ram_reader() -> BytesReader:
    """`machine_ram_used_bytes` through /proc/meminfo kept open where it opens (Linux), else psutil."""
    try:
        return ProcMeminfoUsed()
    except (OSError, ValueError):
        return machine_ram_used_bytes


def process_tree_cpu_seconds(
    pid: int, logical_cpus: int, clock: Callable[[], float] = time.monotonic
) -> CpuSecondsReader:
    """A reader of CPU-seconds used by `pid` and its descendants against wall time × CPUs.

    Children that ended count through their parent's children_* times once reaped.
    """
    tree = ProcessTree(pid)

    def read() -> tuple[float, float]:
        import psutil

        busy = 0.0
        for proc in tree.members():
            try:
                t = proc.cpu_times()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            busy += t.user + t.system + t.children_user + t.children_system
        return busy, clock() * logical_cpus

    return read


def process_tree_rss_bytes(pid: int) -> BytesReader:
    """A reader of the resident memory of `pid` and its descendants (shared pages count in each)."""
    tree = ProcessTree(pid)

    def read() -> float:
        import psutil

        total = 0.0
        for proc in tree.members():
            try:
                total += proc.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return total

    return read


class ProcessTree:
    """A process and its descendants, including those that left the tree by a double fork.

    A descendant whose parent exits is re-parented (to init, or a subreaper) and no longer
    shows under `pid`; every descendant seen once is remembered (psutil.Process, which
    tells a reused pid from the process it knew) and counted, with its own children, for
    as long as it runs. A double fork completed between two reads is only caught where the
    metering process is a child subreaper (joulemeter.meter.command does so for its command).
    """

    def __init__(self, pid: int) -> None:
        import psutil

        self.pid = pid
        try:
            self.root = psutil.Process(pid)
        except psutil.NoSuchProcess:
            raise ProcessLookupError(f"no process with pid {pid}") from None
        self._seen: dict[int, psutil.Process] = {}

    def members(self) -> list:
        """The root and every live descendant, each once."""
        import psutil

        try:
            found = {p.pid: p for p in self.root.children(recursive=True)}
        except psutil.NoSuchProcess:
            raise ProcessLookupError(f"process {self.pid} has ended") from None
        for pid, proc in list(self._seen.items()):
            if pid in found:
                continue
            if not proc.is_running():
                del self._seen[pid]
                continue
            found[pid] = proc
            try:
                found.update((c.pid, c) for c in proc.children(recursive=True))
            except psutil.NoSuchProcess:
                continue
        self._seen.update(found)
        return [self.root, *found.values()]


def _logical_cpus() -> int:
    import psutil

    return psutil.cpu_count(logical=True) or 1


# -- sources --------------------------------------------------------------------
@register_source("cpu", label="CPU estimate", preference=ESTIMATED, per_process=True)
class CpuEstimate(Source):
    """Domain `cpu`: power estimated from CPU utilisation (provenance ESTIMATED)."""

    name = "cpu-estimate"

    def __init__(
        self,
        pid: int | None = None,
        *,
        cpu_seconds: CpuSecondsReader | None = None,
        logical_cpus: int | None = None,
        model: CpuPowerModel | None = None,
    ) -> None:
        self.pid = pid
        self._cpu_seconds = cpu_seconds
        self._opened: ProcFile | None = None  # the /proc file open() opened, closed by close()
        self._logical_cpus = logical_cpus
        self._model = model
        self._last: tuple[float, float] | None = None
        self._last_power_w: float | None = None
        self._counter: CpuTimeEnergy | None = None

    def open(self) -> list[Domain]:
        if self._logical_cpus is None:
            self._logical_cpus = _logical_cpus()
        if self._model is None:
            from joulemeter.meter import hostinfo

            self._model = cpu_power_model(
                hostinfo.cpu_model(), hostinfo.threads_per_socket(), hostinfo.is_virtual_machine()
            )
        try:
            if self._cpu_seconds is None:
                self._cpu_seconds = (
                    machine_cpu_reader() if self.pid is None else process_tree_cpu_seconds(self.pid, self._logical_cpus)
                )
                self._opened = self._cpu_seconds if isinstance(self._cpu_seconds, ProcFile) else None
            self._last = self._cpu_seconds()
        except OSError as exc:
            raise SourceUnavailable(self.name, f"cannot read CPU times: {exc}", None) from None
        self._last_power_w = None
        self._counter = CpuTimeEnergy(self._model.min_w_per_cpu, self._model.max_w_per_cpu, self._cpu_seconds)
        self._counter.energy_j(*self._last)  # its origin: the CPU time at open
        scope = "machine-wide" if self.pid is None else f"process {self.pid} and its children"
        return [
            Domain(
                name="cpu",
                kind="cpu",
                device=f"{self._logical_cpus} logical CPUs",
                provenance=Provenance.ESTIMATED,
                method=f"{self._model.method} ({scope})",
            )
        ]

    def read(self) -> list[Reading]:
        """Power from utilisation since the last read, and energy as a CPU-time counter."""
        assert self._cpu_seconds is not None and self._model is not None, "read() before open()"
        assert self._counter is not None
        try:
            busy_s, capacity_s = self._cpu_seconds()
        except OSError as exc:
            return [Reading("cpu", error=f"CPU times unreadable: {exc}")]
        energy_j = self._counter.energy_j(busy_s, capacity_s)
        if self._last is None or capacity_s <= self._last[1]:  # power unknown yet, not 0 W
            return [Reading("cpu", power_w=self._last_power_w, energy_j=energy_j)]
        utilisation = (busy_s - self._last[0]) / (capacity_s - self._last[1])
        self._last = (busy_s, capacity_s)
        assert self._logical_cpus is not None
        busy_cpus = min(max(utilisation, 0.0), 1.0) * self._logical_cpus
        self._last_power_w = self._model.power_w(self._logical_cpus, busy_cpus)
        return [Reading("cpu", power_w=self._last_power_w, energy_j=energy_j)]

    def power_bounds_w(self) -> dict[str, tuple[float, float, str]]:
        """The model's idle and full-load power: CPU time is counted in clock ticks (10 ms at
        USER_HZ 100, man 5 proc), so a window of a few ticks can read busier than possible."""
        assert self._model is not None and self._logical_cpus is not None, "power_bounds_w() before open()"
        n = self._logical_cpus
        return {"cpu": (n * self._model.min_w_per_cpu, n * self._model.max_w_per_cpu,
                        f"CPU time is counted in {1000 / _clock_ticks_per_s():.0f} ms clock ticks")}

    def read_counters(self) -> list[Reading]:
        """The CPU-time energy counter alone (one /proc read machine-wide), for window edges."""
        assert self._counter is not None, "read_counters() before open()"
        try:
            return [Reading("cpu", energy_j=self._counter.read_j())]
        except OSError:
            return []  # the next tick records the failure

    def close(self) -> None:
        self._last = None
        self._cpu_seconds = _close_opened(self._opened, self._cpu_seconds)
        self._opened = None


@register_source("ram", label="RAM estimate", preference=ESTIMATED, per_process=True)
class RamEstimate(Source):
    """Domain `ram`: power estimated from memory in use (provenance ESTIMATED)."""

    name = "ram-estimate"

    def __init__(self, pid: int | None = None, *, used_bytes: BytesReader | None = None) -> None:
        self.pid = pid
        self._used_bytes = used_bytes
        self._opened: ProcFile | None = None  # the /proc file open() opened, closed by close()
        self._w_per_gb = power_model_constants()["ram_w_per_gb"]

    def open(self) -> list[Domain]:
        try:
            if self._used_bytes is None:
                self._used_bytes = machine_ram_reader() if self.pid is None else process_tree_rss_bytes(self.pid)
                self._opened = self._used_bytes if isinstance(self._used_bytes, ProcFile) else None
            self._used_bytes()
        except OSError as exc:
            raise SourceUnavailable(self.name, f"cannot read memory use: {exc}", None) from None
        scope = "machine-wide memory in use" if self.pid is None else (
            f"resident memory of process {self.pid} and its children"
        )
        return [
            Domain(
                name="ram",
                kind="ram",
                device="system memory",
                provenance=Provenance.ESTIMATED,
                method=f"estimate: CCF {self._w_per_gb:g} W per GB × {scope}",
            )
        ]

    def read(self) -> list[Reading]:
        assert self._used_bytes is not None, "read() before open()"
        try:
            used_gb = self._used_bytes() / BYTES_PER_GB
        except OSError as exc:
            return [Reading("ram", error=f"memory use unreadable: {exc}")]
        return [Reading("ram", power_w=used_gb * self._w_per_gb)]

    def close(self) -> None:
        self._used_bytes = _close_opened(self._opened, self._used_bytes)
        self._opened = None


def _close_opened(opened: ProcFile | None, reader: R) -> R | None:
    """Close the /proc file a source opened; the reader to keep: None where it was that file
    (the next open() opens a new one), else the reader the source was given."""
    if opened is None:
        return reader
    opened.close()
    return None
