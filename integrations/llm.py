"""Meter LLM inference: one `generate` call (Hugging Face, or any callable that streams
tokens the Hugging Face way) split into a window "prefill" (the prompt's forward pass,
up to the first new token) and a window "decode" (every token after it), with token
counts read from the tensors, and a sweep over batch sizes and lengths.

    with EnergyMeter("gpt2 serving") as m:
        output, generation = meter_generate(model, input_ids, attention_mask, max_new_tokens=64)
    figures = generation_figures(m.run)  # from joulemeter.reports.llm: J per token, TTFT, tokens/s

The boundary is found with a streamer (transformers' BaseStreamer protocol: `put(ids)`
once with the prompt, then once per generation step with the new tokens, `end()` at the
end): its first put of new tokens closes "prefill", so time to first token ends there.
Window edges wait for queued GPU work (the meter's sync and sync_devices), so a token's
work is counted in the window that asked for it. torch is imported inside the functions.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from joulemeter.meter import EnergyMeter, Run, current_meter
from joulemeter.meter.errors import MeterStateError
from joulemeter.meter.meter import MeterOptions, check_meter_options, extend_options
from joulemeter.reports.llm import (
    DECODE_WINDOW,
    INPUT_UNIT,
    OUTPUT_UNIT,
    PREFILL_WINDOW,
    SEQUENCE_UNIT,
    SWEEP_KEY,
)

if TYPE_CHECKING:
    import contextlib

    import torch
    from typing_extensions import Unpack

    from joulemeter.meter.run import Window

log = logging.getLogger("joulemeter.llm")

GENERATE_WINDOW = "generate"


@dataclass(frozen=True)
class Generation:
    """What one metered generate call did, counted from its tensors; seconds from a
    monotonic clock. Energy is in the run's windows once the meter stops."""

    window: str  # path of the call's outer window ("generate", or "…/trial-2")
    batch_size: int
    input_lengths: list[int]  # non-padding prompt tokens per sequence
    output_lengths: list[int]  # new tokens per sequence, up to and including its end token
    ttft_s: float | None  # from the call to the first new token; None if none came
    duration_s: float

    @property
    def input_tokens(self) -> int:
        return sum(self.input_lengths)

    @property
    def output_tokens(self) -> int:
        return sum(self.output_lengths)

    @property
    def decode_tokens(self) -> int:
        """New tokens made by decode steps: all but each sequence's first, which the
        prefill pass produced."""
        return sum(max(n - 1, 0) for n in self.output_lengths)

    @property
    def decode_s(self) -> float | None:
        return None if self.ttft_s is None else self.duration_s - self.ttft_s

    @property
    def output_tokens_per_s(self) -> float | None:
        """New tokens of the whole batch per second of the call."""
        return self.output_tokens / self.duration_s if self.duration_s > 0 else None

    @property
    def decode_tokens_per_s(self) -> float | None:
        """Decode-step tokens of the whole batch per second of decoding."""
        decode_s = self.decode_s
        return self.decode_tokens / decode_s if decode_s else None

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "decode_tokens": self.decode_tokens,
            "decode_s": self.decode_s,
            "output_tokens_per_s": self.output_tokens_per_s,
            "decode_tokens_per_s": self.decode_tokens_per_s,
        }


