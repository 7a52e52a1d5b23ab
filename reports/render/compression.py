"""The full-versus-compressed study (joulemeter.reports.compression) as one
self-contained HTML page, built from the generic report's pieces (comparison table,
Pareto plot, run sections, sources) and the study's own sections.
"""

from __future__ import annotations

import dataclasses
import math

from joulemeter.meter.run import Run
from joulemeter.reports.accounting import Equivalence, Footprint
from joulemeter.reports.compression import (
    CompressionSummary,
    VariantFigures,
    summarise_compression,
)
from joulemeter.reports.render import formatting as fmt
from joulemeter.reports.render import html as page
from joulemeter.reports.render import plots
from joulemeter.reports.render._report import build_report, factor_lines
from joulemeter.reports.render.wording import accuracy_text, machine_load_note, ratio_phrase

# the study's model is re-exported here for the callers that import it with its page
__all__ = ["CompressionSummary", "VariantFigures", "render_compression_html", "summarise_compression"]

#: run.metadata keys shown in the models table, in this order
MODEL_COLUMNS = (
    "accuracy",
    "precision",
    "parameters",
    "nonzero_parameters",
    "size_on_disk_bytes",
    "peak_memory_bytes",
    "latency_p50_s",
    "latency_p95_s",
    "throughput_per_s",
    "device",
)


def render_compression_html(summary: CompressionSummary, *, title: str | None = None) -> str:
    """The study as one self-contained HTML page (no script, no URL fetched)."""
    runs = [v.inference for v in summary.variants]
    extra = [
        r for r in [summary.training, *(v.production for v in summary.variants)] if r is not None
    ]
    title = title or f"Full vs compressed: {summary.base_model}"
    report = build_report(runs + extra, factors=summary.factors, title=title)
    report.comparison = dataclasses.replace(
        summary.comparison,
        metadata_columns=[c for c in MODEL_COLUMNS if c in summary.comparison.frame.columns],
    )
    equivalences = _shown_equivalences(summary)
    shown = [eq for eq, _ in equivalences] + [rr.best for rr in report.runs if rr.best]
    report.factor_lines = factor_lines(summary.factors, shown)

    body = [
        f"<header><h1>{page.escape_text(title)}</h1>",
        page.header_line(report),
        "</header>",
        _provenance_banner(summary),
        _headline(summary, equivalences),
        page.comparison_section(report),
        _break_even_section(summary),
        _lifetime_section(summary, equivalences),
        _skipped_section(summary),
        "<h2>Runs</h2>",
        *(page.run_section(rr, collapsed=True) for rr in report.runs),
        page.factors_footer(report),
    ]
    return page.document(title, body, extra_css=_CSS)


_CSS = """
.banner{background:#fdebd3;border:2px solid #e0a400;border-radius:10px;padding:10px 16px;
 margin:14px 0;font-size:.95rem}.banner strong{color:#8a4b00}
.headline li{margin:4px 0}
"""


def _provenance_banner(summary: CompressionSummary) -> str:
    estimated = summary.estimated_domains
    if not estimated:
        return ""
    methods = "".join(
        f"<li><b>{page.escape_text(name)}</b>: {page.escape_text(method)}</li>" for name, method in estimated.items()
    )
    return (
        '<div class="banner"><strong>Estimates, not measurements.</strong> On this machine '
        f"{page.escape_text(', '.join(estimated))} energy could not be read from a hardware counter; every "
        "figure that includes it comes from a model of utilisation:"
        f"<ul>{methods}</ul>A machine-wide estimate counts other processes too, and "
        "differences between variants then mostly reflect how long each ran. Run on a machine "
        "with an NVIDIA GPU or RAPL counters for measured figures.</div>"
    )


