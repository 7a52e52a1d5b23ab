"""Adaptive trials stop once the interval is tight, run on while it is not, and measure
the CPU other processes took while they ran."""

from __future__ import annotations

import types

import pytest

from joulemeter.integrations.compression.trials import TrialPlan, TrialProbe


class _Meter:
    """What TrialProbe reads from a running EnergyMeter: energy so far and units counted."""

    def __init__(self) -> None:
        self.energy_j = 0.0
        self.run = types.SimpleNamespace(units={"inferences": 0.0})

    def energy_so_far_j(self) -> dict[str, float]:
        return {"cpu": self.energy_j}

    def trial(self, probe: TrialProbe, joules: float, inferences: float) -> None:
        probe.begin()
        self.energy_j += joules
        self.run.units["inferences"] += inferences
        probe.end()


PLAN = TrialPlan(min_trials=3, max_trials=8, target_half_width=0.05, min_trial_s=0.1)


def _run(per_trial_j: list[float]) -> TrialProbe:
    meter = _Meter()
    probe = TrialProbe(meter, "inferences")  # type: ignore[arg-type]
    figures = iter(per_trial_j)
    while probe.trials < PLAN.max_trials and not probe.tight_enough(PLAN):
        meter.trial(probe, next(figures), 1000)
    return probe


def test_steady_trials_stop_at_the_minimum() -> None:
    probe = _run([10.0, 10.1, 9.95, 50, 50, 50, 50, 50])
    assert probe.trials == 3
    assert probe.per_1000_j == pytest.approx([10.0, 10.1, 9.95])
    assert probe.figures()["trials_stopped_because"] == "95 % interval within ±5%"


def test_noisy_trials_run_until_the_interval_tightens_or_the_maximum() -> None:
    settles = _run([10.0, 14.0, 7.0, 10.0, 10.1, 9.9, 10.0, 10.05])
    assert 3 < settles.trials <= 8
    never = _run([10.0, 20.0, 5.0, 18.0, 6.0, 15.0, 8.0, 19.0])
    assert never.trials == 8
    assert never.figures()["trials_stopped_because"] == "max_trials reached"


def test_other_processes_cpu_share_is_measured_per_trial() -> None:
    """A busy child process during a trial shows up as other processes' load: at least
    the CPU seconds it burnt over the trial's wall time across every CPU."""
    import subprocess
    import sys
    import time

    import psutil

    from tests.polling import wait_until

    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        spinner = psutil.Process(child.pid)
        meter = _Meter()
        probe = TrialProbe(meter, "inferences")  # type: ignore[arg-type]
        began = time.monotonic()
        probe.begin()
        burnt_at_start = sum(spinner.cpu_times()[:2])
        wait_until(lambda: sum(spinner.cpu_times()[:2]) - burnt_at_start >= 0.3, "the child to burn 0.3 CPU-s", timeout_s=30)
        burnt = sum(spinner.cpu_times()[:2]) - burnt_at_start
        probe.end()
        wall = time.monotonic() - began
    finally:
        child.kill()
        child.wait()
    (load,) = probe.figures()["other_cpu_load_trials"]
    assert load >= 0.9 * burnt / (wall * psutil.cpu_count())
    assert load <= 1.0
