"""benchmark_inference interleaves its variants' trials in rounds and compares them paired
by round, so a machine that drifts while it measures does not make a difference between
two identical models; metered one after the other, the same drift does."""

from __future__ import annotations

import threading
import time

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from joulemeter.integrations.compression import benchmark_inference  # noqa: E402
from joulemeter.meter.run import Domain, Provenance  # noqa: E402
from joulemeter.meter.sources.base import Reading, Source  # noqa: E402
from joulemeter.meter.store import open_ledger  # noqa: E402
from joulemeter.reports.compare import compare  # noqa: E402
from joulemeter.reports.confidence import PAIRED, TRIAL_SERIES, WELCH, Verdict  # noqa: E402

#: Joules per inference at the start, and how much more each second after: a machine that
#: gets 30 % slower (or hotter) every second, whatever model it runs.
COST_J = 1e-3
DRIFT_PER_S = 0.3


class DriftingWork:
    """The energy counter of a machine whose cost per inference grows with time."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.joules = 0.0
        self._lock = threading.Lock()

    def spend(self, inferences: int) -> None:
        with self._lock:
            self.joules += inferences * COST_J * (1 + DRIFT_PER_S * (time.monotonic() - self.t0))

    def read(self) -> float:
        with self._lock:
            return self.joules


class WorkCounter(Source):
    """One counter domain reading DriftingWork, at ticks and at window edges alike."""

    name = "drifting-work"

    def __init__(self, work: DriftingWork) -> None:
        self.work = work
        self.domain = Domain("cpu", "cpu", "test machine", Provenance.COUNTER, "test: work counter")

    def open(self) -> list[Domain]:
        return [self.domain]

    def read(self) -> list[Reading]:
        return [Reading(self.domain.name, energy_j=self.work.read())]

    def read_counters(self) -> list[Reading]:
        return self.read()


class Identical(nn.Module):
    """The same small model for every variant; each batch spends its energy on the machine."""

    def __init__(self, work: DriftingWork) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.layer = nn.Linear(8, 2)
        self.work = work

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.work.spend(len(x))
        return self.layer(x)


INPUTS = torch.rand(64, 8)
PLAN = {"batch_size": 16, "warmup_batches": 1, "trials": 6, "max_trials": 6, "min_trial_s": 0.1}


def _benchmark(models: dict[str, nn.Module], work: DriftingWork, ledger) -> list:
    return benchmark_inference(
        models, INPUTS, base_model="same", project="drift", device="cpu", ledger=ledger,
        sources=[WorkCounter(work)], sync_devices=False, **PLAN,
    )


def _interval(runs: list):
    comparison = compare(runs, runs[0], per="1000")
    return comparison.interval(runs[1].id)


def test_two_identical_models_interleaved_show_no_difference_despite_drift(tmp_path) -> None:
    work = DriftingWork()
    runs = _benchmark({"a": Identical(work), "b": Identical(work)}, work, tmp_path / "ledger.db")
    interval = _interval(runs)
    assert interval is not None and interval.method == PAIRED
    assert interval.verdict is Verdict.SAME, interval
    a, b = (r.metadata["energy_per_1000_inferences_j_trials"] for r in runs)
    assert a[-1] > 1.2 * a[0]  # the drift was there: each variant's own trials grew
    assert [r.metadata["trial_positions"] for r in runs] == [[1, 2] * 3, [2, 1] * 3]


def test_the_same_models_metered_one_after_the_other_show_a_false_difference(tmp_path) -> None:
    work = DriftingWork()
    ledger = tmp_path / "ledger.db"
    runs = _benchmark({"a": Identical(work)}, work, ledger) + _benchmark({"b": Identical(work)}, work, ledger)
    interval = _interval(runs)
    assert interval is not None and interval.method == WELCH  # two benchmarks, no shared rounds
    assert interval.verdict is Verdict.MORE, interval  # b ran later, on a costlier machine


def test_each_variant_is_one_ledger_run_cut_from_its_own_trials(tmp_path) -> None:
    work = DriftingWork()
    ledger = tmp_path / "ledger.db"
    runs = _benchmark({"a": Identical(work), "b": Identical(work)}, work, ledger)
    with open_ledger(ledger) as store:
        stored = store.list_runs(project="drift")
        assert sorted(r.id for r in stored) == sorted(r.id for r in runs)  # the spanning run is gone
        for run in runs:
            again = store.get_run(run.id)
            trials = [w for w in again.windows if w.path.startswith("inference/trial-")]
            assert [w.name for w in trials] == [f"trial-{n}" for n in range(1, 7)]
            steady = next(w for w in again.windows if w.name == "inference")
            assert steady.duration_s == pytest.approx(sum(w.duration_s for w in trials))
            assert again.duration_s == pytest.approx(steady.duration_s)
            assert again.total_energy_j == pytest.approx(sum(w.total_energy_j for w in trials))
            assert again.metadata["energy_per_1000_inferences_j"] == pytest.approx(
                steady.total_energy_j / steady.units["inferences"] * 1000
            )
    assert runs[0].metadata[TRIAL_SERIES] == runs[1].metadata[TRIAL_SERIES]
    # the two runs together hold no more than the work done in their trials
    assert sum(r.total_energy_j for r in runs) < work.read()


def test_progress_is_reported_after_every_round_and_ends_full_when_the_rounds_stop_early(tmp_path) -> None:
    work = DriftingWork()
    seen: list[tuple[int, int]] = []
    runs = benchmark_inference(
        {"a": Identical(work), "b": Identical(work)}, INPUTS, base_model="same", device="cpu",
        ledger=tmp_path / "ledger.db", sources=[WorkCounter(work)], sync_devices=False,
        batch_size=16, warmup_batches=1, trials=2, max_trials=40, min_trial_s=0.05,
        target_half_width=0.99,  # identical models on a steady counter: tight after the 2 rounds asked for
        on_round=lambda done, most: seen.append((done, most)),
    )
    assert [r.metadata["trials"] for r in runs] == [2, 2]
    assert seen == [(1, 40), (2, 40), (2, 2)]
