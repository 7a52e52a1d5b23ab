"""The one interface every power source implements, and the registry discovery walks.

A source owns one or more domains (all GPUs NVML sees, all RAPL zones, …). The
sampler calls `read()` on a background thread and never asks which vendor it holds.
A source module registers its class with `@register_source(kinds, …)`: discovery
finds it there, so adding a vendor is adding a module.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from joulemeter.meter.run import Domain

#: Preferences: lower is tried first. Measured sources (hardware counters and sensors)
#: come before estimates, which stand in only where no measured source reads.
MEASURED = 0
ESTIMATED = 100


@dataclass(frozen=True)
class Reading:
    """One domain's raw reading at one instant.

    `energy_j` is the raw cumulative counter value in joules (arbitrary origin, may
    wrap at the domain's `counter_range_j` or reset); None where the domain has no
    counter. `power_w` is instantaneous or short-average power. `error` is set, with
    both values None, when the domain could not be read this time (GPU lost, …).
    """

    domain: str
    power_w: float | None = None
    energy_j: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class SourceStatus:
    """What `joulemeter devices` shows for a source: does it read here, how, or why not."""

    source: str  # "nvml", "rapl", "cpu-estimate", "replay"
    available: bool
    domains: tuple[Domain, ...] = ()
    reason: str | None = None  # why it cannot read
    fix: str | None = None  # what to do about it


class Source(abc.ABC):
    """A power source: open it to learn its domains, then read it repeatedly."""

    name: str = "source"

    @abc.abstractmethod
    def open(self) -> list[Domain]:
        """Prepare to read and return the domains; raise SourceUnavailable if it cannot."""

    @abc.abstractmethod
    def read(self) -> list[Reading]:
        """One reading per domain; a failing domain gives a Reading with `error` set."""

    def close(self) -> None:
        """Release handles (NVML shutdown, open files). Safe to call twice."""

    def read_counters(self) -> list[Reading]:
        """Cumulative energy-counter readings only (`energy_j` set), cheap enough for every
        window edge: a domain without a counter is left out ([] when none has one)."""
        return []

    def keep(self, names: set[str]) -> None:
        """Read only these of its domains from now on (a rank meters its own GPUs only)."""

    def synchronize(self) -> None:
        """Wait until work queued on its devices has run (CUDA), so it is metered where it
        was asked for; no-op for devices with no queue."""

    def unreadable(self) -> list[SourceStatus]:
        """Devices it found but cannot read, each with why and the fix (after `open`)."""
        return []

    def covers(self) -> frozenset[str]:
        """Kinds its domains' readings already include (a Grace Hopper module: CPU and RAM),
        which must not be metered again on top."""
        return frozenset()

    def counter_update_s(self) -> dict[str, float]:
        """Measured update period of each domain's energy counter (s), where measured."""
        return {}

    def power_bounds_w(self) -> dict[str, tuple[float, float, str]]:
        """(lowest, highest power in W, why) of each domain whose power a model bounds (an
        estimate), so that a window too short for its counters is held within the model."""
        return {}

    def details(self, t0_s: float) -> dict[str, dict[str, Any]]:
        """What it learnt about each domain while reading (JSON-able, for the run's metadata);
        times in seconds since `t0_s` on time.monotonic (the sampler's origin)."""
        return {}

    def status(self) -> SourceStatus:
        """Try to open, report the result, and close again."""
        return self.statuses()[0]

    def statuses(self) -> list[SourceStatus]:
        """Its status, then one per device it found but cannot read; opens and closes again."""
        from joulemeter.meter.errors import SourceUnavailable

        try:
            domains = self.open()
            unreadable = self.unreadable()
        except SourceUnavailable as exc:
            return [SourceStatus(self.name, False, reason=exc.reason, fix=exc.fix)]
        except Exception as exc:  # a source's own bug must not take `devices` down
            return [SourceStatus(self.name, False, reason=f"unexpected {type(exc).__name__}: {exc}")]
        finally:
            self.close()
        return [SourceStatus(self.name, True, tuple(domains)), *unreadable]


S = TypeVar("S", bound=type[Source])


@dataclass(frozen=True)
class SourceEntry:
    """A registered source: the kinds it meters ("gpu", "cpu", "ram"), in what preference.

    `label` names it in fallback notes ("NVML unavailable: …"); `per_process` sources
    are made with the pid to follow (None: machine-wide), the others with no argument.
    """

    source: type[Source]
    kinds: tuple[str, ...]
    label: str
    preference: int = MEASURED
    per_process: bool = False

    @property
    def estimated(self) -> bool:
        return self.preference >= ESTIMATED

    def make(self, pid: int | None) -> Source:
        return self.source(pid) if self.per_process else self.source()  # type: ignore[call-arg]


_registry: list[SourceEntry] = []


def register_source(
    *kinds: str, label: str, preference: int = MEASURED, per_process: bool = False
) -> Callable[[S], S]:
    """Class decorator: make discovery and `statuses()` try this source for `kinds`."""

    def register(source: S) -> S:
        _registry.append(SourceEntry(source, kinds, label, preference, per_process))
        return source

    return register


def registered() -> list[SourceEntry]:
    """Every source registered so far, in registration order."""
    return list(_registry)


def bridged_counter_reading(
    domain: str, bridged: list[list[Any]], now: float, power_w: float | None, energy_j: float | None,
    error: str | None,
) -> Reading | None:
    """A GPU energy counter's reading, or None while it cannot be read: the counter keeps
    counting through the error, so the next difference holds the energy across it; the
    span bridged is kept in `bridged` as [start, end or None while open, error]."""
    if energy_j is None:
        if not bridged or bridged[-1][1] is not None:
            bridged.append([now, None, error])
        return None
    if bridged and bridged[-1][1] is None:
        bridged[-1][1] = now
    return Reading(domain, power_w=power_w, energy_j=energy_j)


class _Device(Protocol):
    domain: Domain


D = TypeVar("D", bound=_Device)


def read_devices(
    devices: Iterable[D], now: float, read_one: Callable[[D, float], Reading | None], log: logging.Logger
) -> list[Reading]:
    """A vendor source's `read()`: each device's reading at `now`; a device whose read raises
    something unexpected (a binding or driver surprise) gets an error reading, a gap for it
    alone, and one whose counter bridges an error (None) gives none."""
    readings = []
    for device in devices:
        try:
            reading = read_one(device, now)
        except Exception as exc:
            log.warning("reading %s failed unexpectedly: %r", device.domain.name, exc)
            reading = Reading(device.domain.name, error=f"unexpected {type(exc).__name__}: {exc}")
        if reading is not None:
            readings.append(reading)
    return readings
