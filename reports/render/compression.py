"""The full-versus-compressed study: per variant its energy per 1,000 inferences and
ratio to the full model, the energy spent producing it, when that pays off, and what a
stated query volume costs over a lifetime; rendered as one self-contained HTML page
from the generic report's pieces (comparison table, Pareto plot, run sections, sources).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from joulemeter.meter.errors import ReportError
from joulemeter.meter.run import Provenance, Run
from joulemeter.reports.accounting import Equivalence, Footprint, footprint, projection
from joulemeter.reports.compare import BreakEven, Comparison, break_even, compare, ratio_words
from joulemeter.reports.factors import Factors, resolve_factors
from joulemeter.reports.render import formatting as fmt
from joulemeter.reports.render import html as page
from joulemeter.reports.render import plots
from joulemeter.reports.render._report import build_report, factor_lines

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


#: trials whose energy per 1,000 inferences differ by more than this factor get a warning
NOISY_SPREAD = 1.5


@dataclass(frozen=True)
class VariantFigures:
    """One variant: its inference run, the run that produced it, and what follows."""

    variant: str
    inference: Run
    production: Run | None  # fine-tuning, distillation, conversion; None if not metered
    energy_per_inference_j: float | None  # over the inference run, as the comparison shows
    ratio: float | None  # energy per inference / the baseline's
    accuracy: float | None
    break_even: BreakEven | None  # None for the baseline and where production is unknown
    serving: Footprint | None  # queries_per_day × days of inference (estimated)

    @property
    def production_energy_j(self) -> float | None:
        return None if self.production is None else self.production.total_energy_j

    @property
    def lifetime_energy_j(self) -> float | None:
        """Production plus serving energy at the device; None when either is unknown."""
        if self.serving is None or self.production_energy_j is None:
            return None
        return self.production_energy_j + self.serving.energy_j


@dataclass
class CompressionSummary:
    """Every variant of one base model against its baseline, at one query volume."""

    base_model: str
    baseline: str
    comparison: Comparison
    variants: list[VariantFigures]
    training: Run | None  # the full model's training, needed by every variant
    queries_per_day: float
    days: float
    factors: Factors
    skipped: dict[str, str] = field(default_factory=dict)  # variant -> why it was not built

    @property
    def baseline_figures(self) -> VariantFigures:
        return next(v for v in self.variants if v.variant == self.baseline)

    @property
    def estimated_domains(self) -> dict[str, str]:
        """Domain name -> how it was estimated, for every estimated domain of the runs."""
        runs = [v.inference for v in self.variants] + [
            v.production for v in self.variants if v.production is not None
        ]
        return {
            d.name: d.method
            for run in runs
            for d in run.domains
            if d.provenance is Provenance.ESTIMATED
        }

    def lifetime_saving(self, variant: VariantFigures) -> Footprint | None:
        """Serving with `variant` instead of the baseline over the lifetime, production
        included: a footprint of the joules saved (None if unknown or not a saving)."""
        base = self.baseline_figures
        if variant is base or variant.lifetime_energy_j is None or base.serving is None:
            return None
        saved = base.serving.energy_j - variant.lifetime_energy_j
        return footprint(saved, self.factors, provenance="estimated") if saved > 0 else None

    def break_even_days(self, variant: VariantFigures) -> float | None:
        """Days of serving at queries_per_day until the variant's production has paid off."""
        be = variant.break_even
        if be is None or be.inferences_for_energy is None or self.queries_per_day <= 0:
            return None
        return be.inferences_for_energy / self.queries_per_day

    def break_even_words(self, variant: VariantFigures) -> str:
        """'pays off after 12,345 inferences (18 min 31 s at 1,000,000/day)', 'never: …',
        'baseline', or why it is not known."""
        if variant.variant == self.baseline:
            return "baseline"
        be = variant.break_even
        if be is None:
            return "production energy not metered" if variant.production is None else fmt.DASH
        if be.never:
            return "never: it saves no energy per inference"
        count = fmt.number(math.ceil(be.inferences_for_energy))
        days = self.break_even_days(variant)
        when = (
            ""
            if days is None
            else f" ({fmt.duration(days * 86400)} at {_count(self.queries_per_day)}/day)"
        )
        return f"pays off after {count} inferences{when}"


