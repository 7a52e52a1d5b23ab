"""SIGKILL loses at most the 2 s the README promises, at random kill points and during writes.

Trials come from benchmarks/sigkill_loss.py (the benchmark in docs/benchmarks.md runs
more of them): each kills a metered process with SIGKILL and measures, on the monotonic
clock, the time between the run's last recovered sample and the kill.
"""

from __future__ import annotations

import random

import pytest

from benchmarks.sigkill_loss import PROMISE_S, trial


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["random", "during-write", "during-write", "random"])
def test_a_killed_run_is_recovered_interrupted_missing_at_most_two_seconds(tmp_path, mode):
    result = trial(tmp_path / "ledger.sqlite", mode, random.Random())
    assert result["status"] == "interrupted"
    assert 0.0 <= result["loss_s"] <= PROMISE_S, result
