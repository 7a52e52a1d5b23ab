"""Report rendering: self-contained and escaped HTML, Markdown, LaTeX, JSON and CSV.

Runs come from tests.test_compare.make_run (3:1 GPU/CPU split, counter provenance);
factors are explicit (400 g/kWh, PUE 1.5, 0.30 EUR/kWh), so figures are hand arithmetic.
"""

from __future__ import annotations

import copy
import io
import json
import re

import pytest

from joulemeter.meter.errors import ReportError
from joulemeter.meter.run import Gap, Provenance, Run, Window
from joulemeter.reports.render import render
from joulemeter.reports.render.latex import latex_escape
from joulemeter.reports.render.markdown import md_escape
from tests.test_compare import FACTORS_KW, epoch, make_run

HOSTILE = "<script>alert(1)</script> \"quoted\" 'single' & more"


@pytest.fixture(scope="module")
def factors():
    from joulemeter.reports.factors import resolve_factors

    return resolve_factors(**FACTORS_KW)


@pytest.fixture(scope="module")
def training_run() -> Run:
    windows = [epoch(1, 0.0, 40.0, 400.0), epoch(2, 40.0, 40.0, 420.0)]
    return make_run("0123456789abcdef", "bert fine-tune", energy_j=3600.0, windows=windows,
                    units={"samples": 2000.0}, metadata={"variant": "full", "accuracy": 0.91})


@pytest.fixture(scope="module")
def hostile_run() -> Run:
    run = make_run("fedcba9876543210", HOSTILE, energy_j=1800.0, units={"samples": 2000.0},
                   metadata={"variant": HOSTILE, "accuracy": 0.9, HOSTILE: HOSTILE},
                   windows=[Window(HOSTILE, HOSTILE, 0.0, 10.0, {"gpu:0": 5.0})])
    run.tags = [HOSTILE]
    return run


@pytest.fixture(scope="module")
def single_html(training_run, factors) -> str:
    return render(training_run, "html", factors=factors)


@pytest.fixture(scope="module")
def hostile_html(training_run, hostile_run, factors) -> str:
    return render([training_run, hostile_run], "html", factors=factors, per="1000")


