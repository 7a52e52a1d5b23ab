"""Power sources and the one place that knows them all: discovery.

Each source module registers its class for the kinds it meters (`register_source`);
discovery imports every module of this package and, per kind, opens the registered
sources in order of preference until one reads:
- GPUs and other accelerators: NVML, then AMD SMI, Intel GPU hwmon, Gaudi hl-smi, Jetson
  rails, Apple Silicon (no estimate stands in for an accelerator). Each has a `vendor`.
- CPU: RAPL packages (or psys), then Jetson's CPU rail, Apple Silicon's CPU, else the
  utilisation estimate.
- Memory: RAPL dram, then Apple Silicon's DRAM, else the memory-in-use estimate.
With a replay trace, only the trace is played. Each fallback taken is recorded in
words, with the reason the better source could not read.

`devices` names what to meter: a domain name ("gpu:0") or a kind ("gpu", "cpu",
"dram", "ram", "ane"). "gpu" also takes Apple's Neural Engine (kind "ane"), an
accelerator beside the GPU; "cpu" also takes RAPL's psys zone, which stands in for
packages, and "ram" also takes dram zones: each asks for "the accelerators", "the CPU"
and "the memory".
"""

from __future__ import annotations

import importlib
import logging
import os
import pkgutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from joulemeter.meter.errors import JoulemeterError, SourceUnavailable
from joulemeter.meter.run import Domain
from joulemeter.meter.sources.base import (
    ESTIMATED,
    MEASURED,
    Reading,
    Source,
    SourceEntry,
    SourceStatus,
    register_source,
    registered,
)

log = logging.getLogger("joulemeter.sources")

__all__ = [
    "ESTIMATED",
    "MEASURED",
    "Discovery",
    "Reading",
    "Source",
    "SourceEntry",
    "SourceStatus",
    "discover",
    "register_source",
    "registry",
    "statuses",
]


@dataclass(frozen=True)
class _Kind:
    """How fallback notes speak of a kind, and the domain kinds that meter it."""

    domain_kinds: frozenset[str]
    words: str  # "RAM" in "RAPL has no dram zone; RAM estimate: …"
    missing: str  # what a source without it lacks: "RAPL has no CPU zone"
    unmetered: str  # "GPUs are not metered"


_KINDS = {
    "gpu": _Kind(frozenset({"gpu", "ane"}), "GPU", "GPU asked for", "GPUs are not metered"),
    "cpu": _Kind(frozenset({"cpu", "psys"}), "CPU", "CPU zone", "CPU not metered"),
    "ram": _Kind(frozenset({"ram", "dram"}), "RAM", "dram zone", "RAM not metered"),
}


def _kind(name: str) -> _Kind:
    """The words for a kind; a kind without an entry above is spoken of by its name."""
    return _KINDS.get(name) or _Kind(frozenset({name}), name, name, f"{name} not metered")


@dataclass
class Discovery:
    """The opened sources, the domains they meter, and each fallback taken and why."""

    sources: list[Source] = field(default_factory=list)
    domains: list[Domain] = field(default_factory=list)
    fallbacks: list[str] = field(default_factory=list)
    owned: list[tuple[Source, list[Domain]]] = field(default_factory=list, repr=False)

    def add(self, source: Source, domains: list[Domain]) -> None:
        self.sources.append(source)
        self.domains.extend(domains)
        self.owned.append((source, domains))


def registry() -> dict[str, list[SourceEntry]]:
    """Each kind (GPU, CPU, memory, then any other) with its sources, best first.

    Imports every module of this package first, so each registers its sources.
    """
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    entries = sorted(registered(), key=lambda e: (e.preference, e.label))
    order = list(_KINDS)
    kinds = sorted(
        {k for e in entries for k in e.kinds},
        key=lambda k: (order.index(k) if k in order else len(order), k),
    )
    return {k: [e for e in entries if k in e.kinds] for k in kinds}


def discover(
    devices: Sequence[str] | None = None,
    *,
    pid: int | None = None,
    replay: str | os.PathLike[str] | None = None,
) -> Discovery:
    """Open the best source that reads each wanted device here; the caller closes them.

    `pid` makes the CPU and memory estimates follow that process and its children.
    A malformed replay trace raises ReplayTraceError rather than metering something else.
    """
    found = Discovery()
    if replay is not None:
        from joulemeter.meter.sources.replay import ReplaySource

        _open_filtered(found, ReplaySource(replay), devices)
        return found
    tried: dict[SourceEntry, tuple[list[Domain], str | None]] = {}
    for kind, entries in registry().items():
        if not _wants_kind(devices, kind):
            continue
        covering = [d.name for s, ds in found.owned if kind in s.covers() for d in ds]
        if covering:
            found.fallbacks.append(
                f"{_kind(kind).words} not metered on its own: {', '.join(covering)} already "
                "include it (module-level reading), so adding it would count it twice"
            )
            continue
        _meter_kind(found, kind, entries, tried, devices, pid)
    return found


