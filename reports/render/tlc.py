"""The "train large, then compress" experiment (joulemeter.reports.tlc) as one
self-contained HTML page: the verdict, a table of every model against the small one,
accuracy against inference energy, and the runs behind it.
"""

from __future__ import annotations

from joulemeter.reports.render import formatting as fmt
from joulemeter.reports.render import html as page
from joulemeter.reports.render import plots
from joulemeter.reports.render._report import build_report, factor_lines
from joulemeter.reports.render.wording import machine_load_note, verdict_words
from joulemeter.reports.tlc import ModelFigures, Premise, TLCSummary


def render_tlc_html(summary: TLCSummary, *, title: str | None = None) -> str:
    """The experiment as one page (no script, no URL fetched)."""
    runs = [m.figures.inference for m in summary.models]
    extra = [m.training for m in summary.models if m.production is None]
    extra += [m.production for m in summary.compressed if m.production is not None]
    title = title or "Train large, then compress: measured at small scale"
    report = build_report(runs + extra, factors=summary.compression.factors, title=title)
    report.factor_lines = factor_lines(summary.compression.factors)
    return page.document(
        title,
        [
            f"<header><h1>{page.escape_text(title)}</h1>",
            page.header_line(report),
            "</header>",
            verdict_section(summary),
            models_section(summary),
            "<h2>Runs</h2>",
            *(page.run_section(rr, collapsed=True) for rr in report.runs),
            page.factors_footer(report),
        ],
    )


def premise_words(summary: TLCSummary) -> str:
    """One sentence: whether the premise held, and on which figures."""
    small = summary.small
    parts = []
    for model in summary.compressed:
        difference = summary.accuracy_difference(model)
        accuracy = (
            "accuracy unknown"
            if difference is None
            else f"accuracy {_points(model.accuracy.value - small.accuracy.value)} points "  # type: ignore[union-attr]
            f"(95 % CI {_points(difference[0])} to {_points(difference[1])})"
        )
        energy = verdict_words(model.figures.ratio, model.figures.interval)
        parts.append(f"{model.name}: {accuracy}, energy per query {energy} → {summary.holds_for(model).value}")
    verdict = summary.premise
    lead = {
        Premise.HELD: "The premise held here",
        Premise.ACCURACY_ONLY: "The premise held here for accuracy but not for inference energy: "
        "the larger model is more accurate for the same training energy, and compressing it did "
        "not bring its energy per query down to the small model's",
        Premise.NOT_HELD: "The premise did not hold here",
        Premise.INCONCLUSIVE: "These measurements cannot tell whether the premise held here",
    }[verdict]
    return f"{lead} (against {summary.baseline}, same {fmt.energy(summary.budget_j)} training budget). " + "; ".join(parts) + "."


def verdict_section(summary: TLCSummary) -> str:
    estimated = summary.compression.estimated_domains
    note = ""
    if estimated:
        note = (
            f'<p class="note">{page.escape_text(", ".join(estimated))} energy is estimated from '
            "utilisation on this machine, not measured: the budget and every energy figure follow "
            "that model, so differences mostly reflect how long each model ran.</p>"
        )
    load = machine_load_note(m.figures.interval for m in summary.models)
    if load:
        note += f'<p class="note">{page.escape_text(load)}</p>'
    return (
        "<section><h2>Verdict</h2>"
        "<p>Premise (Li et al. 2020, arXiv:2002.11794): for the same training compute, a larger model "
        "trained for fewer steps and then compressed beats a small one trained longer. Tested here: "
        "both trained until the meter measured the same energy; the large one compressed; it "
        "<b>held</b> if a compressed variant is more accurate (95 % interval of the difference above 0) "
        "at no more energy per query (verdict less or no measurable difference); "
        "<b>held for accuracy only</b> if it is more accurate but measurably dearer per query.</p>"
        f"<p><b>{page.escape_text(premise_words(summary))}</b></p>{note}</section>"
    )


