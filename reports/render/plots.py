"""Report plots as inline SVG (crisp at any width, text searchable and selectable), drawn
with matplotlib's own canvases (no pyplot, no display, the user's backend untouched).

Large sample series are reduced to a min/max envelope per horizontal pixel bucket, so a
run with a million samples plots in well under a second.
"""

from __future__ import annotations

import io
import re
from typing import TYPE_CHECKING

from joulemeter.meter.run import Run
from joulemeter.reports.render import formatting as fmt
from joulemeter.reports.render._tables import (
    one_level,
    run_label,
    window_domains,
    window_groups,
)

if TYPE_CHECKING:
    import numpy
    from matplotlib.figure import Figure

    from joulemeter.reports.compare import Comparison

BUCKETS = 800  # envelope buckets across the plot, about one per pixel column
MAX_BARS = 25  # windows shown in the energy-by-window chart
_WIDTH_IN, _HEIGHT_IN, _DPI = 10.0, 3.6, 100
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")
_SHADES = ("#e8eef7", "#f7efe2", "#e7f3e7", "#f3e6f3", "#eeeeee")


def power_over_time(run: Run, *, buckets: int = BUCKETS) -> str | None:
    """Power of each domain over time, windows shaded and gaps hatched; None without samples."""
    series = _power_series(run)
    if not series:
        return None
    figure = new_figure()
    ax = figure.subplots()
    for i, (domain, (t, p)) in enumerate(series.items()):
        colour = PALETTE[i % len(PALETTE)]
        centres, low, high, mean = envelope(t, p, buckets)
        if len(centres) < len(t):  # reduced: show the spread and the mean
            ax.fill_between(centres, low, high, color=colour, alpha=0.25, linewidth=0)
            ax.plot(centres, mean, color=colour, linewidth=1.0, label=literal(domain))
        else:
            ax.plot(t, p, color=colour, linewidth=1.0, label=literal(domain))
    _shade_windows(ax, run)
    _hatch_gaps(ax, run)
    ax.set_xlabel("time since start (s)")
    ax.set_ylabel("power (W)")
    ax.set_ylim(bottom=0)
    handles, labels = ax.get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", fontsize="small", ncols=6)
    ax.set_title("Power over time")
    return to_svg(figure)


def energy_by_window(run: Run) -> str | None:
    """Stacked bars: energy of each window of one nesting level (never a window beside its
    own children, which would count them twice) split by domain; None without windows."""
    groups, parent = one_level(window_groups(run))
    if not groups:
        return None
    title = "Energy by window and domain" + (f", inside {parent}" if parent else "")
    if len(groups) > MAX_BARS:
        title += f" ({MAX_BARS} of {len(groups)} windows, most energy first)"
        groups = sorted(groups, key=lambda g: g.total_energy_j, reverse=True)[:MAX_BARS]
    domains = window_domains(groups)
    scale, unit = _energy_unit(max(g.total_energy_j for g in groups))
    figure = new_figure()
    ax = figure.subplots()
    positions = list(range(len(groups)))
    bottom = [0.0] * len(groups)
    for i, domain in enumerate(domains):
        heights = [g.energy_j.get(domain, 0.0) / scale for g in groups]
        ax.bar(positions, heights, bottom=bottom, color=PALETTE[i % len(PALETTE)], label=literal(domain))
        bottom = [b + h for b, h in zip(bottom, heights)]
    ax.set_xticks(positions, [literal(g.label) for g in groups], rotation=30, ha="right", fontsize="small")
    ax.set_ylabel(f"energy ({unit})")
    ax.legend(fontsize="small")
    ax.set_title(title)
    return to_svg(figure)