def statuses() -> list[SourceStatus]:
    """Whether each source reads on this machine, with its domains, or why not and the fix."""
    entries = dict.fromkeys(e for by_kind in registry().values() for e in by_kind)
    return [status for entry in entries for status in entry.make(None).statuses()]


def _meter_kind(
    found: Discovery,
    kind: str,
    entries: list[SourceEntry],
    tried: dict[SourceEntry, tuple[list[Domain], str | None]],
    devices: Sequence[str] | None,
    pid: int | None,
) -> None:
    """Open `kind`'s sources best first until one meters it; note each fallback in words.

    A source of several kinds (RAPL: CPU and memory) is opened once and kept for all.
    """
    words = _kind(kind)
    reasons: list[str] = []  # why each better source could not meter the kind
    for entry in entries:
        if entry not in tried:
            tried[entry] = _open_filtered(found, entry.make(pid), devices)
        domains, problem = tried[entry]
        added = [d for d in domains if d.kind in words.domain_kinds]
        if added:
            if reasons:
                why = "; ".join(reasons)
                found.fallbacks.extend(f"{why}; {words.words} {d.method}" for d in added)
            return
        if not entry.estimated:
            if problem is _ABSENT:
                continue  # nothing of it on this machine: `devices` says so, the notes need not
            reasons.append(
                f"{entry.label} unavailable: {problem}" if problem else f"{entry.label} has no {words.missing}"
            )
        elif problem:
            reasons.append(f"{words.unmetered}: the estimate cannot read ({problem})")
        else:
            reasons.append(f"{words.unmetered}: no estimated domain matches {list(devices or [])}")
    if not any(e.estimated for e in entries):
        reasons.append(words.unmetered)
    found.fallbacks.append("; ".join(reasons))


#: What `_open_filtered` gives as the reason of a source whose hardware is not on this machine.
_ABSENT = "not on this machine"


def _open_filtered(
    found: Discovery, source: Source, devices: Sequence[str] | None
) -> tuple[list[Domain], str | None]:
    """Open `source` and keep it if it gives wanted domains: (domains kept, why it cannot read)."""
    try:
        domains = source.open()
    except SourceUnavailable as exc:
        _close_quietly(source)
        return [], _ABSENT if exc.absent else exc.reason
    except JoulemeterError:  # bad input (a malformed replay trace): the caller must hear it
        _close_quietly(source)
        raise
    except Exception as exc:  # a source's own bug (an old binding, …) is a fallback, never a crash
        log.warning("opening %s failed unexpectedly", source.name, exc_info=True)
        _close_quietly(source)
        return [], f"unexpected {type(exc).__name__}: {exc}"
    wanted = [d for d in domains if _wanted(d, devices)]
    if not wanted:
        _close_quietly(source)
        return [], None
    found.fallbacks.extend(
        f"{status.reason}" + (f" ({status.fix})" if status.fix else "") for status in source.unreadable()
    )
    if len(wanted) < len(domains):
        source = _DomainFilter(source, wanted)
    found.add(source, wanted)
    return wanted, None


def _close_quietly(source: Source) -> None:
    try:
        source.close()
    except Exception:
        log.debug("closing %s failed", source.name, exc_info=True)


def _wants_kind(devices: Sequence[str] | None, kind: str) -> bool:
    """Whether any requested device is of this kind (or of a kind it stands for)."""
    if devices is None:
        return True
    kinds = _kind(kind).domain_kinds | {kind}
    return any(d.split(":")[0] in kinds for d in devices)


def _wanted(domain: Domain, devices: Sequence[str] | None) -> bool:
    if devices is None:
        return True
    return any(d == domain.name or domain.kind in _kind(d).domain_kinds for d in devices)


class _DomainFilter(Source):
    """A source limited to some of its domains (e.g. `gpu:0` out of four GPUs)."""

    def __init__(self, inner: Source, domains: list[Domain]) -> None:
        self.inner = inner
        self.name = inner.name
        self._domains = domains
        self._names = {d.name for d in domains}
        inner.keep(self._names)

    def open(self) -> list[Domain]:
        return self._domains

    def read(self) -> list[Reading]:
        return [r for r in self.inner.read() if r.domain in self._names]

    def close(self) -> None:
        self.inner.close()

    def synchronize(self) -> None:
        self.inner.synchronize()

    def covers(self) -> frozenset[str]:
        return self.inner.covers()

    def counter_update_s(self) -> dict[str, float]:
        return {k: v for k, v in self.inner.counter_update_s().items() if k in self._names}

    def power_bounds_w(self) -> dict[str, tuple[float, float, str]]:
        return {k: v for k, v in self.inner.power_bounds_w().items() if k in self._names}

    def details(self, t0_s: float) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.inner.details(t0_s).items() if k in self._names}