def _headline(summary: CompressionSummary, equivalences: list[tuple[Equivalence, str]]) -> str:
    base = summary.baseline_figures
    items = []
    for v in summary.variants:
        if v is base:
            continue
        accuracy = ""
        if isinstance(v.accuracy, (int, float)) and isinstance(base.accuracy, (int, float)):
            accuracy = f", accuracy {accuracy_text(v.accuracy)} vs {accuracy_text(base.accuracy)}"
        words = ratio_phrase(v.ratio, v.interval, "energy per inference", summary.baseline)
        items.append(
            f"<li><b>{page.escape_text(v.variant)}</b>: {page.escape_text(words)}{page.escape_text(accuracy)}; "
            f"{page.escape_text(summary.break_even_words(v))}"
            f" {_run_badge(v.inference)}</li>"
        )
    best = "".join(f"<li>{page.escape_text(text)}</li>" for _, text in equivalences[:1])
    return (
        '<section class="headline"><h2>In short</h2>'
        f"<ul>{''.join(items)}{best}</ul>{_noise_note(summary)}</section>"
    )


def _noise_note(summary: CompressionSummary) -> str:
    """Warnings, once: other processes' measured CPU share during the trials, and repeated
    trials of a variant that disagreed by more than NOISY_SPREAD."""
    notes = []
    load = machine_load_note(v.interval for v in summary.variants)
    if load:
        notes.append(f'<p class="note">{page.escape_text(load)}</p>')
    noisy = summary.noisy_trials
    if noisy:
        notes.append(
            f'<p class="note">Repeated inference trials disagreed by up to {max(noisy.values()):.1f}× '
            f"({page.escape_text(', '.join(noisy))}; largest ÷ smallest energy per 1,000 inferences): "
            "something else was probably using the machine; the intervals above include that spread.</p>"
        )
    return "".join(notes)


def _break_even_section(summary: CompressionSummary) -> str:
    rows = []
    for v in summary.variants:
        be = v.break_even
        saving = None if be is None else be.saving_per_inference_j
        rows.append(
            f"<tr><td>{page.escape_text(v.variant)}</td>"
            f'<td class="num">{page.escape_text(fmt.energy(v.production_energy_j))} '
            f"{_run_badge(v.production)}</td>"
            f'<td class="num">{page.escape_text(fmt.energy(v.energy_per_inference_j))}</td>'
            f'<td class="num">{page.escape_text(fmt.energy(saving))}</td>'
            f'<td class="words">{page.escape_text(summary.break_even_words(v))}</td></tr>'
        )
    training = ""
    if summary.training is not None:
        run = summary.training
        training = (
            '<p class="meta">Training the full model took '
            f"{page.escape_text(fmt.energy(run.total_energy_j))} "
            f"{_run_badge(run)} over {page.escape_text(fmt.duration(run.duration_s))}; every variant "
            "starts from it, so it is not charged to any one of them.</p>"
        )
    image = page.image(
        _break_even_plot(summary), "Cumulative energy of each variant against inferences served"
    )
    return (
        "<section><h2>Break-even of each compression</h2>"
        "<p>Making a variant (pruning, quantizing or distilling the trained model, with any "
        "fine-tuning after it) costs energy once; it pays off after the energy to make it ÷ the "
        "energy it saves per inference.</p>"
        + page.table(
            "<tr><th>Variant</th><th>Energy to make it</th><th>Energy per inference</th>"
            f"<th>Saved per inference</th><th>Break-even</th></tr>{''.join(rows)}"
        )
        + f"{training}{image}</section>"
    )


def _lifetime_section(
    summary: CompressionSummary, equivalences: list[tuple[Equivalence, str]]
) -> str:
    rows = []
    for v in summary.variants:
        serving = v.serving
        saving = summary.lifetime_saving(v)
        cells = [
            fmt.kwh(None if serving is None else serving.energy_kwh),
            fmt.co2e(None if serving is None else serving.kg_co2e),
            fmt.money(None if serving is None else serving.cost, summary.factors.currency),
            fmt.kwh(None if saving is None else saving.energy_kwh),
        ]
        rows.append(
            f"<tr><td>{page.escape_text(v.variant)}</td>"
            + "".join(f'<td class="num">{page.escape_text(cell)}</td>' for cell in cells)
            + f"<td>{page.escape_text(_saving_words(v, saving))}</td></tr>"
        )
    notes = "".join(f"<li>{page.escape_text(text)}</li>" for _, text in equivalences)
    return (
        "<section><h2>Lifetime projection</h2>"
        f"<p>Serving {page.escape_text(fmt.count(summary.queries_per_day))} inferences a day for "
        f"{page.escape_text(fmt.count(summary.days))} days, at each variant's measured energy per inference "
        f"and the factors for {page.escape_text(summary.factors.region_name)}. A projection is an estimate "
        f"{page.badge('estimated')}: it assumes the same hardware, batch size and load as "
        "measured here. Facility electricity includes PUE.</p>"
        + page.table(
            "<tr><th>Variant</th><th>Electricity</th><th>Emissions</th><th>Cost</th>"
            f"<th>Saved vs baseline (making it included)</th><th>That is</th></tr>{''.join(rows)}"
        )
        + f"<ul>{notes}</ul></section>"
    )


