"""Adaptive repeated trials for benchmark_inference: in which order the variants take
their turns, how many rounds to run, and how noisy the machine was while they ran (the CPU
time other processes took)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from joulemeter.reports.confidence import paired_ratio_interval, relative_half_width

if TYPE_CHECKING:
    from joulemeter.meter import EnergyMeter


@dataclass(frozen=True)
class TrialPlan:
    """At least `min_trials` (rounds, where variants take turns: Rounds), then more until the
    95 % interval of the figure (a variant's own, or its ratio to the baseline) is within
    ±`target_half_width`, at most `max_trials`, each trial lasting `min_trial_s`."""

    min_trials: int
    max_trials: int
    target_half_width: float
    min_trial_s: float


class TrialProbe:
    """Energy per 1,000 units of work and other processes' CPU share of each trial, read
    from the running meter at the trial's edges (so the stopping rule needs no accounting)."""

    def __init__(self, meter: EnergyMeter, unit: str) -> None:
        import psutil

        self._meter = meter
        self._unit = unit
        self._process = psutil.Process()
        self._cpus = psutil.cpu_count() or 1
        self._start: tuple[float, float, float, float, float] | None = None
        self.per_1000_j: list[float | None] = []  # None: a trial without energy or work
        self.other_load: list[float] = []
        self.stopped_because = "max_trials reached"

    @property
    def trials(self) -> int:
        return len(self.other_load)

    def begin(self) -> None:
        self._start = self._snapshot()

    def end(self) -> None:
        assert self._start is not None, "end() without begin()"
        (t0, e0, n0, busy0, own0), (t1, e1, n1, busy1, own1) = self._start, self._snapshot()
        self.per_1000_j.append((e1 - e0) / (n1 - n0) * 1000 if n1 > n0 and e1 > e0 else None)
        wall = t1 - t0
        others = max((busy1 - busy0) - (own1 - own0), 0.0)
        # the two counters are not read at one instant, so clamp the share to what is possible
        self.other_load.append(min(others / (wall * self._cpus), 1.0) if wall > 0 else 0.0)

    def tight_enough(self, plan: TrialPlan) -> bool:
        """True once `plan.min_trials` ran and their interval is within the target."""
        if self.trials < plan.min_trials:
            return False
        half = relative_half_width(self.per_1000_j)
        if half is not None and half <= plan.target_half_width:
            self.stopped_because = f"95 % interval within ±{plan.target_half_width:.0%}"
            return True
        return False

    def figures(self) -> dict[str, Any]:
        """What the run's metadata keeps about its trials and the machine's load."""
        return {
            "trials": self.trials,
            "trials_stopped_because": self.stopped_because,
            "other_cpu_load_trials": list(self.other_load),
            "other_cpu_load": statistics.fmean(self.other_load) if self.other_load else None,
        }

    def _snapshot(self) -> tuple[float, float, float, float, float]:
        """(wall s, energy so far J, inferences counted, machine busy CPU s, own CPU s)."""
        import psutil

        machine = psutil.cpu_times()
        idle = machine.idle + getattr(machine, "iowait", 0.0)
        busy = sum(machine) - idle - getattr(machine, "guest", 0.0) - getattr(machine, "guest_nice", 0.0)
        own = self._process.cpu_times()
        return (
            time.monotonic(),
            sum(self._meter.energy_so_far_j().values()),
            self._meter.run.units.get(self._unit, 0.0),
            busy,
            own.user + own.system,
        )


class Rounds:
    """Interleaved trials: each round runs one trial of every variant, in the given order in
    odd rounds and reversed in even ones ("ABCD, DCBA, ABCD, …"), so a drift of the machine
    lands on every variant alike; rounds go on until the 95 % interval of every variant's
    ratio to the first (the baseline), paired by round, is within ±`plan.target_half_width`
    (a lone variant: its own interval), at least `plan.min_trials` and at most
    `plan.max_trials` rounds."""

    def __init__(self, probes: Mapping[str, TrialProbe], plan: TrialPlan) -> None:
        if not probes:
            raise ValueError("interleaved rounds need at least one variant")
        self.probes = dict(probes)
        self.plan = plan

    @property
    def done(self) -> int:
        """Rounds every variant has finished."""
        return min(p.trials for p in self.probes.values())

    def order(self, round_number: int) -> list[str]:
        """The variants in the order they run in round `round_number` (from 1)."""
        names = list(self.probes)
        return names if round_number % 2 else names[::-1]

    def positions(self, variant: str, rounds: int) -> list[int]:
        """Where `variant` ran (1: first) in each of rounds 1 to `rounds`."""
        return [self.order(r).index(variant) + 1 for r in range(1, rounds + 1)]

    def more(self) -> bool:
        """Whether to run another round; once not, every probe says why it stopped."""
        if self.done < self.plan.min_trials:
            return True
        reason = self._tight_reason()
        if reason is None:
            return self.done < self.plan.max_trials
        for probe in self.probes.values():
            probe.stopped_because = reason
        return False

    def _tight_reason(self) -> str | None:
        """Why the intervals are tight enough to stop, or None while they are not."""
        baseline, *others = self.probes.values()
        if not others:
            return baseline.stopped_because if baseline.tight_enough(self.plan) else None
        target = self.plan.target_half_width
        for probe in others:
            interval = paired_ratio_interval(baseline.per_1000_j, probe.per_1000_j)
            if interval is None or interval.relative_half_width > target:
                return None
        return f"95 % interval of every ratio to {next(iter(self.probes))} within ±{target:.0%}"
