"""Analysis results in words: ratios to a baseline, comparison phrases, break-even and
training-prediction sentences. The figures come from joulemeter.reports.compare and
joulemeter.reports.compression; this module only words them."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from joulemeter.meter.units import HOURS_PER_DAY, S_PER_HOUR
from joulemeter.reports.render import formatting as fmt

if TYPE_CHECKING:
    from joulemeter.meter.run import Run
    from joulemeter.reports.compare import TrainingPrediction
    from joulemeter.reports.compression import CompressionSummary, VariantFigures


def ratio_words(ratio: float | None) -> str:
    """A ratio to the baseline in words: '3.4× less', '1.5× more', 'about the same', '—'."""
    if ratio is None or math.isnan(ratio):
        return fmt.DASH
    if ratio == 0:
        return "none"
    factor = max(ratio, 1 / ratio)
    text = f"{factor:.1f}×" if factor < 10 else f"{factor:,.0f}×"
    if text == "1.0×":
        return "about the same"
    return f"{text} {'less' if ratio < 1 else 'more'}"


def comparison_phrase(
    run: Run,
    base: Run,
    *,
    ratio: float | None,
    has_value: bool,
    base_value: float | None,
    unit: str | None,
    per_label: str,
    provenance: str,
    base_provenance: str,
) -> str:
    """'pruned: 3.4× less energy per 1,000 inferences than full (accuracy 0.90 vs 0.91)'."""
    what = f"energy {per_label}".strip()
    words = ratio_words(ratio)
    if ratio is None:
        missing = f"no {unit} counted" if not has_value and unit else "no figure"
        text = f"{run.name}: {missing}, so no {what} to compare with {base.name}"
    elif ratio == 0:
        text = f"{run.name}: no {what} measured, against {fmt.number(base_value)} J for {base.name}"
    elif words == "about the same":
        text = f"{run.name}: about the same {what} as {base.name}"
    else:
        text = f"{run.name}: {words} {what} than {base.name}"
    accuracy, base_accuracy = run.metadata.get("accuracy"), base.metadata.get("accuracy")
    if isinstance(accuracy, (int, float)) and isinstance(base_accuracy, (int, float)):
        text += f" (accuracy {accuracy:.4g} vs {base_accuracy:.4g})"
    if provenance != base_provenance:
        text += f"; mind the provenance: {provenance} here, {base_provenance} for {base.name}"
    return text


def break_even_text(
    extra_energy_j: float, saving_per_inference_j: float, inferences: float | None
) -> str:
    """'pays off after 7,200 inferences (… spent, … saved per inference)', or 'never: …'."""
    if inferences is None:
        return (
            "never: the compressed model saves no energy per inference "
            f"({fmt.energy(saving_per_inference_j)}), so its production never pays off"
        )
    return (
        f"pays off after {fmt.number(math.ceil(inferences))} inferences "
        f"({fmt.energy(extra_energy_j)} spent, {fmt.energy(saving_per_inference_j)} saved per inference)"
    )


def prediction_text(prediction: TrainingPrediction) -> str:
    """'100 epochs predicted to use 1.20 MJ over 3 h 20 min, from 2 completed epoch(s) at …'."""
    p = prediction
    return (
        f"{p.total_epochs} epochs predicted to use {fmt.energy(p.predicted_energy_j)} "
        f"over {fmt.duration(p.predicted_duration_s)}, from {p.completed_epochs} "
        f"completed epoch(s) at {fmt.energy(p.energy_per_epoch_j)} each"
    )


def variant_break_even(summary: CompressionSummary, variant: VariantFigures) -> str:
    """'pays off after 12,345 inferences (18 min 31 s at 1,000,000/day)', 'never: …',
    'baseline', or why it is not known."""
    if variant.variant == summary.baseline:
        return "baseline"
    be = variant.break_even
    if be is None:
        return "production energy not metered" if variant.production is None else fmt.DASH
    if be.inferences_for_energy is None:
        return "never: it saves no energy per inference"
    count = fmt.number(math.ceil(be.inferences_for_energy))
    days = summary.break_even_days(variant)
    when = "" if days is None else f" ({fmt.duration(days * HOURS_PER_DAY * S_PER_HOUR)} at {fmt.count(summary.queries_per_day)}/day)"
    return f"pays off after {count} inferences{when}"
