"""The "train large, then compress" experiment: its task, its verdict logic on measured
figures, and a tiny run end to end."""

from __future__ import annotations

import pytest

from joulemeter.meter.run import Window
from joulemeter.reports.factors import resolve_factors
from joulemeter.reports.tlc import Premise, Proportion, difference_interval, summarise_tlc
from tests.test_compare import make_run

FACTORS = resolve_factors(intensity_g_per_kwh=400.0, pue=1.5, price_per_kwh=0.30, currency="EUR")


def inference(run_id: str, variant: str, per_1000_j: list[float], accuracy: float):
    """An inference run whose trials each did 1,000 inferences for the given joules."""
    windows = [
        Window(name=f"trial-{i}", path=f"inference/trial-{i}", start_s=10.0 * i, end_s=10.0 * i + 9,
               energy_j={"gpu:0": j}, units={"inferences": 1000.0})
        for i, j in enumerate(per_1000_j, start=1)
    ]
    return make_run(run_id * 16, variant, energy_j=sum(per_1000_j), windows=windows,
                    units={"inferences": 1000.0 * len(per_1000_j)},
                    metadata={"variant": variant, "base_model": "m", "accuracy": accuracy})


def trained(run_id: str, variant: str, energy_j: float):
    return make_run(run_id * 16, variant, energy_j=energy_j, metadata={"variant": variant, "kind": "training"})


def summary(small_acc: float, pruned_acc: float, pruned_j: list[float], queries: float = 1000.0):
    small_j = [10.0, 10.2, 9.9, 10.1]
    runs = [
        inference("a", "small", small_j, small_acc),
        inference("b", "large", [30.0, 30.5, 29.8, 30.2], 0.9),
        inference("c", "large-pruned", pruned_j, pruned_acc),
    ]
    training = [trained("d", "small", 100.0), trained("e", "large", 101.0)]
    production = [make_run("f" * 16, "prune", energy_j=5.0,
                           metadata={"variant": "large-pruned", "kind": "production", "trained_from": "large"})]
    return summarise_tlc(runs, training, production, budget_j=100.0, queries=queries, test_size=2000,
                         factors=FACTORS)


def test_more_accurate_and_no_dearer_means_the_premise_held():
    s = summary(0.70, 0.80, [9.0, 9.1, 8.9, 9.05])
    pruned = s.model("large-pruned")
    low, high = s.accuracy_difference(pruned)
    assert 0 < low < 0.10 < high
    assert pruned.figures.interval.verdict.value == "less"
    assert s.holds_for(pruned) is Premise.HELD and s.premise is Premise.HELD


def test_less_accurate_means_it_did_not_hold_whatever_the_energy():
    s = summary(0.80, 0.70, [5.0, 5.1, 4.9, 5.05])
    assert s.premise is Premise.NOT_HELD


def test_more_accurate_but_dearer_per_query_holds_for_accuracy_only():
    s = summary(0.70, 0.80, [20.0, 20.2, 19.9, 20.1])
    assert s.model("large-pruned").figures.interval.verdict.value == "more"
    assert s.premise is Premise.ACCURACY_ONLY


def test_no_measurable_accuracy_difference_and_noisy_energy_cannot_be_called():
    s = summary(0.75, 0.751, [5.0, 15.0, 8.0, 12.0])
    assert s.model("large-pruned").figures.interval.verdict.value == "too noisy for a verdict"
    assert s.premise is Premise.INCONCLUSIVE


def test_lifecycle_is_training_plus_compression_plus_queries_with_its_interval():
    s = summary(0.70, 0.80, [9.0, 9.1, 8.9, 9.05], queries=1_000_000)
    pruned, small = s.model("large-pruned"), s.small
    per_query = pruned.figures.energy_per_inference_j
    assert pruned.lifecycle_energy_j == pytest.approx(101.0 + 5.0 + 1_000_000 * per_query)
    assert small.lifecycle_energy_j == pytest.approx(100.0 + 1_000_000 * small.figures.energy_per_inference_j)
    interval = s.lifecycle_interval(pruned)
    assert interval.low < interval.ratio < interval.high < 1
    # the interval's centre uses the trials' geometric means, the lifecycle their pooled mean
    assert interval.ratio == pytest.approx(pruned.lifecycle_energy_j / small.lifecycle_energy_j, rel=1e-3)
    # its 6 J more of fixed energy pays off after 6 J ÷ the per-query saving
    saving = small.figures.energy_per_inference_j - per_query
    assert s.break_even_queries(pruned) == pytest.approx(6.0 / saving)


