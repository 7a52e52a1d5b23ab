"""The full-versus-compressed study as figures: per variant its energy per 1,000
inferences and ratio to the full model, the energy spent producing it, when that pays
off, and what a stated query volume costs over a lifetime. Rendered as HTML by
joulemeter.reports.render.compression.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from joulemeter.meter.errors import ReportError
from joulemeter.meter.run import Provenance, Run
from joulemeter.reports.accounting import Footprint, footprint, projection
from joulemeter.reports.compare import (
    BreakEven,
    Comparison,
    break_even,
    compare,
    quotient,
)
from joulemeter.reports.confidence import RatioInterval, Verdict
from joulemeter.reports.factors import Factors, resolve_factors
from joulemeter.reports.render.wording import variant_break_even

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
    break_even: BreakEven | None  # None for the baseline, unknown production or no measured saving
    serving: Footprint | None  # queries_per_day × days of inference (estimated)
    interval: RatioInterval | None = None  # the ratio's 95 % CI over repeated trials

    @property
    def saving_not_measured(self) -> bool:
        """True when repeated trials did not show this variant to use less energy."""
        return self.interval is not None and self.interval.verdict is not Verdict.LESS

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
        included: a footprint of the joules saved (None if unknown, not a saving, or a saving
        its trials did not measure beyond noise)."""
        base = self.baseline_figures
        if variant is base or variant.lifetime_energy_j is None or base.serving is None:
            return None
        if variant.saving_not_measured:
            return None
        saved = base.serving.energy_j - variant.lifetime_energy_j
        return footprint(saved, self.factors, provenance=Provenance.ESTIMATED) if saved > 0 else None

    def break_even_days(self, variant: VariantFigures) -> float | None:
        """Days of serving at queries_per_day until the variant's production has paid off."""
        be = variant.break_even
        if be is None or be.inferences_for_energy is None or self.queries_per_day <= 0:
            return None
        return be.inferences_for_energy / self.queries_per_day

    def break_even_words(self, variant: VariantFigures) -> str:
        """The variant's break-even in words (see render.wording.variant_break_even)."""
        return variant_break_even(self, variant)

    @property
    def noisy_trials(self) -> dict[str, float]:
        """Variant -> how far its repeated inference trials disagreed (largest ÷ smallest
        energy per 1,000 inferences), for those above NOISY_SPREAD."""
        spreads = {v.variant: v.inference.metadata.get("trial_energy_spread") for v in self.variants}
        return {
            name: s for name, s in spreads.items() if isinstance(s, (int, float)) and s > NOISY_SPREAD
        }


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
        interval = comparison.interval(run.id)
        measured_saving = interval is None or interval.verdict is Verdict.LESS
        figures_break_even = None
        if (
            name != baseline
            and production is not None
            and measured_saving
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
                ratio=quotient(per_inference, base_per_inference),
                accuracy=run.metadata.get("accuracy"),
                break_even=figures_break_even,
                serving=None
                if per_inference is None
                else projection(per_inference, queries_per_day, days, factors),
                interval=interval,
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


def _per_inference(per_1000_j: float | None) -> float | None:
    if per_1000_j is None or per_1000_j != per_1000_j:
        return None
    return float(per_1000_j) / 1000