# -- HTML ------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["single_html", "hostile_html"])
def test_html_fetches_nothing_from_anywhere(which, request):
    html = request.getfixturevalue(which)
    assert "<script" not in html.lower()
    assert "<link" not in html.lower()
    assert "@import" not in html
    assert not re.search(r"url\((?!#)", html)  # only the plots' own clip paths: url(#…)
    assert not re.search(r"""(src|href|action|srcset)\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    assert not re.findall(r"""\ssrc\s*=""", html)  # plots are inline SVG, nothing is loaded
    for reference in re.findall(r'href\s*=\s*"([^"]*)"', html):
        assert reference.startswith("#")
    assert "Content-Security-Policy" in html and "default-src 'none'" in html


def test_hostile_run_names_tags_and_metadata_come_out_escaped(hostile_html):
    assert "<script>alert(1)</script>" not in hostile_html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &quot;quoted&quot; &#x27;single&#x27; &amp; more" in (
        hostile_html
    )


def test_html_of_one_run_shows_every_figure_with_its_provenance(single_html):
    cards = single_html.split('<div class="card">')[1:]
    assert len(cards) == 10  # market-based emissions beside location-based (GHG Protocol Scope 2)
    assert "Emissions, market-based" in single_html
    for card in cards:
        assert re.search(r'class="prov prov-\w+"', card.split("</span></div>")[0])
    # 3,600 J × 1.5 PUE = 5,400 J = 0.0015 kWh; × 0.4 kg/kWh = 0.6 g; × 0.30 EUR = 0.00045 EUR
    assert "3.60 kJ (1.00 Wh)" in single_html
    assert "1.50 Wh" in single_html
    assert "600 mg CO2e" in single_html
    assert "0.000450 EUR" in single_html


def test_a_run_without_an_idle_baseline_gets_no_idle_cards(training_run, factors):
    run = copy.deepcopy(training_run)
    for domain_energy in run.energy.values():
        domain_energy.idle_power_w = None
    html = render(run, "html", factors=factors)
    assert len(html.split('<div class="card">')[1:]) == 8
    assert "Idle baseline" not in html and "Attributable energy" not in html


def test_html_of_one_run_has_plots_windows_domains_and_sourced_factors(single_html):
    assert single_html.count('<figure class="plot"') == 2  # power over time, energy by window
    assert "Energy by window" in single_html and "train/epoch ×2" in single_html
    assert "NVML total energy counter" in single_html
    footer = single_html.split("Factors and sources")[1]
    assert "400 g CO2e/kWh" in footer and "user-supplied" in footer
    assert "as given" in footer  # the PUE and price were given, not looked up
    assert "≈" in single_html  # the best equivalence


def test_html_of_several_runs_has_ratios_bars_and_pareto(hostile_html):
    assert "Comparison" in hostile_html
    assert "2.0× less" in hostile_html  # 1,800 J against 3,600 J, same samples counted
    assert hostile_html.count('<figure class="plot"') == 2  # bars and Pareto scatter


def test_html_notes_gaps_and_an_interrupted_status(factors):
    run = make_run("1111222233334444", "killed")
    run.status = run.status.INTERRUPTED
    run.gaps = [Gap("gpu:0", 10.0, 12.5, "NVML: GPU is lost")]
    html = render(run, "html", factors=factors)
    assert "status interrupted" in html
    assert "gpu:0 not read from 10.0 s to 12.5 s: NVML: GPU is lost" in html


# -- Markdown --------------------------------------------------------------------------


def test_markdown_escapes_html_and_table_pipes():
    assert md_escape("a | b <i>x</i> *y*") == r"a \| b &lt;i\>x&lt;/i\> \*y\*"


def test_markdown_keeps_a_plain_ampersand_and_escapes_only_one_that_starts_an_entity():
    assert md_escape("IEA Global Energy & CO2") == "IEA Global Energy & CO2"
    assert md_escape("R&D &amp; &#38;") == r"R&D &amp;amp; &amp;\#38;"


def test_a_markdown_report_cites_its_sources_without_html_entities(training_run):
    text = render(training_run, "md")  # the world average, cited "IEA Global Energy & CO2 Status Report"
    assert "Energy & CO2" in text and "&amp;" not in text


def test_markdown_tables_keep_their_columns_with_hostile_names(training_run, factors):
    run = make_run("9999888877776666", "a | b <script>", energy_j=1000.0)
    text = render([training_run, run], "md", factors=factors)
    assert "<script>" not in text
    for block in re.findall(r"((?:^\|.*\|\n)+)", text, re.M):
        widths = {len(re.findall(r"(?<!\\)\|", line)) for line in block.splitlines()}
        assert len(widths) == 1, block


def test_markdown_shows_provenance_next_to_figures(training_run, factors):
    text = render(training_run, "md", factors=factors)
    assert "| Emissions | 600 mg CO2e | counter |" in text
    assert "| Duration | 1 min 40 s | monotonic clock |" in text


# -- LaTeX -----------------------------------------------------------------------------


def test_latex_escape_turns_special_characters_into_commands():
    assert latex_escape(r"50% & $x_1$ #1 {a} ~^\ <b>") == (
        r"50\% \& \$x\_1\$ \#1 \{a\} \textasciitilde{}\textasciicircum{}\textbackslash{} "
        r"\textless{}b\textgreater{}"
    )


def test_latex_has_a_booktabs_table_and_a_citable_statement(factors):
    run = make_run("aaaabbbbccccdddd", "bert_base 50%", energy_j=3.6e6,
                   metadata={"task": "training"})
    text = render(run, "latex", factors=factors)
    for command in (r"\toprule", r"\midrule", r"\bottomrule", r"\begin{tabular}"):
        assert command in text
    assert r"bert\_base 50\%" in text and "bert_base 50%" not in text
    # 3.6 MJ = 1 kWh at the devices; × 1.5 PUE = 1.50 kWh; × 0.4 kg/kWh = 0.600 kg
    assert (r"Training \emph{bert\_base 50\%} used 1.50 kWh of electricity (measured by NVML "
            "total energy counter; RAPL package counter; provenance: counter") in text
    assert r"emitting 0.600 kg CO$_2$e at 400 g CO$_2$e/kWh" in text
    assert "user-supplied" in text


# -- JSON and CSV ----------------------------------------------------------------------


def test_json_round_trips_with_provenance_and_sourced_factors(training_run, factors):
    data = json.loads(render(training_run, "json", factors=factors))
    (entry,) = data["runs"]
    assert Run.from_dict(entry["run"]).total_energy_j == pytest.approx(3600.0)
    assert entry["run"]["samples"] is None  # samples are exported elsewhere
    footprint = entry["footprint"]
    assert footprint["provenance"] == "counter"
    assert footprint["energy_kwh"] == pytest.approx(3600.0 * 1.5 / 3.6e6)
    assert footprint["kg_co2e"] == pytest.approx(3600.0 * 1.5 / 3.6e6 * 0.4)
    assert {d["provenance"] for d in entry["run"]["domains"]} == {"counter"}
    assert all(f["provenance"] for f in entry["figures"])
    assert entry["per_unit"]["samples"]["j_per_unit"] == pytest.approx(1.8)
    assert data["factors"]["intensity_citation"]["source"] == "user-supplied"
    assert all(line["source"] for line in data["factor_sources"])
    assert data["comparison"] is None


def test_json_of_several_runs_carries_the_comparison(training_run, hostile_run, factors):
    data = json.loads(render([training_run, hostile_run], "json", factors=factors, per="sample"))
    rows = {row["id"]: row for row in data["comparison"]["rows"]}
    assert rows["fedcba9876543210"]["ratio"] == pytest.approx(0.5)


def test_csv_has_one_row_per_run_and_domain_with_hand_checked_co2e(training_run, factors):
    import pandas

    other = make_run("5555666677778888", "estimated", energy_j=1000.0,
                     provenance=Provenance.ESTIMATED)
    frame = pandas.read_csv(io.StringIO(render([training_run, other], "csv", factors=factors)))
    assert len(frame) == 4
    assert frame.groupby("run_id")["energy_j"].sum().to_dict() == pytest.approx(
        {"0123456789abcdef": 3600.0, "5555666677778888": 1000.0})
    gpu = frame[(frame.run_id == "0123456789abcdef") & (frame.domain == "gpu:0")].iloc[0]
    assert gpu["energy_j"] == pytest.approx(2700.0)
    assert gpu["kg_co2e"] == pytest.approx(2700.0 * 1.5 / 3.6e6 * 0.4)
    assert gpu["cost"] == pytest.approx(2700.0 * 1.5 / 3.6e6 * 0.30)
    assert set(frame[frame.run_id == "5555666677778888"]["provenance"]) == {"estimated"}
    assert set(frame["intensity_source"]) == {"user-supplied"}


def test_csv_keeps_a_run_without_domains(factors):
    import pandas

    empty = Run(id="run-without-domains", name="nothing measured")
    frame = pandas.read_csv(io.StringIO(render(empty, "csv", factors=factors)))
    assert frame["run_id"].tolist() == ["run-without-domains"]
    assert frame["energy_j"].isna().all()


# -- errors and scale ------------------------------------------------------------------


def test_unknown_format_lists_the_known_ones(training_run, factors):
    with pytest.raises(ReportError, match="html, md, latex, json, csv"):
        render(training_run, "pdf", factors=factors)


def test_rendering_a_run_that_used_no_energy_works_in_every_format(factors):
    empty = Run(id="0000", name="nothing measured")
    for fmt in ("html", "md", "latex", "json", "csv"):
        assert render(empty, fmt, factors=factors)


@pytest.mark.slow
def test_a_million_sample_run_renders_to_html(factors):
    from benchmarks.report_render import synthetic_run

    run = synthetic_run(1_000_000)
    html = render(run, "html", factors=factors)
    assert html.count('<figure class="plot"') == 2
    assert "one-million-samples" in html


def test_notes_every_run_shares_are_said_once_per_page():
    """No country given: the world-average note is the page's, not repeated per run."""
    from joulemeter.reports.factors import resolve_factors
    from joulemeter.reports.render import render
    from tests.test_compare import make_run

    runs = [make_run("a" * 32, "one"), make_run("b" * 32, "two")]
    factors = resolve_factors()  # no country: world average
    note = "no location recorded or given: emissions use the world-average grid intensity"
    for kind in ("html", "md", "json"):
        text = render(runs, kind, factors=factors)
        assert text.count(note) == 1, kind


@pytest.mark.parametrize("fmt_name", ["html", "md"])
def test_counted_work_is_shown_exactly_not_rounded(training_run, factors, fmt_name):
    run = copy.deepcopy(training_run)
    for window in run.windows:
        window.units = {"samples": 1437.0}
    text = render(run, fmt_name, factors=factors)
    assert "2,874 samples" in text and "2,870 samples" not in text  # the two epochs, one row
