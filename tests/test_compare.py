"""Comparisons: side-by-side figures and ratios, Pareto frontier, break-even, training prediction.

Runs are built directly from joulemeter.meter.run dataclasses with round numbers, so every expected
figure below is hand arithmetic on those numbers and the factors given explicitly.
"""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from joulemeter.meter.errors import ReportError
from joulemeter.meter.run import Domain, DomainEnergy, Provenance, Run, Sample, Status, Window
from joulemeter.reports.compare import break_even, compare, default_per, pareto_frontier, predict_training
from joulemeter.reports.factors import resolve_factors

# 400 g/kWh, 0.30 EUR/kWh, PUE 1.5: round numbers so results can be checked by hand
FACTORS_KW = dict(intensity_g_per_kwh=400.0, pue=1.5, price_per_kwh=0.30, currency="EUR")


@pytest.fixture(scope="module")
def factors():
    return resolve_factors(**FACTORS_KW)


def make_run(
    run_id: str,
    name: str,
    *,
    energy_j: float = 1000.0,
    duration_s: float = 100.0,
    units: dict[str, float] | None = None,
    metadata: dict | None = None,
    provenance: Provenance = Provenance.COUNTER,
    samples_per_domain: int = 11,
    windows: list[Window] | None = None,
) -> Run:
    """A completed run whose energy is split 3:1 between gpu:0 and cpu:package-0, drawn at
    constant power, with `samples_per_domain` evenly spaced cumulative-energy samples."""
    shares = {"gpu:0": 0.75, "cpu:package-0": 0.25}
    domains = [
        Domain("gpu:0", "gpu", "NVIDIA H100 80GB HBM3", provenance, "NVML total energy counter"),
        Domain("cpu:package-0", "cpu", "Intel Xeon", provenance, "RAPL package counter"),
    ]
    energy = {
        d: DomainEnergy(d, energy_j * share, provenance, energy_j * share / duration_s,
                        energy_j * share / duration_s * 1.2, idle_power_w=1.0)
        for d, share in shares.items()
    }
    samples = []
    for i in range(samples_per_domain):
        t = duration_s * i / (samples_per_domain - 1)
        for d, share in shares.items():
            power = energy_j * share / duration_s
            samples.append(Sample(t, d, power, power * t))
    return Run(
        id=run_id,
        name=name,
        status=Status.COMPLETED,
        started_at="2026-01-05T10:00:00+00:00",
        ended_at="2026-01-05T10:01:40+00:00",
        duration_s=duration_s,
        domains=domains,
        energy=energy,
        windows=windows or [],
        units=units or {},
        samples=samples,
        metadata=metadata or {},
    )


def epoch(index: int, start_s: float, duration_s: float, energy_j: float) -> Window:
    """One training epoch window, energy split between the two domains of make_run."""
    return Window(
        name="epoch",
        path="train/epoch",
        start_s=start_s,
        end_s=start_s + duration_s,
        energy_j={"gpu:0": energy_j * 0.75, "cpu:package-0": energy_j * 0.25},
        units={"samples": 1000.0},
        note=f"epoch {index}",
    )


# -- compare ---------------------------------------------------------------------------


@pytest.fixture()
def full_and_pruned():
    full = make_run("aaaa1111", "full", energy_j=3400.0, units={"inferences": 1000},
                    metadata={"variant": "full", "accuracy": 0.91, "parameters": 110_000_000})
    pruned = make_run("bbbb2222", "pruned", energy_j=1000.0, units={"inferences": 1000},
                      metadata={"variant": "pruned-50", "accuracy": 0.90,
                                "nonzero_parameters": 55_000_000})
    return full, pruned


def test_ratio_to_baseline_is_energy_per_1000_inferences_divided(full_and_pruned, factors):
    full, pruned = full_and_pruned
    result = compare([full, pruned], per="1000", factors=factors)
    frame = result.frame.set_index("id")
    # 3,400 J / 1,000 inferences × 1,000 = 3,400 J; 1,000 J likewise
    assert frame.loc["aaaa1111", "energy_per_1000_j"] == pytest.approx(3400.0)
    assert frame.loc["bbbb2222", "energy_per_1000_j"] == pytest.approx(1000.0)
    assert frame.loc["bbbb2222", "ratio"] == pytest.approx(1000.0 / 3400.0)
    assert frame.loc["aaaa1111", "ratio"] == pytest.approx(1.0)
    assert result.phrases == [
        "pruned: 3.4× less energy per 1,000 inferences than full (accuracy 90.0 % vs 91.0 %)"
    ]


