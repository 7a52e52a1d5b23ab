"""Adaptive trials stop once the interval is tight, run on while it is not, and measure
the CPU other processes took while they ran."""

from __future__ import annotations

import types

import pytest

from joulemeter.integrations.compression.trials import Rounds, TrialPlan, TrialProbe


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


# -- interleaved rounds ------------------------------------------------------------------


def _rounds(per_round_j: dict[str, list[float]], plan: TrialPlan = PLAN) -> tuple[Rounds, list[list[str]]]:
    """Run rounds the way benchmark_inference does, each variant's trial taking the next of
    its figures; returns the rounds and the order each round ran in."""
    meter = _Meter()
    rounds = Rounds({name: TrialProbe(meter, "inferences") for name in per_round_j}, plan)  # type: ignore[arg-type]
    figures = {name: iter(values) for name, values in per_round_j.items()}
    orders = []
    while rounds.more():
        orders.append(rounds.order(rounds.done + 1))
        for name in orders[-1]:
            meter.trial(rounds.probes[name], next(figures[name]), 1000)
    return rounds, orders


def test_rounds_run_every_variant_forward_then_reversed_in_turn() -> None:
    steady = {"a": [10.0] * 8, "b": [5.0] * 8, "c": [2.0] * 8}
    rounds, orders = _rounds(steady)
    assert orders == [["a", "b", "c"], ["c", "b", "a"], ["a", "b", "c"]]
    assert rounds.positions("c", 3) == [3, 1, 3]


def test_rounds_stop_once_every_ratio_is_tight_even_while_the_machine_drifts() -> None:
    """Both variants slow down 30 % a round: each one's own interval stays wide, their ratio
    is steady, so the rounds stop at the minimum."""
    drift = [1.3**r for r in range(8)]
    rounds, orders = _rounds({"full": [10.0 * d for d in drift], "pruned": [10.1 * d for d in drift]})
    assert len(orders) == 3
    assert rounds.probes["full"].per_1000_j == pytest.approx([10.0, 13.0, 16.9])
    assert rounds.probes["full"].figures()["trials_stopped_because"] == "95 % interval of every ratio to full within ±5%"
    assert not rounds.probes["pruned"].tight_enough(PLAN)  # its own figures alone never settle


def test_rounds_go_on_to_the_maximum_while_a_ratio_stays_noisy() -> None:
    rounds, orders = _rounds({"full": [10.0] * 8, "noisy": [10.0, 20.0, 5.0, 18.0, 6.0, 15.0, 8.0, 19.0]})
    assert len(orders) == PLAN.max_trials
    assert rounds.probes["noisy"].figures()["trials_stopped_because"] == "max_trials reached"


def test_a_lone_variant_stops_on_its_own_interval() -> None:
    rounds, orders = _rounds({"full": [10.0, 10.1, 9.95, 50, 50, 50, 50, 50]})
    assert len(orders) == 3
    assert rounds.probes["full"].figures()["trials_stopped_because"] == "95 % interval within ±5%"
