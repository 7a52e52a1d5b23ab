"""The full-vs-compressed study: its arithmetic on hand-made runs, its HTML report, and
`joulemeter demo` end to end."""

from __future__ import annotations

import re
import uuid

import pytest
from typer.testing import CliRunner

from joulemeter.integrations.cli import app
from joulemeter.meter.run import Domain, DomainEnergy, Provenance, Run, Status, Window
from joulemeter.reports.factors import resolve_factors
from joulemeter.reports.render.compression import render_compression_html, summarise_compression

QUERIES_PER_DAY = 1000.0
DAYS = 10.0


def make_run(
    variant: str,
    energy_j: float,
    *,
    kind: str = "inference",
    inferences: float | None = None,
    provenance: Provenance = Provenance.COUNTER,
    name: str | None = None,
) -> Run:
    """A finished run with one GPU domain drawing `energy_j` over 10 s."""
    domain = Domain(
        "gpu:0",
        "gpu",
        "test GPU",
        provenance,
        "test counter" if provenance is Provenance.COUNTER else "test estimate: utilisation model",
    )
    units = {"inferences": inferences} if inferences else {}
    return Run(
        id=uuid.uuid4().hex,
        name=name or f"mlp/{variant}",
        project="demo",
        status=Status.COMPLETED,
        duration_s=10.0,
        domains=[domain],
        energy={
            "gpu:0": DomainEnergy("gpu:0", energy_j, provenance, energy_j / 10.0, energy_j / 10.0)
        },
        windows=[Window("inference", "inference", 0.0, 10.0, {"gpu:0": energy_j}, dict(units))],
        units=units,
        metadata={
            "kind": kind,
            "variant": variant,
            "base_model": "mlp",
            **({"accuracy": 0.9} if kind == "inference" else {}),
        },
    )


@pytest.fixture
def factors():
    return resolve_factors(intensity_g_per_kwh=400.0, price_per_kwh=0.25, currency="EUR")


@pytest.fixture
def summary(factors):
    # per inference: full 1 mJ, int8 0.4 mJ, pruned 1.2 mJ (10,000 inferences each)
    inference = [
        make_run("full", 10.0, inferences=10_000),
        make_run("int8", 4.0, inferences=10_000),
        make_run("pruned", 12.0, inferences=10_000),
        make_run("distilled", 2.0, inferences=10_000),  # its production was not metered
    ]
    production = [
        make_run("full", 500.0, kind="training"),
        make_run("int8", 3.0, kind="production"),
        make_run("pruned", 50.0, kind="production"),
    ]
    return summarise_compression(
        inference,
        production,
        queries_per_day=QUERIES_PER_DAY,
        days=DAYS,
        factors=factors,
        skipped={"fp16": "no native fp16 on this CPU"},
    )


def figures(summary, variant):
    return next(v for v in summary.variants if v.variant == variant)


def test_ratios_and_energy_per_inference_come_from_the_runs(summary):
    assert figures(summary, "full").energy_per_inference_j == pytest.approx(10.0 / 10_000)
    assert figures(summary, "int8").energy_per_inference_j == pytest.approx(4.0 / 10_000)
    assert figures(summary, "int8").ratio == pytest.approx(0.4)
    assert figures(summary, "pruned").ratio == pytest.approx(1.2)


def test_break_even_is_production_energy_over_saving_per_inference(summary):
    int8 = figures(summary, "int8")
    # 3 J spent / (1.0 − 0.4) mJ saved per inference = 5,000 inferences = 5 days at 1,000/day
    assert int8.break_even.inferences_for_energy == pytest.approx(3.0 / 0.0006)
    assert summary.break_even_days(int8) == pytest.approx(5.0)
    assert summary.break_even_words(int8).startswith("pays off after 5,000 inferences")


def test_a_variant_that_saves_nothing_never_breaks_even(summary):
    pruned = figures(summary, "pruned")
    assert pruned.break_even.never
    assert summary.break_even_words(pruned).startswith("never")
    assert summary.lifetime_saving(pruned) is None


def test_a_saving_its_trials_did_not_measure_is_not_projected(summary):
    import dataclasses

    from joulemeter.reports.confidence import RatioInterval

    noisy = RatioInterval(ratio=0.4, low=0.2, high=1.3, baseline_trials=3, candidate_trials=3,
                          model_band_included=False)
    int8 = dataclasses.replace(figures(summary, "int8"), interval=noisy)
    assert summary.lifetime_saving(int8) is None  # 3 J lower on average, but within the noise
    others = [v for v in summary.variants if v.variant != "int8"]
    page = render_compression_html(dataclasses.replace(summary, variants=[*others, int8]))
    projection = page[page.index("Lifetime projection"):]
    assert "no saving measured beyond noise" in projection
    assert "Switching to int8 saves" not in page


def test_a_variant_without_a_production_run_says_so_instead_of_assuming_zero(summary):
    distilled = figures(summary, "distilled")
    assert distilled.production is None and distilled.break_even is None
    assert distilled.lifetime_energy_j is None
    assert summary.break_even_words(distilled) == "the energy to make it was not metered"


def test_lifetime_projection_is_energy_per_inference_times_volume_plus_production(summary, factors):
    full, int8 = figures(summary, "full"), figures(summary, "int8")
    served = QUERIES_PER_DAY * DAYS  # 10,000 inferences
    assert full.serving.energy_j == pytest.approx(0.001 * served)
    assert full.serving.provenance == "estimated"
    kwh = 0.001 * served / 3.6e6  # PUE 1.0, the default "measured at the device"
    assert full.serving.energy_kwh == pytest.approx(kwh)
    assert full.serving.kg_co2e == pytest.approx(kwh * 400.0 / 1000)
    assert full.serving.cost == pytest.approx(kwh * 0.25)
    assert int8.lifetime_energy_j == pytest.approx(3.0 + 0.0004 * served)
    # 10 J serving full − (4 J serving int8 + 3 J making it) = 3 J saved
    assert summary.lifetime_saving(int8).energy_j == pytest.approx(3.0)