def comparison_bars(comparison: Comparison) -> str:
    """Horizontal bars of the compared figure per run, the baseline in grey, ratios written on."""
    from joulemeter.reports.render.wording import verdict_words

    frame = comparison.frame
    figure = new_figure(height=max(1.6, 0.5 * len(frame) + 1.0))
    ax = figure.subplots()
    values_j = [0.0 if _nan(v) else float(v) for v in frame[comparison.compared_column]]
    scale, unit = _energy_unit(max(values_j + [0.0]))
    values = [v / scale for v in values_j]
    colours = ["#9e9e9e" if rid == comparison.baseline_id else PALETTE[0] for rid in frame["id"]]
    positions = list(range(len(frame)))[::-1]
    ax.barh(positions, values, color=colours)
    notes = []
    for y, value, ratio, provenance, rid in zip(
        positions, values, frame["ratio"], frame["provenance"], frame["id"]
    ):
        note = "baseline" if rid == comparison.baseline_id else verdict_words(ratio, comparison.interval(rid))
        notes.append(ax.annotate(f" {fmt.energy(value * scale)} · {note} · {provenance}", (value, y),
                                 va="center", fontsize="small"))
    ax.set_yticks(positions, [_run_label(row) for _, row in frame.iterrows()], fontsize="small")
    ax.set_xlabel(_axis_label(comparison, unit))
    ax.set_xlim(0, max(values + [0.0]) * 1.7 or 1.0)
    ax.set_title(literal(f"Energy {comparison.per_label}, baseline in grey".replace("  ", " ")))
    _widen_for(figure, ax, notes)
    return to_svg(figure)