def input_lengths(input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> list[int]:
    """Prompt tokens per sequence: the attention mask's ones, or the full width without a
    mask (a pad id alone cannot tell padding from a real token that shares it)."""
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must be (batch, length); got shape {tuple(input_ids.shape)}")
    if attention_mask is None:
        return [int(input_ids.shape[1])] * int(input_ids.shape[0])
    if attention_mask.shape != input_ids.shape:
        raise ValueError(
            f"attention_mask {tuple(attention_mask.shape)} does not match input_ids "
            f"{tuple(input_ids.shape)}"
        )
    return [int(n) for n in attention_mask.sum(dim=1).tolist()]


def output_lengths(
    sequences: torch.Tensor, prompt_width: int, eos_token_id: int | Sequence[int] | None = None
) -> list[int]:
    """New tokens per sequence of a generate output (batch, prompt width + new): up to and
    including the first end-of-sequence token, after which generate only pads; all of
    them where no end token is known or none came."""
    import torch

    if sequences.dim() != 2 or sequences.shape[1] < prompt_width:
        raise ValueError(
            f"expected generate's output (batch, ≥ {prompt_width}); got {tuple(sequences.shape)}"
        )
    new = sequences[:, prompt_width:]
    width = int(new.shape[1])
    if eos_token_id is None or width == 0:
        return [width] * int(new.shape[0])
    ends = torch.as_tensor(
        [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id), device=new.device
    )
    is_end = torch.isin(new, ends)
    first_end = torch.where(is_end.any(dim=1), is_end.int().argmax(dim=1) + 1, width)
    return [int(n) for n in first_end.tolist()]


class PhaseStreamer:
    """A transformers streamer (put/end) that moves the meter from the "prefill" window to
    "decode" when the first new tokens arrive, and notes when that was."""

    def __init__(self, meter: EnergyMeter, started: float, prompt_first: bool = True) -> None:
        self._meter = meter
        self._started = started
        self._skip_prompt = prompt_first
        self.ttft_s: float | None = None
        self.prefill: contextlib.AbstractContextManager[Window] | None = meter.window(PREFILL_WINDOW)
        self.decode: contextlib.AbstractContextManager[Window] | None = None
        self.prefill.__enter__()

    def put(self, value: Any) -> None:
        if self._skip_prompt:  # transformers puts the prompt first
            self._skip_prompt = False
            return
        if self.decode is None:
            self.ttft_s = time.perf_counter() - self._started
            self.close()
            self.decode = self._meter.window(DECODE_WINDOW)
            self.decode.__enter__()

    def end(self) -> None:
        """Called by generate when it is done; the windows close in meter_stream."""

    def close(self) -> None:
        """Close the prefill window if it is still open."""
        if self.prefill is not None:
            prefill, self.prefill = self.prefill, None
            prefill.__exit__(None, None, None)

    def close_decode(self) -> None:
        if self.decode is not None:
            decode, self.decode = self.decode, None
            decode.__exit__(None, None, None)


def meter_stream(
    call: Callable[[PhaseStreamer], Any],
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    *,
    eos_token_id: int | Sequence[int] | None = None,
    meter: EnergyMeter | None = None,
    window: str = GENERATE_WINDOW,
    prompt_first: bool = True,
) -> tuple[Any, Generation]:
    """Meter `call(streamer)`, which generates from `input_ids` and returns the sequences
    (batch, prompt width + new) or an object with `.sequences`; returns (its result, the
    Generation).

    Inside the running meter (given, or the current one) the call is a window `window`
    holding "prefill" and "decode". Prompt tokens (non-padding, from the attention mask)
    are counted as "input_tokens" in prefill; decode counts the tokens its steps made as
    "output_tokens", the outer window every new token; sequences are counted too. The
    callable must feed the streamer as transformers does (the prompt first, unless
    `prompt_first` is False). If it raises, the windows close and the error propagates.
    """
    meter = meter or current_meter()
    if meter is None or not meter.running:
        raise MeterStateError("meter_stream needs a running EnergyMeter: call it inside `with EnergyMeter(...)`")
    lengths_in = input_lengths(input_ids, attention_mask)
    started = time.perf_counter()
    with meter.window(window) as outer:
        streamer = PhaseStreamer(meter, started, prompt_first)
        try:
            meter.count(len(lengths_in), SEQUENCE_UNIT)
            meter.count(sum(lengths_in), INPUT_UNIT)  # outer and prefill are open
            result = call(streamer)
            sequences = getattr(result, "sequences", result)
            lengths_out = output_lengths(sequences, int(input_ids.shape[1]), eos_token_id)
            streamer.close()
            decode_tokens = sum(max(n - 1, 0) for n in lengths_out)
            meter.count(decode_tokens, OUTPUT_UNIT)  # outer, and decode when it is open
            streamer.close_decode()
            meter.count(sum(lengths_out) - decode_tokens, OUTPUT_UNIT)  # outer only
        finally:
            streamer.close()
            streamer.close_decode()
        duration_s = time.perf_counter() - started
    generation = Generation(
        window=outer.path,
        batch_size=len(lengths_in),
        input_lengths=lengths_in,
        output_lengths=lengths_out,
        ttft_s=streamer.ttft_s,
        duration_s=duration_s,
    )
    return result, generation


def meter_generate(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    *,
    meter: EnergyMeter | None = None,
    window: str = GENERATE_WINDOW,
    **generate_kwargs: Any,
) -> tuple[Any, Generation]:
    """`model.generate(input_ids, attention_mask=…, **generate_kwargs)` metered as
    `meter_stream` describes; the end token is the model's generation_config.eos_token_id
    unless `eos_token_id` is passed. Beam search is refused by transformers with a streamer."""
    if "streamer" in generate_kwargs:
        raise ValueError("meter_generate brings its own streamer; pass none")
    eos = generate_kwargs.get("eos_token_id")
    if eos is None:
        config = getattr(model, "generation_config", None)
        eos = getattr(config, "eos_token_id", None)
    return meter_stream(
        lambda streamer: model.generate(
            input_ids=input_ids, attention_mask=attention_mask, streamer=streamer, **generate_kwargs
        ),
        input_ids,
        attention_mask,
        eos_token_id=eos,
        meter=meter,
        window=window,
    )


@dataclass(frozen=True)
class SweepPoint:
    """One configuration of a sweep: batch size, prompt length and new tokens per sequence."""

    batch_size: int
    input_length: int
    new_tokens: int

    @property
    def name(self) -> str:
        return f"b{self.batch_size}-in{self.input_length}-out{self.new_tokens}"


def sweep_points(
    batch_sizes: Iterable[int], input_lengths: Iterable[int], new_tokens: Iterable[int]
) -> list[SweepPoint]:
    """Every combination, in order; ValueError for a size below 1."""
    points = [
        SweepPoint(b, n_in, n_out)
        for b in batch_sizes
        for n_in in input_lengths
        for n_out in new_tokens
    ]
    bad = [p.name for p in points if min(p.batch_size, p.input_length, p.new_tokens) < 1]
    if bad or not points:
        raise ValueError(f"every batch size and length must be at least 1; got {bad or 'none'}")
    return points


def sweep_generation(
    model: Any,
    prompts: Callable[[int, int], torch.Tensor],
    points: Sequence[SweepPoint],
    *,
    trials: int = 3,
    warmup: int = 1,
    name: str = "llm-sweep",
    on_point: Callable[[SweepPoint, int], None] | None = None,
    **meter_options: Unpack[MeterOptions],
) -> Run:
    """Meter `model.generate` at each point, `trials` times after `warmup` unmetered calls;
    one ledger run for the sweep.

    `prompts(batch_size, length)` gives the input ids (no padding). Each point is a window
    named after it (e.g. "b4-in32-out16") holding windows "trial-N", each one generate
    call with its prefill and decode; exactly `new_tokens` are generated per sequence
    (min_new_tokens), so the lengths are the point's. run.metadata[SWEEP_KEY] keeps one
    record per point with each trial's Generation; the model's parameters, dtype and
    device are in the metadata too. The other options are EnergyMeter's.
    """
    import torch

    check_meter_options(meter_options, "sweep_generation")
    if trials < 1 or warmup < 0:
        raise ValueError(f"need trials ≥ 1 and warmup ≥ 0; got {trials} and {warmup}")
    parameter = next(model.parameters())
    metadata = {
        "kind": "llm-inference",
        "model": type(model).__name__,
        "parameters": sum(p.numel() for p in model.parameters()),
        "dtype": str(parameter.dtype).removeprefix("torch."),
        "device": str(parameter.device),
    }
    options = extend_options(meter_options, tags=["llm-sweep"], metadata=metadata)
    meter = EnergyMeter(name, **options)
    records: list[dict[str, Any]] = []
    with meter, torch.inference_mode():
        for index, point in enumerate(points):
            ids = prompts(point.batch_size, point.input_length).to(parameter.device)
            if tuple(ids.shape) != (point.batch_size, point.input_length):
                raise ValueError(
                    f"prompts({point.batch_size}, {point.input_length}) gave shape {tuple(ids.shape)}"
                )
            kwargs = {"max_new_tokens": point.new_tokens, "min_new_tokens": point.new_tokens,
                      "do_sample": False, "pad_token_id": _pad_id(model)}
            for _ in range(warmup):
                model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **kwargs)
            generations = []
            with meter.window(point.name):
                for trial in range(1, trials + 1):
                    _, generation = meter_generate(
                        model, ids, torch.ones_like(ids), meter=meter, window=f"trial-{trial}", **kwargs
                    )
                    generations.append(generation.to_dict())
            records.append({**asdict(point), "window": point.name, "trials": generations})
            meter.run.metadata[SWEEP_KEY] = records
            if on_point is not None:
                on_point(point, index + 1)
    return meter.run


def _pad_id(model: Any) -> int | None:
    """The pad id generate should use: the model's, else its end token (as GPT-2 needs)."""
    config = getattr(model, "generation_config", None)
    pad = getattr(config, "pad_token_id", None)
    if pad is None:
        eos = getattr(config, "eos_token_id", None)
        pad = eos[0] if isinstance(eos, (list, tuple)) else eos
    return pad
