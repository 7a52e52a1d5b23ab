"""Report plots: inline SVG of the right size, text kept as text, min/max envelopes of big series, no side effects."""

from __future__ import annotations

import re
import subprocess
import sys
from xml.sax.saxutils import escape

import numpy
import pytest

from joulemeter.meter.run import Window
from joulemeter.reports.compare import compare
from joulemeter.reports.render import plots
from tests.test_compare import FACTORS_KW, epoch, make_run


@pytest.fixture(scope="module")
def factors():
    from joulemeter.reports.factors import resolve_factors

    return resolve_factors(**FACTORS_KW)


def svg_size(svg: str) -> tuple[float, float]:
    """Width and height in inches of an inline <svg> element (its width/height in points)."""
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    width, height = re.search(r'<svg[^>]*\swidth="([\d.]+)pt"[^>]*\sheight="([\d.]+)pt"', svg).groups()
    return round(float(width) / 72, 2), round(float(height) / 72, 2)


def test_power_over_time_is_10_by_3_6_inches():
    run = make_run("a1", "run", windows=[Window("train", "train", 10.0, 60.0)])
    assert svg_size(plots.power_over_time(run)) == (10.0, 3.6)


def test_power_over_time_without_samples_is_none():
    run = make_run("a2", "run")
    run.samples = []
    assert plots.power_over_time(run) is None


def test_power_over_time_of_a_long_run_plots_at_the_same_size():
    run = make_run("a3", "long", samples_per_domain=50_000, duration_s=5000.0)
    assert svg_size(plots.power_over_time(run, buckets=400)) == (10.0, 3.6)


def test_envelope_gives_min_max_and_mean_per_bucket():
    t = numpy.arange(10_000, dtype=float)
    p = t % 100  # every bucket of 1,000 samples holds ten full 0..99 ramps
    centres, low, high, mean = plots.envelope(t, p, 10)
    assert len(centres) == 10
    assert low.tolist() == [0.0] * 10
    assert high.tolist() == [99.0] * 10
    assert mean.tolist() == pytest.approx([49.5] * 10)
    assert centres[0] == pytest.approx(9999 / 20)  # middle of the first of ten equal buckets


def test_envelope_leaves_unreadable_buckets_empty_so_gaps_show():
    t = numpy.arange(10_000, dtype=float)
    p = numpy.ones_like(t)
    p[3000:4000] = numpy.nan  # exactly the fourth bucket (edges every 999.9 s)
    _, low, high, mean = plots.envelope(t, p, 10)
    assert numpy.isnan([low[3], high[3], mean[3]]).all()
    assert not numpy.isnan(numpy.delete(mean, 3)).any()


def test_envelope_returns_small_series_unchanged():
    t = numpy.arange(50, dtype=float)
    p = t * 2
    centres, low, high, mean = plots.envelope(t, p, 100)
    assert centres is t and low is p and high is p and mean is p


def test_energy_by_window_draws_stacked_bars_or_nothing():
    assert plots.energy_by_window(make_run("b1", "no windows")) is None
    windows = [epoch(i, i * 10.0, 10.0, 100.0) for i in range(40)]
    windows += [Window(f"step-{i}", f"step-{i}", 0.0, 1.0, {"gpu:0": float(i)}) for i in range(30)]
    assert svg_size(plots.energy_by_window(make_run("b2", "many", windows=windows)))[0] == 10.0


def test_comparison_bars_and_pareto_scatter_are_svgs(factors):
    runs = [
        make_run("c1", "full", energy_j=3000.0, units={"inferences": 100},
                 metadata={"accuracy": 0.91}),
        make_run("c2", "pruned", energy_j=1000.0, units={"inferences": 100},
                 metadata={"accuracy": 0.90}),
        make_run("c3", "worse", energy_j=2000.0, units={"inferences": 100},
                 metadata={"accuracy": 0.80}),
    ]
    comparison = compare(runs, per="1000", factors=factors)
    assert svg_size(plots.comparison_bars(comparison)) == (10.0, 2.5)  # 0.5 in per run + 1 in
    assert svg_size(plots.pareto_scatter(comparison)) == (10.0, 3.6)


def test_pareto_scatter_needs_the_y_column(factors):
    comparison = compare([make_run("d1", "a"), make_run("d2", "b")], factors=factors)
    assert plots.pareto_scatter(comparison) is None