def test_compare_figures_follow_from_the_factors(full_and_pruned, factors):
    full, _ = full_and_pruned
    row = compare([full], factors=factors).frame.iloc[0]
    # 3,400 J × 1.5 PUE = 5,100 J = 5,100 / 3.6e6 kWh; × 0.4 kg/kWh; × 0.30 EUR/kWh
    kwh = 3400.0 * 1.5 / 3.6e6
    assert row["energy_kwh"] == pytest.approx(kwh)
    assert row["kg_co2e"] == pytest.approx(kwh * 0.4)
    assert row["cost"] == pytest.approx(kwh * 0.30)
    assert row["currency"] == "EUR"
    assert row["avg_power_w"] == pytest.approx(34.0)  # 3,400 J over 100 s
    assert row["provenance"] == "counter"


def test_metadata_columns_appear_when_any_run_has_them(full_and_pruned, factors):
    full, pruned = full_and_pruned
    result = compare([full, pruned], factors=factors)
    assert result.metadata_columns == ["accuracy", "parameters", "nonzero_parameters"]
    assert result.frame["variant"].tolist() == ["full", "pruned-50"]
    assert math.isnan(result.frame["nonzero_parameters"].iloc[0])


def test_baseline_can_be_named_by_id_prefix_or_name(full_and_pruned, factors):
    full, pruned = full_and_pruned
    by_prefix = compare([full, pruned], baseline="bbbb", factors=factors)
    by_name = compare([full, pruned], baseline="pruned", factors=factors)
    assert by_prefix.baseline_id == by_name.baseline_id == "bbbb2222"
    assert by_prefix.phrases == ["full: 3.4× more energy than pruned (accuracy 91.0 % vs 90.0 %)"]


def test_unknown_baseline_lists_the_runs_to_choose_from(full_and_pruned, factors):
    with pytest.raises(ReportError, match=r"aaaa1111 \(full\)"):
        compare(list(full_and_pruned), baseline="nope", factors=factors)


def test_per_token_without_tokens_counted_says_how_to_count_them(full_and_pruned, factors):
    with pytest.raises(ReportError, match="meter.count"):
        compare(list(full_and_pruned), per="token", factors=factors)


def test_run_missing_the_unit_gets_no_ratio_and_says_why(full_and_pruned, factors):
    full, _ = full_and_pruned
    uncounted = make_run("cccc3333", "uncounted", energy_j=500.0)
    result = compare([full, uncounted], per="inference", factors=factors)
    assert result.frame["ratio"].isna().iloc[1]
    assert result.phrases == ["uncounted: counted no inferences, so no energy per inference to "
                              "compare with full"]


def test_a_baseline_missing_the_unit_is_the_side_named_as_lacking_it(full_and_pruned, factors):
    full, _ = full_and_pruned
    uncounted = make_run("cccc3333", "uncounted", energy_j=500.0)
    result = compare([uncounted, full], per="inference", factors=factors)
    assert result.phrases == ["full: uncounted (the baseline) counted no inferences, so no energy per "
                              "inference to compare"]


def test_an_llm_run_is_compared_per_token_processed_with_a_run_that_counted_tokens(factors):
    llm = make_run("eeee5555", "llm-sweep", energy_j=80.0,
                   units={"input_tokens": 600.0, "output_tokens": 200.0}, metadata={"kind": "llm-inference"})
    trained = make_run("ffff6666", "trained", energy_j=4000.0, units={"tokens": 1000.0},
                       metadata={"kind": "training"})
    assert default_per([llm, trained]) == "token"
    result = compare([llm, trained], per="token", factors=factors)
    assert result.frame["energy_per_token_j"].tolist() == pytest.approx([0.1, 4.0])
    assert result.phrases[0].startswith("trained: 40× more energy per token than llm-sweep")
    assert result.notes[0] == ("llm-sweep counted input and output tokens, not tokens: per token here is per "
                               "token processed, its 600 input (prompt) and 200 output (generated) tokens together")
    assert "not the same work" in result.notes[1]


def test_different_provenance_is_pointed_out(full_and_pruned, factors):
    full, _ = full_and_pruned
    guessed = make_run("dddd4444", "guessed", energy_j=3400.0, provenance=Provenance.ESTIMATED)
    (phrase,) = compare([full, guessed], factors=factors).phrases
    assert phrase == ("guessed: about the same energy as full; mind the provenance: "
                      "estimated here, counter for full")


def test_comparison_to_dict_is_json_ready_with_nan_as_null(full_and_pruned, factors):
    result = compare(list(full_and_pruned), per="1000", factors=factors)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["rows"][0]["nonzero_parameters"] is None
    assert data["rows"][1]["energy_per_1000_j"] == pytest.approx(1000.0)
    assert data["factors"]["intensity_g_per_kwh"] == 400.0
    assert data["per_label"] == "per 1,000 inferences"


