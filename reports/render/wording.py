"""Analysis results in words: ratios to a baseline, comparison phrases, break-even and
training-prediction sentences. The figures come from joulemeter.reports.compare and
joulemeter.reports.compression; this module only words them."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from joulemeter.meter.units import HOURS_PER_DAY, S_PER_HOUR
from joulemeter.reports.render import formatting as fmt

if TYPE_CHECKING:
    from joulemeter.meter.run import Run
    from joulemeter.reports.compare import TrainingPrediction
    from joulemeter.reports.compression import CompressionSummary, VariantFigures
    from joulemeter.reports.confidence import RatioInterval


#: factors from this size up are written as a power of ten: no reader counts 12 digits
_LARGE_FACTOR = 1_000_000


def ratio_words(ratio: float | None) -> str:
    """A ratio to the baseline in words: '3.4× less', '1.5× more', 'about the same',
    '5.1 × 10¹¹× more', '—'."""
    if ratio is None or math.isnan(ratio):
        return fmt.DASH
    if ratio == 0:
        return "none"
    text = factor_text(max(ratio, 1 / ratio))
    if text == "1.0×":
        return "about the same"
    return f"{text} {'less' if ratio < 1 else 'more'}"


def factor_text(ratio: float, digits: int = 2) -> str:
    """A ratio as a factor for a reader, `digits` significant figures: 1.34 -> '1.3×', 0.2 ->
    '0.2×', 25 -> '25×', 23,884 -> '24,000×', 5.09e11 -> '5.1 × 10¹¹×'."""
    if ratio < 1:
        return f"{ratio:.{digits}g}×"
    if ratio < 10:
        return f"{ratio:.{digits - 1}f}×"
    if ratio < _LARGE_FACTOR:
        return f"{round(ratio, digits - 1 - math.floor(math.log10(ratio))):,.0f}×"
    return f"{fmt.power_of_ten(ratio, digits=digits)}×"


def interval_text(interval: RatioInterval) -> str:
    """'95 % CI 2.3–2.9× less', in the verdict's own terms (for "no measurable difference"
    and "too noisy" as factors of the baseline: '95 % CI 0.95–1.1×')."""
    return f"95 % CI {_bounds(interval)}"


def _bounds(interval: RatioInterval) -> str:
    """The interval as a reader compares it with the verdict: '2.3–2.9× less', '1.2–1.5× more',
    or '0.95–1.1×' (of the baseline) when the interval holds 1; with a third or fourth
    significant figure where two would show its ends alike ('1.06–1.11× less', not '1.1–1.1×')."""
    from joulemeter.reports.confidence import Verdict

    low, high, suffix = interval.low, interval.high, ""
    if interval.verdict is Verdict.LESS:
        low, high, suffix = 1 / interval.high, 1 / interval.low, " less"
    elif interval.verdict is Verdict.MORE:
        suffix = " more"
    for digits in (2, 3, 4):
        low_text, high_text = factor_text(low, digits), factor_text(high, digits)
        if low_text != high_text:
            break
    return f"{low_text.rstrip('×')}–{high_text}{suffix}"


def verdict_words(ratio: float | None, interval: RatioInterval | None) -> str:
    """A table cell said only as strongly as its interval allows (the column says "95 % CI"):
    '2.6× less (2.3–2.9×)', 'no measurable difference (0.95–1.1×)', 'too noisy (0.6–1.7×)';
    without repeated trials, the plain ratio and '(one measurement)'."""
    from joulemeter.reports.confidence import Verdict

    if interval is None:
        words = ratio_words(ratio)
        return words if words == fmt.DASH else f"{words} (one measurement)"
    bounds = f"({_bounds(interval)})"
    if interval.verdict in (Verdict.LESS, Verdict.MORE):
        return f"{ratio_words(interval.ratio)} {bounds}"
    words = "too noisy" if interval.verdict is Verdict.TOO_NOISY else interval.verdict.value
    return f"{words} {bounds}"


def machine_load_note(intervals: Iterable[RatioInterval | None]) -> str | None:
    """Said once per comparison when other processes took more than a tenth of the CPU
    during any trials: 'Other processes took up to 48 % of the CPU …'; None otherwise."""
    busy = [ci.other_cpu_load for ci in intervals if ci is not None and ci.machine_busy]
    if not busy:
        return None
    return (
        f"Other processes took up to {max(busy):.0%} of the CPU during the trials "  # type: ignore[type-var]
        "(measured): the intervals include that noise; on a quiet machine they would be tighter."
    )


def ratio_phrase(ratio: float | None, interval: RatioInterval | None, what: str, base: str) -> str:
    """'2.6× less energy than full (95 % CI 2.3–2.9×)', 'no measurable difference in energy
    against full (…)', or without trials 'about the same energy as full'."""
    from joulemeter.reports.confidence import Verdict

    if interval is not None and not interval.significant:
        preposition = "in" if interval.verdict is Verdict.SAME else "on"
        return f"{interval.verdict.value} {preposition} {what} against {base} ({interval_text(interval)})"
    if interval is not None:
        return f"{ratio_words(interval.ratio)} {what} than {base} ({interval_text(interval)})"
    words = ratio_words(ratio)
    return f"about the same {what} as {base}" if words == "about the same" else f"{words} {what} than {base}"