def _widen_for(figure: Figure, ax, notes: list) -> None:
    """Widen the x axis until every note written beside its bar ends inside the axes: a
    long verdict ("no measurable difference (0.95–1.0×)") would run past the frame."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    for _ in range(3):  # the notes keep their size in pixels while the data scale changes
        canvas.draw()
        renderer = canvas.get_renderer()
        frame = ax.get_window_extent(renderer)
        right = max((note.get_window_extent(renderer).x1 for note in notes), default=0.0)
        if right <= frame.x1 - 4:
            return
        low, high = ax.get_xlim()
        ax.set_xlim(low, high * (right + 8 - frame.x0) / frame.width)


def pareto_scatter(comparison: Comparison, y: str = "accuracy") -> str | None:
    """`y` (accuracy by default, higher is better) against the compared energy figure, the
    Pareto frontier highlighted; None when no run has `y`."""
    figure = pareto_figure(comparison, y)
    return None if figure is None else to_svg(figure)


def pareto_figure(comparison: Comparison, y: str = "accuracy") -> Figure | None:
    """The Pareto scatter as a figure: only points another run beats on both axes (by more
    than its trials' interval, where it has trials) are grey ("beaten on both axes"), tied
    points share one label, and labels overlap neither each other nor the points."""
    import pandas

    frame = comparison.frame
    if y not in frame.columns or frame[y].isna().all():
        return None
    x = comparison.compared_column
    on_frontier = comparison.frontier(y)
    xs = pandas.to_numeric(frame[x], errors="coerce")
    ys = pandas.to_numeric(frame[y], errors="coerce")
    known = xs.notna() & ys.notna()
    scale, unit = _energy_unit(xs.max())
    figure = new_figure()
    ax = figure.subplots()
    beaten = known & ~on_frontier
    if beaten.any():
        ax.scatter(xs[beaten] / scale, ys[beaten], color="#9e9e9e", label="beaten on both axes", zorder=2)
    order = xs[on_frontier].sort_values().index
    ax.plot(xs[order] / scale, ys[order], color=PALETTE[3], marker="o", label="Pareto frontier",
            zorder=3)
    ax.margins(x=0.25, y=0.12)  # room for the run names written beside the points
    ax.set_xlabel(_axis_label(comparison, unit))
    label = fmt.metadata_label(y)
    ax.set_ylabel(literal(label))
    if fmt.is_fraction_key(y):
        percent_axis(ax.yaxis)
    ax.legend(fontsize="small", loc="lower right")
    ax.set_title(literal(f"{label.capitalize()} against energy: upper left is better"))
    points: dict[tuple[float, float], list[str]] = {}
    for i, row in frame[known].iterrows():
        points.setdefault((float(xs[i]) / scale, float(ys[i])), []).append(_run_label(row))
    _label_without_overlap(figure, ax, {p: ", ".join(dict.fromkeys(n)) for p, n in points.items()})
    return figure


def _label_without_overlap(figure: Figure, ax, labels: dict[tuple[float, float], str]) -> None:
    """Write each label beside its point, moved up or down in steps of its own height until
    it overlaps no point and no label already placed (a leader line joins a moved label)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.text import Text
    from matplotlib.transforms import Bbox

    canvas = FigureCanvasAgg(figure)
    canvas.draw()  # settle the constrained layout first, then freeze it: positions stay put
    figure.set_layout_engine("none")
    renderer = canvas.get_renderer()
    marker = 5.0  # display pixels around each point kept free of text (markers are ~8 px wide)
    placed: list = [
        Bbox.from_extents(x - marker, y - marker, x + marker, y + marker)
        for x, y in ax.transData.transform(list(labels))
    ]
    for (px, py), text in sorted(labels.items(), key=lambda item: -item[0][1]):
        step = 0
        while True:
            dy = _offset(step)
            note = ax.annotate(
                text, (px, py), xytext=(5, dy), textcoords="offset points", fontsize="small",
                va="center", annotation_clip=False,
                arrowprops={"arrowstyle": "-", "color": "#9e9e9e", "lw": 0.6} if dy else None,
            )
            note.update_positions(renderer)
            box = Text.get_window_extent(note, renderer).expanded(1.0, 1.15)  # the text, not its line
            if not any(box.overlaps(other) for other in placed) or step > 40:
                placed.append(box)
                break
            note.remove()
            step += 1


def _offset(step: int) -> float:
    """Vertical offsets in points tried in turn: 0, -11, +11, -22, +22, …"""
    distance = 11 * ((step + 1) // 2)
    return -distance if step % 2 else distance


def _axis_label(comparison: Comparison, unit: str) -> str:
    return literal(" ".join(filter(None, ["energy", comparison.per_label, f"({unit})"])))


def envelope(
    t: numpy.ndarray, p: numpy.ndarray, buckets: int
) -> tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray, numpy.ndarray]:
    """Bucket centres with min, max and mean of `p` per time bucket (NaN where a bucket has
    no valid value, so gaps stay visible); the input unchanged if it is already small."""
    import numpy

    if len(t) <= 2 * buckets:
        return t, p, p, p
    edges = numpy.linspace(t[0], t[-1], buckets + 1)
    index = numpy.clip(numpy.searchsorted(edges, t, side="right") - 1, 0, buckets - 1)
    valid = ~numpy.isnan(p)
    counts = numpy.bincount(index[valid], minlength=buckets)
    sums = numpy.bincount(index[valid], weights=p[valid], minlength=buckets)
    low = numpy.full(buckets, numpy.inf)
    high = numpy.full(buckets, -numpy.inf)
    numpy.minimum.at(low, index[valid], p[valid])
    numpy.maximum.at(high, index[valid], p[valid])
    empty = counts == 0
    with numpy.errstate(invalid="ignore", divide="ignore"):
        mean = sums / counts
    low[empty] = high[empty] = mean[empty] = numpy.nan
    centres = (edges[:-1] + edges[1:]) / 2
    return centres, low, high, mean


def _power_series(run: Run) -> dict[str, tuple[numpy.ndarray, numpy.ndarray]]:
    """Per domain, time-sorted arrays of t_s and power_w (NaN where not read)."""
    import numpy

    n = len(run.samples)
    if n == 0:
        return {}
    t = numpy.fromiter((s.t_s for s in run.samples), dtype=float, count=n)
    p = numpy.array([s.power_w for s in run.samples], dtype=float)
    names = numpy.array([s.domain for s in run.samples], dtype=object)
    order = numpy.argsort(t, kind="stable")
    t, p, names = t[order], p[order], names[order]
    series = {}
    for domain in dict.fromkeys(names.tolist()):
        mask = names == domain
        if not numpy.isnan(p[mask]).all():
            series[domain] = (t[mask], p[mask])
    return series


def _shade_windows(ax, run: Run) -> None:
    """Shade the top-level windows, one colour per window name."""
    spans: dict[str, list[tuple[float, float]]] = {}
    for w in run.windows:
        if "/" not in w.path and w.end_s is not None:
            spans.setdefault(w.name, []).append((w.start_s, w.end_s - w.start_s))
    transform = ax.get_xaxis_transform()  # x in data, y in axes fraction
    for i, (name, bars) in enumerate(spans.items()):
        ax.broken_barh(
            bars, (0, 1), transform=transform, color=_SHADES[i % len(_SHADES)], zorder=0, label=literal(name)
        )


def _hatch_gaps(ax, run: Run) -> None:
    """Hatch the spans where a domain could not be read."""
    end = run.duration_s
    spans = [
        (g.start_s, (g.end_s if g.end_s is not None else end or g.start_s) - g.start_s)
        for g in run.gaps
    ]
    if spans:
        ax.broken_barh(
            spans,
            (0, 1),
            transform=ax.get_xaxis_transform(),
            facecolor="none",
            edgecolor="#d62728",
            hatch="///",
            linewidth=0,
            zorder=1,
            label="not read (gap)",
        )


def percent_axis(axis) -> None:
    """Tick labels of a fraction's axis as percentages, as every table writes them (96 %, not 0.96)."""
    from matplotlib.ticker import PercentFormatter

    axis.set_major_formatter(PercentFormatter(xmax=1.0, symbol=" %"))


def literal(text: str) -> str:
    """`text` drawn as written: its dollar signs escaped, so matplotlib never parses it as math."""
    return text.replace("$", r"\$")


def _energy_unit(largest_j: float) -> tuple[float, str]:
    """Divisor and unit that keep an energy axis's numbers short: µJ, mJ, J, kJ, MJ or GJ."""
    if _nan(largest_j) or largest_j <= 0:
        return 1.0, "J"
    for scale, unit in ((1e9, "GJ"), (1e6, "MJ"), (1e3, "kJ"), (1.0, "J"), (1e-3, "mJ")):
        if largest_j >= scale:
            return scale, unit
    return 1e-6, "µJ"


def _run_label(row) -> str:
    return literal(run_label(str(row["name"]), row.get("variant")))


def _nan(value) -> bool:
    return value is None or value != value  # NaN is the only value unequal to itself


def new_figure(height: float = _HEIGHT_IN) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(_WIDTH_IN, height), dpi=_DPI, layout="constrained")


def to_svg(figure: Figure) -> str:
    """The figure as an <svg> element to put inline in HTML: text kept as text (quotes
    escaped too, which matplotlib leaves), and every id prefixed with a digest of the
    drawing so two plots on one page never share one."""
    import hashlib

    import matplotlib
    from matplotlib.backends.backend_svg import FigureCanvasSVG

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "joulemeter"}):
        FigureCanvasSVG(figure).print_svg(buffer)
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]  # drop the XML declaration and DOCTYPE
    svg = re.sub(r"(<text\b[^>]*>)([^<]*)(</text>)", _quote_text, svg)
    prefix = "p" + hashlib.sha1(svg.encode()).hexdigest()[:8] + "-"
    svg = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}{m[1]}"', svg)
    return re.sub(r"(href=\"#|url\(#)([^\")]+)", lambda m: f"{m[1]}{prefix}{m[2]}", svg)


def _quote_text(match: re.Match[str]) -> str:
    """A <text> element with the quotes of its content escaped as well."""
    content = match[2].replace('"', "&quot;").replace("'", "&#39;")
    return f"{match[1]}{content}{match[3]}"