# -- pareto ----------------------------------------------------------------------------


def test_pareto_frontier_marks_runs_nobody_beats_on_both_axes():
    import pandas

    frame = pandas.DataFrame(
        {
            "energy_per_1000_j": [100.0, 50.0, 80.0, 50.0, 20.0, None],
            "accuracy": [0.95, 0.90, 0.85, 0.88, 0.70, 0.99],
        },
        index=list("abcdef"),
    )
    # a: most accurate; b: cheaper than a; c beaten by b; d beaten by b (same energy,
    # less accurate); e: cheapest; f: no energy figure, never on the frontier
    marked = pareto_frontier(frame)
    assert marked.to_dict() == {"a": True, "b": True, "c": False, "d": False, "e": True,
                                "f": False}


def test_pareto_frontier_works_on_any_two_columns_and_directions():
    import pandas

    frame = pandas.DataFrame({"size": [1, 2, 3], "latency": [3.0, 1.0, 2.0]})
    assert pareto_frontier(frame, x="size", y="latency", maximize_y=False).tolist() == [
        True, True, False]
    assert pareto_frontier(frame, x="size", y="latency", minimize_x=False,
                           maximize_y=True).tolist() == [True, False, True]


def test_equal_points_are_both_on_the_frontier():
    import pandas

    frame = pandas.DataFrame({"energy_per_1000_j": [10.0, 10.0], "accuracy": [0.9, 0.9]})
    assert pareto_frontier(frame).tolist() == [True, True]


# -- break-even ------------------------------------------------------------------------


def test_break_even_is_extra_energy_over_saving(factors):
    result = break_even(3.6e6, 0.5, factors)  # 1 kWh of fine-tuning, 0.5 J saved each time
    assert result.inferences_for_energy == pytest.approx(7.2e6)
    # constant factors: CO2e and cost break even at the same count
    assert result.inferences_for_co2e == pytest.approx(7.2e6)
    assert result.inferences_for_cost == pytest.approx(7.2e6)
    assert not result.never
    assert "7,200,000 inferences" in result.text


def test_break_even_never_when_the_compressed_model_saves_nothing(factors):
    result = break_even(1000.0, -0.1, factors)
    assert result.never
    assert result.inferences_for_energy is result.inferences_for_cost is None
    assert result.text.startswith("never")


def test_break_even_without_a_price_leaves_cost_unknown(factors):
    no_price = dataclasses.replace(factors, price_per_kwh=None, currency=None, price_citation=None)
    result = break_even(100.0, 1.0, no_price)
    assert result.inferences_for_energy == pytest.approx(100.0)
    assert result.inferences_for_cost is None


def test_break_even_rejects_negative_extra_energy(factors):
    with pytest.raises(ReportError, match="fine-tuning"):
        break_even(-5.0, 1.0, factors)


# -- training prediction ---------------------------------------------------------------


def test_training_prediction_is_mean_epoch_energy_times_total_epochs(factors):
    windows = [epoch(1, 0.0, 10.0, 200.0), epoch(2, 10.0, 12.0, 220.0),
               Window("epoch", "train/epoch", 22.0, None, {"gpu:0": 5.0})]  # still open
    run = make_run("eeee5555", "training", windows=windows)
    prediction = predict_training(run, 10, factors=factors)
    assert prediction.completed_epochs == 2
    assert prediction.energy_per_epoch_j == pytest.approx(210.0)  # (200 + 220) / 2
    assert prediction.predicted_energy_j == pytest.approx(2100.0)
    assert prediction.predicted_duration_s == pytest.approx(110.0)  # (10 + 12) / 2 × 10
    assert prediction.remaining_energy_j == pytest.approx(1680.0)  # 8 epochs to go
    assert prediction.footprint.provenance == "estimated"
    assert prediction.footprint.kg_co2e == pytest.approx(2100.0 * 1.5 / 3.6e6 * 0.4)
    assert prediction.to_dict()["measured_provenance"] == "counter"


def test_training_prediction_without_epoch_windows_says_how_to_add_them(factors):
    with pytest.raises(ReportError, match=r"meter.window\('epoch'\)"):
        predict_training(make_run("ffff6666", "no-epochs"), 5, factors=factors)


def test_training_prediction_rejects_fewer_total_epochs_than_done(factors):
    run = make_run("abab7777", "t", windows=[epoch(1, 0, 1, 1), epoch(2, 1, 1, 1)])
    with pytest.raises(ReportError, match="already completed 2"):
        predict_training(run, 1, factors=factors)


