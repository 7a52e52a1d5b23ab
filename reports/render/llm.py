"""LLM inference (joulemeter.reports.llm) in HTML: a section with the sweep's table and
its J/token curves against batch size, and a self-contained page around it.
"""

from __future__ import annotations

from collections.abc import Sequence

from joulemeter.meter.run import Run
from joulemeter.reports.factors import Factors
from joulemeter.reports.llm import Estimate, PointFigures, sweep_figures
from joulemeter.reports.render import formatting as fmt
from joulemeter.reports.render import html as page
from joulemeter.reports.render import plots
from joulemeter.reports.render._report import build_report


def render_llm_html(run: Run, *, factors: Factors | None = None, title: str | None = None) -> str:
    """A sweep run (integrations.llm.sweep_generation) as one self-contained HTML page."""
    report = build_report([run], factors=factors, title=title or f"LLM inference: {run.name}")
    return page.document(
        report.title,
        [
            f"<header><h1>{page.escape_text(report.title)}</h1>",
            page.header_line(report),
            "</header>",
            llm_section(run),
            *(page.run_section(rr, collapsed=True) for rr in report.runs),
            page.factors_footer(report),
        ],
    )


def llm_section(run: Run) -> str:
    """The sweep's figures per point and the J/token curves."""
    points = sweep_figures(run)
    meta = run.metadata
    rows = "".join(_row(p) for p in points)
    image = page.image(token_energy_plot(points), "Energy per token against batch size")
    provenance = "" if run.provenance is None else page.badge(run.provenance.value)
    return (
        "<section><h2>Energy per token</h2>"
        f"<p>{page.escape_text(meta.get('model', 'model'))} with "
        f"{page.escape_text(fmt.count(meta.get('parameters', 0)))} parameters "
        f"({page.escape_text(meta.get('dtype', '?'))} on {page.escape_text(meta.get('device', '?'))}) {provenance}. "
        "Prefill is the prompt's forward pass up to the first new token (its length is the time "
        "to first token); decode is every step after it. Per input token: prefill energy ÷ prompt "
        "tokens; per output token: the whole call ÷ new tokens; per decode token: decode energy ÷ "
        "tokens of decode steps. Figures are geometric means over the trials, ± the 95 % interval.</p>"
        + page.table(
            "<tr><th>Point</th><th>Batch</th><th>Input tokens</th><th>Output tokens</th>"
            "<th>J / input token</th><th>J / output token</th><th>J / decode token</th>"
            f"<th>Time to first token</th><th>Output tokens/s</th></tr>{rows}"
        )
        + f'<p class="meta">{page.escape_text(legend(points))}</p>{image}</section>'
    )


def point_words(point: PointFigures) -> str:
    """A sweep point's name in words: b4-in32-out16 -> 'batch 4, 32 input tokens, 16 output tokens'."""
    return (f"batch {fmt.count(point.batch_size)}, {fmt.count(point.input_length)} input tokens, "
            f"{fmt.count(point.new_tokens)} output tokens")


def legend(points: Sequence[PointFigures]) -> str:
    """The sweep's point names explained once, by the first point's example:
    'Point b1-in32-out32 = batch 1, 32 input tokens, 32 output tokens; the others alike.'"""
    others = "; the others alike" if len(points) > 1 else ""
    return f"Point {points[0].name} = {point_words(points[0])}{others}."


def _row(point: PointFigures) -> str:
    cells = [
        fmt.count(point.batch_size),
        fmt.count(point.input_length),
        fmt.count(point.new_tokens),
        _estimate(point.per_input_token_j),
        _estimate(point.per_output_token_j),
        _estimate(point.per_decode_token_j),
        fmt.duration(point.ttft_s),
        fmt.number(point.output_tokens_per_s),
    ]
    return f'<tr><td class="name">{page.escape_text(point.name)}</td>' + "".join(
        f'<td class="num">{page.escape_text(c)}</td>' for c in cells
    ) + "</tr>"


def _estimate(estimate: Estimate) -> str:
    text = fmt.energy(estimate.value)
    if estimate.value is not None and estimate.half_width is not None:
        text += f" ± {estimate.half_width:.0%}"
    return text


def token_energy_plot(points: Sequence[PointFigures]) -> str | None:
    """J per input token (prefill) and per output token against batch size, one line per
    (prompt length, new tokens); log axes. None without a figure to draw."""
    series: dict[tuple[int, int], list[PointFigures]] = {}
    for p in points:
        series.setdefault((p.input_length, p.new_tokens), []).append(p)
    if not any(p.per_output_token_j.value or p.per_input_token_j.value for p in points):
        return None
    figure = plots.new_figure(height=3.8)
    axes = figure.subplots(1, 2)
    panels = (
        (axes[0], "per_input_token_j", "prefill: J per input token"),
        (axes[1], "per_output_token_j", "whole call: J per output token"),
    )
    for ax, field, label in panels:
        for i, ((n_in, n_out), group) in enumerate(sorted(series.items())):
            group = sorted(group, key=lambda p: p.batch_size)
            xs = [p.batch_size for p in group if getattr(p, field).value]
            ys = [getattr(p, field).value for p in group if getattr(p, field).value]
            if xs:
                ax.plot(xs, ys, "o-", color=plots.PALETTE[i % len(plots.PALETTE)],
                        label=plots.literal(f"{n_in} input, {n_out} output tokens"))
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch size")
        ax.set_ylabel(label)
    axes[1].legend(fontsize="small")
    figure.suptitle("Energy per token against batch size")
    return plots.to_svg(figure)