def test_importing_the_report_layer_loads_neither_matplotlib_nor_pandas():
    code = (
        "import sys, joulemeter.reports.render, joulemeter.reports.render.plots, joulemeter.reports.compare;"
        "heavy = {'matplotlib', 'pandas'} & set(sys.modules);"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


MATH_TEXT = ["$\\frac$", "a $^$ b", "cost $5 or $6"]


@pytest.mark.parametrize("hostile", MATH_TEXT)
def test_names_that_look_like_matplotlib_math_are_drawn_literally_not_parsed(factors, hostile):
    window = Window(hostile, hostile, 10.0, 60.0, energy_j={"gpu:0": 5.0}, units={hostile: 3.0})
    run = make_run("m1", hostile, windows=[window])
    other = make_run("m2", hostile, energy_j=500.0, metadata={"variant": hostile, hostile: 0.9})
    assert svg_size(plots.power_over_time(run))[0] == 10.0
    assert plots.energy_by_window(run) is not None
    result = compare([run, other], run, factors=factors)
    assert escape(hostile) in plots.comparison_bars(result)  # drawn as text, XML-escaped
    assert plots.pareto_scatter(result, y=hostile).startswith("<svg")
    from joulemeter.reports.render import render

    assert "<figure class=\"plot\"" in render([run, other], "html", factors=factors)


def test_literal_text_keeps_every_dollar_sign_as_written():
    from matplotlib.text import Text

    text = Text(0, 0, plots.literal("a $^$ b"))
    assert text._preprocess_math(text.get_text()) == ("a $^$ b", False)


def test_pareto_labels_never_overlap_and_tied_points_share_one(factors):
    """Six runs, three of them tied and two a hair apart: one label per place, none overlapping."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.text import Text

    figures = [("full", 100.0, 0.95), ("pruned-a", 60.0, 0.93), ("pruned-b", 60.0, 0.93),
               ("pruned-c", 60.0, 0.93), ("int8", 61.0, 0.931), ("student", 30.0, 0.80)]
    runs = [make_run(f"{i:032x}", name, energy_j=j, metadata={"accuracy": acc})
            for i, (name, j, acc) in enumerate(figures)]
    figure = plots.pareto_figure(compare(runs, factors=factors))
    renderer = FigureCanvasAgg(figure).get_renderer()
    ax = figure.axes[0]
    labels = [t for t in ax.texts if t.get_text().strip()]
    texts = sorted(t.get_text().strip() for t in labels)
    assert texts == ["full", "int8", "pruned-a, pruned-b, pruned-c", "student"]
    boxes = [Text.get_window_extent(t, renderer) for t in labels]  # the text, without leader lines
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    points = ax.transData.transform([(j / 1.0, acc) for _, j, acc in figures])
    assert not any(box.contains(x, y) for box in boxes for x, y in points)


def test_pareto_calls_beaten_only_the_points_that_are(factors):
    """All on the frontier: nothing is drawn as "beaten on both axes"."""
    runs = [make_run(f"{i:032x}", name, energy_j=j, metadata={"accuracy": acc})
            for i, (name, j, acc) in enumerate([("big", 100.0, 0.95), ("small", 30.0, 0.80)])]
    figure = plots.pareto_figure(compare(runs, factors=factors))
    legend = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    assert legend == ["Pareto frontier"]
    runs.append(make_run(f"{9:032x}", "worse", energy_j=120.0, metadata={"accuracy": 0.7}))
    legend = [t.get_text() for t in plots.pareto_figure(compare(runs, factors=factors)).axes[0].get_legend().get_texts()]
    assert legend == ["beaten on both axes", "Pareto frontier"]


def test_pareto_counts_a_difference_within_the_trials_noise_as_a_tie(factors):
    """pruned uses 2 % more energy than full at the same accuracy, but their trials overlap:
    it is not "beaten"; int8 is measurably cheaper than full, so full is."""
    from tests.test_compare import _with_trials

    full = _with_trials("a" * 32, "full", [10.0, 10.6, 9.5, 10.3], metadata={"accuracy": 0.97})
    pruned = _with_trials("b" * 32, "pruned", [10.4, 9.7, 10.8, 10.1], metadata={"accuracy": 0.97})
    int8 = _with_trials("c" * 32, "int8", [5.0, 5.1, 4.9, 5.05], metadata={"accuracy": 0.98})
    frontier = compare([full, pruned, int8], per="1000", factors=factors).frontier()
    assert list(frontier) == [False, False, True]  # both beaten by int8, measurably
    frontier = compare([full, pruned], per="1000", factors=factors).frontier()
    assert list(frontier) == [True, True]  # a tie: neither beats the other