def test_wilson_interval_and_difference_match_newcombes_worked_example():
    # Newcombe 1998 (Statistics in Medicine 17:857, table I): 81/263 gives 0.2553–0.3662
    low, high = Proportion(81 / 263, 263).interval
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)
    # Newcombe 1998 (Statistics in Medicine 17:873, table II, example (a)): 56/70 − 48/80,
    # method 10 gives 0.0524 to 0.3339
    low, high = difference_interval(Proportion(56 / 70, 70), Proportion(48 / 80, 80))
    assert (round(low, 4), round(high, 4)) == (0.0524, 0.3339)


def test_majority_task_labels_are_the_unique_most_frequent_symbol():
    torch = pytest.importorskip("torch")
    from joulemeter.integrations.experiment_tlc import majority_task

    x, y = majority_task(100, symbols=4, length=9, seed=3)
    assert x.shape == (100, 10) and bool((x[:, 0] == 4).all())
    for row, label in zip(x[:, 1:], y):
        counts = torch.bincount(row, minlength=4)
        assert int(counts.argmax()) == int(label) and int((counts == counts.max()).sum()) == 1


@pytest.mark.slow
def test_a_tiny_experiment_runs_end_to_end_and_derives_its_verdict(tmp_path):
    pytest.importorskip("transformers")
    from joulemeter.integrations.experiment_tlc import Encoder, TLCOptions, TLCPlan, run_tlc

    plan = TLCPlan(train_s=1.0, small=Encoder(8, 1, 1), large=Encoder(16, 1, 2), train_examples=400,
                   test_examples=200, trials=2, max_trials=2, min_trial_s=0.1, fine_tune_batches=1)
    result = run_tlc(TLCOptions(output=tmp_path / "tlc.html", ledger=tmp_path / "l.db", plan=plan,
                                device="cpu", queries=1000))
    s = result.summary
    small_training, large_training = s.small.training, s.model("large").training
    assert small_training.metadata["budget_j"] == large_training.metadata["budget_j"] == s.budget_j
    assert large_training.total_energy_j >= s.budget_j * 0.99 or large_training.metadata["steps"] == plan.max_steps
    assert {m.name for m in s.compressed} >= {"large-pruned", "large-int8"}
    for m in s.compressed:
        assert m.figures.interval is not None and m.figures.interval.low <= m.figures.interval.high
        assert m.production is not None and m.trained_from == "large"
    verdicts = []
    for m in s.compressed:  # the documented rule, applied to the measured figures
        low, high = s.accuracy_difference(m)
        energy = m.figures.interval.verdict.value
        if low > 0 and energy in ("less", "no measurable difference"):
            verdicts.append(Premise.HELD)
        elif low > 0 and energy == "more":
            verdicts.append(Premise.ACCURACY_ONLY)
        elif high < 0 or (low <= 0 and energy == "more"):
            verdicts.append(Premise.NOT_HELD)
        else:
            verdicts.append(Premise.INCONCLUSIVE)
    assert [s.holds_for(m) for m in s.compressed] == verdicts
    expected = (Premise.HELD if Premise.HELD in verdicts
                else Premise.ACCURACY_ONLY if Premise.ACCURACY_ONLY in verdicts
                else Premise.NOT_HELD if all(v is Premise.NOT_HELD for v in verdicts)
                else Premise.INCONCLUSIVE)
    assert s.premise is expected
    html = result.report_path.read_text()
    assert "Verdict" in html and s.premise.value in html