def summarise_compression(
    inference_runs: Sequence[Run],
    production_runs: Sequence[Run] = (),
    *,
    baseline: str = "full",
    queries_per_day: float = 1_000_000,
    days: float = 365,
    factors: Factors | None = None,
    skipped: Mapping[str, str] | None = None,
) -> CompressionSummary:
    """Match inference and production runs by run.metadata["variant"] and work out ratios,
    break-even and the lifetime projection against the `baseline` variant.

    Production runs with metadata kind "training" are the base model's training; those
    with kind "production" are what each variant cost to make. One run per variant.
    """
    if queries_per_day < 0 or days < 0:
        raise ReportError(f"queries per day and days must be ≥ 0, got {queries_per_day} and {days}")
    factors = factors or resolve_factors()
    by_variant = {run.metadata.get("variant"): run for run in inference_runs}
    if baseline not in by_variant:
        known = ", ".join(map(str, by_variant)) or "none"
        raise ReportError(
            f"no inference run of the baseline variant {baseline!r}; variants: {known}"
        )
    comparison = compare(list(inference_runs), by_variant[baseline], per="1000", factors=factors)
    per_1000 = dict(zip(comparison.frame["id"], comparison.frame[comparison.compared_column]))
    training = next((r for r in production_runs if r.metadata.get("kind") == "training"), None)
    made = {
        run.metadata.get("variant"): run
        for run in production_runs
        if run.metadata.get("kind") == "production"
    }
    base_per_inference = _per_inference(per_1000.get(by_variant[baseline].id))
    variants = []
    for name, run in by_variant.items():
        per_inference = _per_inference(per_1000.get(run.id))
        production = made.get(name)
        figures_break_even = None
        if (
            name != baseline
            and production is not None
            and None not in (per_inference, base_per_inference)
        ):
            figures_break_even = break_even(
                production.total_energy_j, base_per_inference - per_inference, factors
            )
        variants.append(
            VariantFigures(
                variant=name,
                inference=run,
                production=production,
                energy_per_inference_j=per_inference,
                ratio=_quotient(per_inference, base_per_inference),
                accuracy=run.metadata.get("accuracy"),
                break_even=figures_break_even,
                serving=None
                if per_inference is None
                else projection(per_inference, queries_per_day, days, factors),
            )
        )
    return CompressionSummary(
        base_model=str(by_variant[baseline].metadata.get("base_model", "model")),
        baseline=baseline,
        comparison=comparison,
        variants=variants,
        training=training,
        queries_per_day=queries_per_day,
        days=days,
        factors=factors,
        skipped=dict(skipped or {}),
    )


# -- HTML ------------------------------------------------------------------------------


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
            accuracy = f", accuracy {v.accuracy:.1%} vs {base.accuracy:.1%}"
        words = ratio_words(v.ratio)
        than = "as" if words == "about the same" else "than"
        items.append(
            f"<li><b>{page.escape_text(v.variant)}</b>: {page.escape_text(words)} energy per inference {than} "
            f"{page.escape_text(summary.baseline)}{page.escape_text(accuracy)}; "
            f"{page.escape_text(summary.break_even_words(v))}"
            f" {_run_badge(v.inference)}</li>"
        )
    best = "".join(f"<li>{page.escape_text(text)}</li>" for _, text in equivalences[:1])
    return (
        '<section class="headline"><h2>In short</h2>'
        f"<ul>{''.join(items)}{best}</ul>{_noise_note(summary)}</section>"
    )