def models_section(summary: TLCSummary) -> str:
    rows = "".join(_row(summary, m) for m in summary.models)
    skipped = "".join(
        f"<li><b>{page.escape_text(name)}</b>: {page.escape_text(reason)}</li>"
        for name, reason in summary.compression.skipped.items()
    )
    image = page.image(accuracy_energy_plot(summary), "Accuracy against energy per 1,000 queries")
    return (
        "<section><h2>Every model against the small one</h2>"
        f"<p>Lifecycle = training + compression + {page.escape_text(fmt.count(summary.queries))} queries "
        "at the measured energy per query. Training and compression were metered once; the "
        f"intervals come from the repeated inference trials (95 %, {page.escape_text(_methods(summary))}) "
        "and, for accuracy, the Wilson interval over the test set.</p>"
        + page.table(
            "<tr><th>Model</th><th>Steps</th><th>Accuracy (95 % CI)</th><th>Per 1,000 queries</th>"
            "<th>vs small (95 % CI)</th><th>Training</th><th>Compression</th><th>Lifecycle</th>"
            f"<th>Lifecycle vs small</th><th>Break-even vs small</th></tr>{rows}"
        )
        + image
        + (f"<h3>Variants not built here</h3><ul>{skipped}</ul>" if skipped else "")
        + "</section>"
    )


def _row(summary: TLCSummary, model: ModelFigures) -> str:
    is_small = model.name == summary.baseline
    per_query = model.figures.energy_per_inference_j
    break_even = summary.break_even_queries(model)
    verdict = "baseline" if is_small else verdict_words(model.figures.ratio, model.figures.interval)
    lifecycle = "baseline" if is_small else verdict_words(None, summary.lifecycle_interval(model))
    cells = [  # (text, whether it is words that may wrap; a figure stays on one line)
        (fmt.number(model.training.metadata.get("steps")) if model.production is None
         else f"from {model.trained_from}", False),
        (_accuracy(model), False),
        (fmt.energy(None if per_query is None else per_query * 1000), False),
        (verdict, True),
        (fmt.energy(model.training.total_energy_j), False),
        (fmt.energy(None if model.production is None else model.production.total_energy_j), False),
        (fmt.energy(model.lifecycle_energy_j), False),
        (lifecycle, True),
        (fmt.DASH if is_small or break_even is None else f"{fmt.count(break_even)} queries", False),
    ]
    return f'<tr><td class="name">{page.escape_text(model.name)}</td>' + "".join(
        f'<td class="{"num words" if words else "num"}">{page.escape_text(text)}</td>' for text, words in cells
    ) + "</tr>"


def _methods(summary: TLCSummary) -> str:
    """How the models' energy intervals were computed (Welch, or paired by round)."""
    methods = sorted({m.figures.interval.method for m in summary.models if m.figures.interval is not None})
    return " and ".join(methods) or "none: no model had repeated trials"


def _accuracy(model: ModelFigures) -> str:
    if model.accuracy is None:
        return fmt.DASH
    low, high = model.accuracy.interval
    return f"{fmt.percent(model.accuracy.value)} ({fmt.number(low * 100)}–{fmt.percent(high)})"


def _points(share: float) -> str:
    return f"{share * 100:+.1f}"


def accuracy_energy_plot(summary: TLCSummary) -> str | None:
    """Accuracy (with its interval) against energy per 1,000 queries, one point per model."""
    drawable = [m for m in summary.models if m.accuracy is not None and m.figures.energy_per_inference_j]
    if not drawable:
        return None
    figure = plots.new_figure(height=3.8)
    ax = figure.subplots()
    for i, m in enumerate(drawable):
        low, high = m.accuracy.interval  # type: ignore[union-attr]
        value = m.accuracy.value  # type: ignore[union-attr]
        x = m.figures.energy_per_inference_j * 1000  # type: ignore[operator]
        ax.errorbar([x], [value], yerr=[[value - low], [high - value]], fmt="o", capsize=3,
                    color=plots.PALETTE[i % len(plots.PALETTE)], label=plots.literal(m.name))
    ax.set_xscale("log")
    ax.set_xlabel("energy per 1,000 queries (J)")
    ax.set_ylabel("accuracy on held-out data")
    plots.percent_axis(ax.yaxis)
    ax.set_title("Accuracy against inference energy (bars: 95 % interval)")
    ax.legend(fontsize="small")
    return plots.to_svg(figure)
