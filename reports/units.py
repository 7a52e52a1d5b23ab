"""Units of work as comparisons count them: a unit as counted, or for tokens, an LLM run's
prompt and generated tokens together (the tokens it processed).

joulemeter.integrations.llm counts a generate call's prompt tokens as "input_tokens" and
its new tokens as "output_tokens", never plain "tokens"; a training run or a published one
counts "tokens". Per token, the two meet as tokens processed: each prompt token and each
generated one goes through the model once.
"""

from __future__ import annotations

from collections.abc import Mapping

TOKENS = "tokens"
INPUT_UNIT = "input_tokens"  # prompt tokens, counted in the prefill window
OUTPUT_UNIT = "output_tokens"  # new tokens, counted in the decode window
#: the units whose sum stands for tokens where none were counted as such
TOKEN_PARTS = (INPUT_UNIT, OUTPUT_UNIT)


def units_counted(units: Mapping[str, float], unit: str) -> float | None:
    """How many `unit` a run or window counted (`units`), None for none: for "tokens" where
    none were counted as such, its input plus output tokens."""
    if units.get(unit):
        return units[unit]
    if unit == TOKENS:
        return sum(units.get(part) or 0.0 for part in TOKEN_PARTS) or None
    return None


def tokens_from_parts(units: Mapping[str, float]) -> bool:
    """Whether `units` stands for tokens only through its input and output tokens."""
    return not units.get(TOKENS) and units_counted(units, TOKENS) is not None