def _noise_note(summary: CompressionSummary) -> str:
    """A warning when repeated trials of a variant disagreed by more than NOISY_SPREAD."""
    spreads = {v.variant: v.inference.metadata.get("trial_energy_spread") for v in summary.variants}
    noisy = {
        name: s for name, s in spreads.items() if isinstance(s, (int, float)) and s > NOISY_SPREAD
    }
    if not noisy:
        return ""
    worst = max(noisy.values())
    return (
        f'<p class="note">Repeated inference trials disagreed by up to {worst:.1f}× '
        f"({page.escape_text(', '.join(noisy))}; largest ÷ smallest energy per 1,000 inferences): something "
        "else was probably using the machine. Treat differences smaller than that as noise, or "
        "rerun on a quiet machine.</p>"
    )


def _break_even_section(summary: CompressionSummary) -> str:
    rows = []
    for v in summary.variants:
        be = v.break_even
        saving = None if be is None else be.saving_per_inference_j
        rows.append(
            f"<tr><td>{page.escape_text(v.variant)}</td>"
            f'<td class="num">{page.escape_text(fmt.energy(v.production_energy_j))} '
            f"{_run_badge(v.production)}</td>"
            f'<td class="num">{page.escape_text(_millijoules(v.energy_per_inference_j))}</td>'
            f'<td class="num">{page.escape_text(_millijoules(saving))}</td>'
            f"<td>{page.escape_text(summary.break_even_words(v))}</td></tr>"
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
        "<p>Producing a variant (fine-tuning after pruning, distillation, conversion) costs "
        "energy once; it pays off after production energy ÷ energy saved per inference.</p>"
        "<table><tr><th>Variant</th><th>Production energy</th><th>Energy per inference</th>"
        "<th>Saved per inference</th><th>Break-even</th></tr>"
        f"{''.join(rows)}</table>{training}{image}</section>"
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
            + f"<td>{page.escape_text(saving.best_equivalence().text if saving else fmt.DASH)}</td></tr>"
        )
    notes = "".join(f"<li>{page.escape_text(text)}</li>" for _, text in equivalences)
    return (
        "<section><h2>Lifetime projection</h2>"
        f"<p>Serving {page.escape_text(_count(summary.queries_per_day))} inferences a day for "
        f"{page.escape_text(_count(summary.days))} days, at each variant's measured energy per inference "
        f"and the factors for {page.escape_text(summary.factors.region_name)}. A projection is an estimate "
        f"{page.badge('estimated')}: it assumes the same hardware, batch size and load as "
        "measured here. Facility electricity includes PUE.</p>"
        "<table><tr><th>Variant</th><th>Electricity</th><th>Emissions</th><th>Cost</th>"
        "<th>Saved vs baseline (production included)</th><th>That is</th></tr>"
        f"{''.join(rows)}</table><ul>{notes}</ul></section>"
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
        out.append((eq, f"Serving {summary.baseline} for the whole period: ≈ {eq.text}"))
    for v in summary.variants:
        saving = summary.lifetime_saving(v)
        if saving is not None:
            eq = saving.best_equivalence()
            out.append((eq, f"Switching to {v.variant} saves ≈ {eq.text}"))
    return out


def _break_even_plot(summary: CompressionSummary) -> bytes | None:
    """Production + n × energy per inference for each variant, log axes, break-evens marked."""
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
            label=v.variant,
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
    ax.set_ylabel("energy: production + inference (J)")
    ax.set_title("Cumulative energy; dots mark where a variant's production has paid off")
    ax.legend(fontsize="small")
    return plots.to_png(figure)


# -- small pieces -----------------------------------------------------------------------


def _per_inference(per_1000_j) -> float | None:
    if per_1000_j is None or per_1000_j != per_1000_j:
        return None
    return float(per_1000_j) / 1000


def _quotient(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def _count(value: float) -> str:
    """'1,000,000', '30', or '2.5' when not whole."""
    return f"{value:,.0f}" if float(value).is_integer() else fmt.number(value)


def _millijoules(energy_j: float | None) -> str:
    return fmt.DASH if energy_j is None else f"{fmt.number(energy_j * 1000)} mJ"


def _run_badge(run: Run | None) -> str:
    """The provenance badge of a run's total ('' without a run)."""
    if run is None or run.provenance is None:
        return ""
    return page.badge(run.provenance.value)