def _skipped_section(summary: CompressionSummary) -> str:
    if not summary.skipped:
        return ""
    items = "".join(
        f"<li><b>{page.escape_text(name)}</b>: {page.escape_text(reason)}</li>"
        for name, reason in summary.skipped.items()
    )
    return f"<section><h2>Variants not built here</h2><ul>{items}</ul></section>"


def _shown_equivalences(summary: CompressionSummary) -> list[tuple[Equivalence, str]]:
    """The best equivalence of the baseline's lifetime serving and of each saving, each
    with the sentence that shows it."""
    out = []
    base = summary.baseline_figures
    if base.serving is not None and base.serving.energy_kwh > 0:
        eq = base.serving.best_equivalence()
        if eq is not None:
            out.append((eq, f"Serving {summary.baseline} for the whole period: ≈ {eq.text}"))
    for v in summary.variants:
        saving = summary.lifetime_saving(v)
        eq = None if saving is None else saving.best_equivalence()
        if eq is not None:
            out.append((eq, f"Switching to {v.variant} saves ≈ {eq.text}"))
    return out


def _saving_words(variant: VariantFigures, saving: Footprint | None) -> str:
    """What the lifetime saving is like, or why there is none to speak of."""
    if saving is None and variant.saving_not_measured:
        return "no saving measured beyond noise"
    return _equivalence_text(saving)


def _equivalence_text(saving: Footprint | None) -> str:
    """The saving's best equivalence in words, a dash where there is none that reads well."""
    eq = None if saving is None else saving.best_equivalence()
    return fmt.DASH if eq is None else eq.text


def _break_even_plot(summary: CompressionSummary) -> str | None:
    """Energy to make each variant + n × its energy per inference, log axes, break-evens marked."""
    import numpy

    drawable = [v for v in summary.variants if v.energy_per_inference_j]
    horizon = summary.queries_per_day * summary.days
    if not drawable or horizon <= 1:
        return None
    n = numpy.logspace(0, math.log10(horizon), 200)
    figure = plots.new_figure(height=4.2)
    ax = figure.subplots()
    for i, v in enumerate(drawable):
        made = v.production_energy_j or 0.0
        style = "--" if v.variant == summary.baseline else "-"
        ax.plot(
            n,
            made + n * v.energy_per_inference_j,
            style,
            label=plots.literal(v.variant),
            color=plots.PALETTE[i % len(plots.PALETTE)],
        )
        be = v.break_even
        if be is not None and be.inferences_for_energy and be.inferences_for_energy <= horizon:
            x = be.inferences_for_energy
            ax.plot(
                [x],
                [made + x * v.energy_per_inference_j],
                "o",
                color=plots.PALETTE[i % len(plots.PALETTE)],
            )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("inferences served")
    ax.set_ylabel("energy: making + inference (J)")
    ax.set_title("Cumulative energy; dots mark where making a variant has paid off")
    ax.legend(fontsize="small")
    return plots.to_svg(figure)


# -- small pieces -----------------------------------------------------------------------


def _run_badge(run: Run | None) -> str:
    """The provenance badge of a run's total ('' without a run)."""
    if run is None or run.provenance is None:
        return ""
    return page.badge(run.provenance.value)