def test_training_run_is_kept_apart_and_not_charged_to_a_variant(summary):
    assert summary.training.metadata["kind"] == "training"
    assert figures(summary, "full").production is None


def test_a_missing_baseline_is_a_clear_error(factors):
    from joulemeter.meter.errors import ReportError

    with pytest.raises(ReportError, match="baseline variant 'full'"):
        summarise_compression([make_run("int8", 1.0, inferences=10)], factors=factors)


def test_report_has_the_study_sections_and_the_skipped_variants(summary):
    page = render_compression_html(summary)
    for heading in (
        "Comparison",
        "Models",
        "Break-even of each compression",
        "Lifetime projection",
        "Variants not built here",
        "Factors and sources",
    ):
        assert f">{heading}<" in page
    assert "Accuracy against energy, Pareto frontier drawn" in page  # the Pareto plot
    assert "Cumulative energy of each variant" in page  # the break-even plot
    assert "pays off after 5,000 inferences" in page
    assert "no native fp16 on this CPU" in page
    assert "Estimates, not measurements" not in page  # counter runs: no estimate banner


def test_report_says_prominently_when_energy_is_estimated(factors):
    inference = [
        make_run("full", 10.0, inferences=10_000, provenance=Provenance.ESTIMATED),
        make_run("int8", 4.0, inferences=10_000, provenance=Provenance.ESTIMATED),
    ]
    page = render_compression_html(summarise_compression(inference, factors=factors))
    banner = page.index("Estimates, not measurements")
    assert banner < page.index(">Comparison<")  # before any figure
    assert "test estimate: utilisation model" in page


def test_report_escapes_names_and_fetches_nothing(factors):
    hostile = "<script>alert(1)</script>"
    inference = [
        make_run("full", 10.0, inferences=10_000, name=hostile),
        make_run(hostile, 4.0, inferences=10_000),
    ]
    page = render_compression_html(summarise_compression(inference, factors=factors))
    assert hostile not in page and "&lt;script&gt;" in page
    assert not re.search(r"(src|href)\s*=\s*[\"']?https?:", page)
    assert "<script" not in page


# -- the command -----------------------------------------------------------------------


def test_demo_refuses_an_unknown_country_before_doing_any_work(tmp_path, monkeypatch):
    monkeypatch.setenv("JOULEMETER_LEDGER", str(tmp_path / "ledger.db"))
    result = CliRunner().invoke(
        app, ["demo", "--quick", "--country", "Atlantis", "-o", str(tmp_path / "r.html")]
    )
    assert result.exit_code == 2
    assert "Atlantis" in result.output
    assert not (tmp_path / "r.html").exists() and not (tmp_path / "ledger.db").exists()


def test_demo_refuses_an_unknown_device(tmp_path):
    result = CliRunner().invoke(app, ["demo", "--device", "tpu", "-o", str(tmp_path / "r.html")])
    assert result.exit_code == 2
    assert "auto, cpu, cuda" in result.output


@pytest.mark.slow
def test_quick_demo_writes_the_report_and_every_run_to_the_ledger(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from joulemeter.meter.store import open_ledger

    ledger = tmp_path / "ledger.db"
    monkeypatch.setenv("JOULEMETER_LEDGER", str(ledger))
    report = tmp_path / "out" / "report.html"
    result = CliRunner().invoke(
        app,
        [
            "demo",
            "--quick",
            "-o",
            str(report),
            "--country",
            "FR",
            "--queries-per-day",
            "5000",
            "--days",
            "30",
        ],
    )
    assert result.exit_code == 0, result.output
    assert str(report) in result.output.replace("\n", "")
    page = report.read_text(encoding="utf-8")
    for heading in ("Comparison", "Break-even of each compression", "Lifetime projection"):
        assert f">{heading}<" in page
    assert "Accuracy against energy, Pareto frontier drawn" in page
    assert "5,000 inferences a day for 30 days" in page
    assert "France" in page

    with open_ledger(ledger) as store:
        runs = store.list_runs(project="demo")
    inference = {r.metadata["variant"] for r in runs if r.metadata.get("kind") == "inference"}
    made = {r.metadata["variant"] for r in runs if r.metadata.get("kind") == "production"}
    assert {"full", "pruned", "int8", "distilled"} <= inference
    assert inference - {"full"} == made  # every variant's production energy was metered
    assert [r.metadata["variant"] for r in runs if r.metadata.get("kind") == "training"] == ["full"]
    for run in runs:
        if run.metadata.get("kind") == "inference":
            steady = next(w for w in run.windows if w.name == "inference")
            assert steady.duration_s >= 1.0  # long enough for a 100 ms sampler


def test_report_warns_when_repeated_trials_disagree(factors):
    inference = [
        make_run("full", 10.0, inferences=10_000),
        make_run("int8", 4.0, inferences=10_000),
    ]
    inference[1].metadata["trial_energy_spread"] = 3.0
    page = render_compression_html(summarise_compression(inference, factors=factors))
    assert "disagreed by up to 3.0×" in page
    inference[1].metadata["trial_energy_spread"] = 1.1
    page = render_compression_html(summarise_compression(inference, factors=factors))
    assert "disagreed" not in page
