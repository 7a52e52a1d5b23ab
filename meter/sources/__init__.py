"""Power sources and the one place that knows them all: discovery.

Preference, per kind of device:
- GPUs: NVML (no estimate stands in for a GPU).
- CPU: RAPL packages (or psys), else the utilisation estimate.
- Memory: RAPL dram, else the memory-in-use estimate.
With a replay trace, only the trace is played. Each fallback taken is recorded in
words, with the reason the better source could not read.

`devices` names what to meter: a domain name ("gpu:0") or a kind ("gpu", "cpu",
"dram", "ram"). "cpu" also takes RAPL's psys zone, which stands in for packages, and
"ram" also takes RAPL dram zones: both ask for "the CPU" and "the memory".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from joulemeter.meter.errors import SourceUnavailable
from joulemeter.meter.run import Domain
from joulemeter.meter.sources.base import Reading, Source, SourceStatus

__all__ = ["Discovery", "Reading", "Source", "SourceStatus", "discover", "statuses"]

_KIND_ALIASES = {"cpu": {"cpu", "psys"}, "ram": {"ram", "dram"}}


@dataclass
class Discovery:
    """The opened sources, the domains they meter, and each fallback taken and why."""

    sources: list[Source] = field(default_factory=list)
    domains: list[Domain] = field(default_factory=list)
    fallbacks: list[str] = field(default_factory=list)

    def add(self, source: Source, domains: list[Domain]) -> None:
        self.sources.append(source)
        self.domains.extend(domains)


def discover(
    devices: Sequence[str] | None = None,
    *,
    pid: int | None = None,
    replay: str | Path | None = None,
) -> Discovery:
    """Open the best source that reads each wanted device here; the caller closes them.

    `pid` makes the CPU and memory estimates follow that process and its children.
    A malformed replay trace raises ReplayTraceError rather than metering something else.
    """
    from joulemeter.meter.sources.estimate import CpuEstimate, RamEstimate
    from joulemeter.meter.sources.nvml import NvmlSource
    from joulemeter.meter.sources.rapl import RaplSource
    from joulemeter.meter.sources.replay import ReplaySource

    found = Discovery()
    if replay is not None:
        _open_filtered(found, ReplaySource(replay), devices)
        return found

    if _wants_kind(devices, "gpu"):
        _, problem = _open_filtered(found, NvmlSource(), devices)
        if problem:
            found.fallbacks.append(f"NVML unavailable: {problem}; GPUs are not metered")

    want_cpu, want_ram = _wants_kind(devices, "cpu"), _wants_kind(devices, "ram")
    if not (want_cpu or want_ram):
        return found
    _, rapl_problem = _open_filtered(found, RaplSource(), devices)
    kinds = {d.kind for d in found.domains}
    if want_cpu and not kinds & _KIND_ALIASES["cpu"]:
        why = f"RAPL unavailable: {rapl_problem}" if rapl_problem else "RAPL has no CPU zone"
        _fall_back(found, CpuEstimate(pid), devices, why, "CPU")
    if want_ram and "dram" not in kinds:
        why = f"RAPL unavailable: {rapl_problem}" if rapl_problem else "RAPL has no dram zone"
        _fall_back(found, RamEstimate(pid), devices, why, "RAM")
    return found


def statuses() -> list[SourceStatus]:
    """Whether each source reads on this machine, with its domains, or why not and the fix."""
    from joulemeter.meter.sources.estimate import CpuEstimate, RamEstimate
    from joulemeter.meter.sources.nvml import NvmlSource
    from joulemeter.meter.sources.rapl import RaplSource

    sources = (NvmlSource(), RaplSource(), CpuEstimate(), RamEstimate())
    return [source.status() for source in sources]


def _fall_back(
    found: Discovery, estimate: Source, devices: Sequence[str] | None, why: str, what: str
) -> None:
    """Open an estimate in place of a better source and record the fallback in words."""
    added, problem = _open_filtered(found, estimate, devices)
    if problem:
        found.fallbacks.append(f"{why}; {what} not metered: the estimate cannot read ({problem})")
    elif not added:
        found.fallbacks.append(
            f"{why}; {what} not metered: no estimated domain matches {list(devices or [])}"
        )
    else:
        found.fallbacks.extend(f"{why}; {what} {d.method}" for d in added)


def _open_filtered(
    found: Discovery, source: Source, devices: Sequence[str] | None
) -> tuple[list[Domain], str | None]:
    """Open `source` and keep it if it gives wanted domains: (domains kept, why it cannot read)."""
    try:
        domains = source.open()
    except SourceUnavailable as exc:
        source.close()
        return [], exc.reason
    wanted = [d for d in domains if _wanted(d, devices)]
    if not wanted:
        source.close()
        return [], None
    if len(wanted) < len(domains):
        source = _DomainFilter(source, wanted)
    found.add(source, wanted)
    return wanted, None


def _wants_kind(devices: Sequence[str] | None, kind: str) -> bool:
    """Whether any requested device is of this kind (or of a kind it stands for)."""
    if devices is None:
        return True
    kinds = _KIND_ALIASES.get(kind, {kind})
    return any(d.split(":")[0] in kinds | {kind} for d in devices)


def _wanted(domain: Domain, devices: Sequence[str] | None) -> bool:
    if devices is None:
        return True
    return any(
        d == domain.name or domain.kind in _KIND_ALIASES.get(d, {d}) for d in devices
    )


class _DomainFilter(Source):
    """A source limited to some of its domains (e.g. `gpu:0` out of four GPUs)."""

    def __init__(self, inner: Source, domains: list[Domain]) -> None:
        self.inner = inner
        self.name = inner.name
        self._domains = domains
        self._names = {d.name for d in domains}

    def open(self) -> list[Domain]:
        return self._domains

    def read(self) -> list[Reading]:
        return [r for r in self.inner.read() if r.domain in self._names]

    def close(self) -> None:
        self.inner.close()