def comparison_phrase(
    run: Run,
    base: Run,
    *,
    ratio: float | None,
    interval: RatioInterval | None = None,
    has_value: bool,
    base_value: float | None,
    base_has_value: bool = True,
    unit: str | None,
    per_label: str,
    provenance: str,
    base_provenance: str,
) -> str:
    """'pruned: 3.4× less energy per 1,000 inferences than full (accuracy 90.0 % vs 91.0 %)';
    without a ratio, which of the two lacks what: 'digits: counted no tokens, so …' or
    'GPT-3 (published): llm-sweep (the baseline) counted no tokens, so …'."""
    what = f"energy {per_label}".strip()
    if ratio is None:
        text = f"{run.name}: {_lacking(base, what, unit, has_value, base_has_value)}"
    elif ratio == 0:
        text = f"{run.name}: no {what} measured, against {fmt.number(base_value)} J for {base.name}"
    else:
        text = f"{run.name}: {ratio_phrase(ratio, interval, what, base.name)}"
    accuracy, base_accuracy = run.metadata.get("accuracy"), base.metadata.get("accuracy")
    if isinstance(accuracy, (int, float)) and isinstance(base_accuracy, (int, float)):
        text += f" (accuracy {accuracy_text(accuracy)} vs {accuracy_text(base_accuracy)})"
    if provenance != base_provenance:
        text += f"; mind the provenance: {provenance} here, {base_provenance} for {base.name}"
    return text


def _lacking(base: Run, what: str, unit: str | None, has_value: bool, base_has_value: bool) -> str:
    """Which side of a comparison lacks its figure and what it lacks: 'counted no tokens,
    so no energy per token to compare with llm-sweep', or 'llm-sweep (the baseline) counted
    no tokens, so …'."""
    if not unit:
        return f"no figure, so no {what} to compare with {base.name}"
    if not has_value and not base_has_value:
        return f"neither this run nor {base.name} (the baseline) counted {unit}, so no {what} to compare"
    if not has_value:
        return f"counted no {unit}, so no {what} to compare with {base.name}"
    return f"{base.name} (the baseline) counted no {unit}, so no {what} to compare"


def accuracy_text(accuracy: float) -> str:
    """An accuracy as every report writes it: '96.4 %' (formatting.metadata_value)."""
    return fmt.metadata_value("accuracy", accuracy)


def unit_notes(runs: Sequence[Run], unit: str | None) -> list[str]:
    """How the compared units were counted, where a reader would otherwise assume wrong:
    an LLM run's tokens are its input plus output tokens (tokens processed), and training
    tokens are not the work of inference tokens."""
    from joulemeter.reports.units import INPUT_UNIT, OUTPUT_UNIT, TOKENS, tokens_from_parts, units_counted

    if unit != TOKENS:
        return []
    notes = [
        f"{run.name} counted input and output tokens, not tokens: per token here is per token "
        f"processed, its {fmt.count(run.units.get(INPUT_UNIT, 0))} input (prompt) and "
        f"{fmt.count(run.units.get(OUTPUT_UNIT, 0))} output (generated) tokens together"
        for run in runs
        if tokens_from_parts(run.units)
    ]
    kinds = {str(run.metadata.get("kind", "")) for run in runs if units_counted(run.units, TOKENS)}
    if "training" in kinds and any("inference" in kind for kind in kinds):
        notes.append("a training token takes a forward and a backward pass, an inference token a forward "
                     "pass only: per token, training and inference are not the same work")
    return notes


def break_even_text(
    extra_energy_j: float, saving_per_inference_j: float, inferences: float | None
) -> str:
    """'pays off after 7,200 inferences (… spent, … saved per inference)', or 'never: …'."""
    if inferences is None:
        return (
            "never: the compressed model saves no energy per inference "
            f"({fmt.energy(saving_per_inference_j)}), so the energy spent making it is never paid back"
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
    if variant.saving_not_measured:
        return "no break-even: its saving was not measured beyond noise"
    be = variant.break_even
    if be is None:
        return "the energy to make it was not metered" if variant.production is None else fmt.DASH
    if be.inferences_for_energy is None:
        return "never: it saves no energy per inference"
    count = fmt.number(math.ceil(be.inferences_for_energy))
    days = summary.break_even_days(variant)
    when = "" if days is None else f" ({fmt.duration(days * HOURS_PER_DAY * S_PER_HOUR)} at {fmt.count(summary.queries_per_day)}/day)"
    return f"pays off after {count} inferences{when}"
