"""`joulemeter demo --experiment llm-sweep`: energy per token of a GPT-2 built from its
config (no download), prompted with byte-level tokens of Python's own docstrings, over a
sweep of batch sizes and prompt lengths; one ledger run and an HTML report with the
J/token curves. On a GPU the model is GPT-2 small's shape (124 M parameters); on the CPU
a 4-block, width-256 one, so the sweep takes a minute or two.

An untrained model's tokens are noise, but the work per token, and so the energy, is
the same as a trained one's of the same shape.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from joulemeter.integrations.compression import resolve_device, set_torch_threads
from joulemeter.integrations.compression.transformer import byte_tokens, python_docs_text
from joulemeter.integrations.demo import check_report_path, write_report
from joulemeter.integrations.llm import sweep_generation, sweep_points
from joulemeter.meter.run import Run

if TYPE_CHECKING:
    import torch

#: GPT-2 small (Radford et al. 2019, "Language Models are Unsupervised Multitask
#: Learners", table 2: 12 layers, d_model 768; 124 M parameters with its 50,257-token vocabulary)
GPT2_SMALL = {"n_embd": 768, "n_layer": 12, "n_head": 12, "vocab_size": 50_257}
CPU_MODEL = {"n_embd": 256, "n_layer": 4, "n_head": 4, "vocab_size": 256}
TINY_MODEL = {"n_embd": 64, "n_layer": 2, "n_head": 2, "vocab_size": 256}


def sweep_name(quick: bool) -> str:
    """The sweep run's name: a --quick sweep (a tiny model) says so, so that it is never taken
    for a full one in `joulemeter runs`."""
    return "llm-sweep-quick" if quick else "llm-sweep"


@dataclass(frozen=True)
class LLMDemoOptions:
    """What the sweep was asked for (the CLI's options)."""

    quick: bool = False
    output: Path = Path("joulemeter-llm.html")
    ledger: str | os.PathLike[str] | None = None
    device: str = "auto"
    threads: int | None = 1
    project: str = "demo"
    seed: int = 0
    batch_sizes: tuple[int, ...] = (1, 4, 16)
    input_lengths: tuple[int, ...] = (32, 128)
    new_tokens: tuple[int, ...] = (32,)
    trials: int = 3
    model: dict[str, int] | None = None  # GPT2Config sizes; None: by device and `quick`
    extra: dict[str, Any] = field(default_factory=dict)  # more GPT2Config fields


@dataclass
class LLMDemoResult:
    run: Run
    report_path: Path
    device: str
    duration_s: float


def run_llm_demo(
    options: LLMDemoOptions, *, on_progress: Callable[[str, int, int], None] | None = None
) -> LLMDemoResult:
    """Build the model, run the sweep, write the report."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from joulemeter.reports.render.llm import render_llm_html

    began = time.monotonic()
    progress = on_progress or (lambda stage, done, total: None)
    output = check_report_path(Path(options.output))
    device = resolve_device(options.device)
    set_torch_threads(options.threads)
    torch.manual_seed(options.seed)
    sizes = options.model or (
        TINY_MODEL if options.quick else GPT2_SMALL if device.type == "cuda" else CPU_MODEL
    )
    points = sweep_points(options.batch_sizes, options.input_lengths, options.new_tokens)
    longest = max(p.input_length + p.new_tokens for p in points)
    config = GPT2Config(
        n_positions=max(longest, 1024), bos_token_id=0, eos_token_id=0, **sizes, **options.extra
    )
    model = GPT2LMHeadModel(config).to(device).eval()
    text = byte_tokens(python_docs_text())
    generator = torch.Generator().manual_seed(options.seed)

    def prompts(batch_size: int, length: int) -> torch.Tensor:
        """Consecutive slices of the docs text starting at random places."""
        starts = torch.randint(0, len(text) - length, (batch_size,), generator=generator)
        return torch.stack([text[s : s + length] for s in starts.tolist()])

    progress("sweep", 0, len(points))
    run = sweep_generation(
        model, prompts, points, name=sweep_name(options.quick), trials=options.trials, project=options.project,
        ledger=options.ledger, pid=os.getpid(),
        metadata={"config": {k: v for k, v in config.to_dict().items() if k in sizes}},
        on_point=lambda point, done: progress("sweep", done, len(points)),
    )
    write_report(output, render_llm_html(run))
    progress("report", 1, 1)
    return LLMDemoResult(run, output, str(device), time.monotonic() - began)