def test_a_baseline_run_not_among_the_runs_is_added_first(full_and_pruned, factors):
    full, pruned = full_and_pruned
    result = compare([pruned], baseline=full, factors=factors)
    assert result.frame["id"].tolist() == ["aaaa1111", "bbbb2222"]
    assert result.phrases == ["pruned: 3.4× less energy than full (accuracy 90.0 % vs 91.0 %)"]


def test_default_per_is_the_unit_every_run_counted_or_whole_runs():
    inferring = [make_run(f"{i}" * 16, f"r{i}", energy_j=100.0, units={"inferences": 10}) for i in range(2)]
    tokens = [make_run(f"{i}" * 16, f"t{i}", energy_j=100.0, units={"tokens": 10}) for i in range(2)]
    assert default_per(inferring) == "1000"
    assert default_per(tokens) == "token"
    assert default_per([inferring[0], tokens[1]]) is None  # no unit in common: whole runs
    assert default_per([make_run("9" * 16, "bare", energy_j=1.0)]) is None


def _with_trials(run_id: str, name: str, per_trial_j: list[float], **kwargs) -> Run:
    """A run whose windows "trial-N" each did 1,000 inferences for the given joules."""
    windows = [
        Window(name=f"trial-{i}", path=f"inference/trial-{i}", start_s=10.0 * i, end_s=10.0 * i + 9,
               energy_j={"gpu:0": j}, units={"inferences": 1000.0})
        for i, j in enumerate(per_trial_j, start=1)
    ]
    return make_run(run_id, name, energy_j=sum(per_trial_j), units={"inferences": 1000.0 * len(per_trial_j)},
                    windows=windows, **kwargs)


def test_repeated_trials_give_every_ratio_its_interval_and_verdict(factors) -> None:
    full = _with_trials("a" * 32, "full", [26.0, 25.5, 26.4, 25.9])
    quant = _with_trials("b" * 32, "quantized", [10.1, 9.9, 10.0, 10.2])
    result = compare([full, quant], per="1000", factors=factors)
    ci = result.interval(quant.id)
    assert ci is not None and ci.low < 10.05 / 25.95 < ci.high and ci.high < 1
    (phrase,) = result.phrases
    assert phrase.startswith("quantized: 2.6× less energy per 1,000 inferences than full (95 % CI ")
    row = result.frame.set_index("name").loc["quantized"]
    assert row["verdict"] == "less" and row["ratio_ci_high"] < 1
    assert json.loads(json.dumps(result.to_dict(), default=str))["intervals"][quant.id]["verdict"] == "less"


def test_identical_trials_say_no_measurable_difference_and_a_single_run_says_it_has_no_ci(factors) -> None:
    trials = [12.0, 12.3, 11.8, 12.1, 12.2]
    full, pruned = _with_trials("a" * 32, "full", trials), _with_trials("b" * 32, "pruned", list(trials))
    (phrase,) = compare([full, pruned], per="1000", factors=factors).phrases
    assert phrase.startswith("pruned: no measurable difference in energy per 1,000 inferences against full")
    single = compare([make_run("c" * 32, "x"), make_run("d" * 32, "y", energy_j=500.0)], factors=factors)
    assert single.interval("d" * 32) is None
    assert single.frame["verdict"].isna().all()


def test_per_unit_comparison_has_co2e_and_cost_per_unit(factors) -> None:
    full = _with_trials("a" * 32, "full", [20.0, 20.0])
    result = compare([full], per="1000", factors=factors)
    row = result.frame.iloc[0]
    # 20 J per 1,000 = 20/3.6e6 kWh at the device, × PUE 1.5 × 400 g/kWh, and × 0.30 EUR/kWh
    assert row["kg_co2e_per_1000"] == pytest.approx(20 / 3.6e6 * 1.5 * 0.4)
    assert row["cost_per_1000"] == pytest.approx(20 / 3.6e6 * 1.5 * 0.30)


def test_a_published_footprint_uses_the_intensity_its_card_implies_not_the_world_average():
    from joulemeter.reports.estimates import published_run

    llama = published_run("llama-3.1-405b")
    from joulemeter.reports.accounting import footprint

    fp = footprint(llama)
    assert fp.kg_co2e == pytest.approx(llama.reported_co2e_t * 1e3)  # 8,930 t as the card reports
    assert "implied by its reported CO2e" in fp.factors.intensity_citation.source
    assert not fp.factors.intensity_is_default


def test_a_published_run_compares_as_a_run_with_its_own_provenance():
    from joulemeter.reports.estimates import published_run

    llama = published_run("llama-2-70b").as_run()
    assert llama.units == {"tokens": 2.0e12} and llama.provenance.value == "estimated"
