"""`joulemeter demo --experiment train-large-then-compress`: the premise of Li et al. 2020
("Train Large, Then Compress", arXiv:2002.11794) at small scale, offline.

A small and a larger Transformer encoder (BertForSequenceClassification built from
configs) learn a generated task, "which symbol occurs most often in the sequence", each
trained until the meter has measured the same energy budget. The larger one is then
pruned (with a short fine-tune) and quantized (dynamic int8; bf16/fp16 and torchao
weight-only where the device supports them). Every model's inference is metered with
repeated trials, and joulemeter.reports.tlc says whether the premise held here.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from joulemeter.integrations.compression import (
    HALF_PRECISIONS,
    WEIGHT_ONLY,
    benchmark_inference,
    half_precision_unsupported,
    logits_module,
    production_meter,
    prune_magnitude,
    quantize_dynamic_int8,
    quantize_weight_only,
    resolve_device,
    set_torch_threads,
    to_half_precision,
    train_until_energy,
    weight_only_unsupported,
)
from joulemeter.integrations.demo import check_report_path, write_report
from joulemeter.meter.run import Run

if TYPE_CHECKING:
    import torch
    from torch import nn

    from joulemeter.reports.tlc import TLCSummary

log = logging.getLogger("joulemeter.demo")

BASE_MODEL = "majority-transformer"
SMALL, LARGE = "small", "large"

#: progress callback: (stage, steps done, steps in the stage)
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Encoder:
    """A Transformer encoder's size: width, blocks and attention heads (FFN is 4 × width)."""

    hidden: int
    layers: int
    heads: int

    def describe(self) -> str:
        return f"{self.layers} block(s) × width {self.hidden}, {self.heads} heads"


@dataclass(frozen=True)
class TLCPlan:
    """How much work the experiment does. Without a budget in joules, the small model
    trains for `train_s` seconds and the energy measured is the budget of the large one."""

    train_s: float
    small: Encoder
    large: Encoder
    train_examples: int
    test_examples: int
    trials: int
    max_trials: int
    min_trial_s: float
    fine_tune_batches: int
    symbols: int = 4
    length: int = 24
    batch_size: int = 64
    inference_batch_size: int = 256
    lr: float = 2e-3
    prune_amount: float = 0.5
    max_steps: int = 100_000  # a guard for sources that read no energy


# The budget defaults to what the small model's `train_s` seconds measure, because the
# same joules are a few seconds on a machine with RAPL counters and a minute where the
# CPU is estimated (about 2.5 W for this one-thread process on the VM of docs/llm.md).
FULL = TLCPlan(
    train_s=50.0,
    small=Encoder(32, 1, 2), large=Encoder(96, 3, 4),
    train_examples=8_000, test_examples=2_000,
    trials=3, max_trials=6, min_trial_s=1.0, fine_tune_batches=20,
)
QUICK = TLCPlan(
    train_s=8.0,
    small=Encoder(16, 1, 2), large=Encoder(48, 2, 4),
    train_examples=2_000, test_examples=500,
    trials=2, max_trials=3, min_trial_s=0.5, fine_tune_batches=5,
)


@dataclass(frozen=True)
class TLCOptions:
    """What the experiment was asked for (its CLI options)."""

    quick: bool = False
    output: Path = Path("joulemeter-tlc.html")
    country: str | None = None
    queries: float = 1_000_000  # N in the lifecycle: training + compression + N queries
    budget_j: float | None = None  # None: what the small model's plan.train_s seconds measure
    ledger: str | os.PathLike[str] | None = None
    device: str = "auto"
    threads: int | None = 1  # as the compression demo: steadier trials on a shared CPU
    project: str = "demo"
    seed: int = 0
    plan: TLCPlan | None = None  # None: QUICK or FULL by `quick`


@dataclass
class TLCResult:
    summary: TLCSummary
    report_path: Path
    device: str
    duration_s: float


def tlc_stages() -> list[tuple[str, str]]:
    """(stage, description) in the order run_tlc goes through them."""
    return [
        ("train-small", "train the small model to the budget"),
        ("train-large", "train the large model to the budget"),
        ("compress", "compress the large model"),
        ("benchmark", "meter inference of each model"),
        ("report", "write the report"),
    ]


def run_tlc(options: TLCOptions, *, on_progress: Progress | None = None) -> TLCResult:
    """Run the experiment and write its HTML report to options.output."""
    import torch

    from joulemeter.reports.factors import resolve_factors
    from joulemeter.reports.render.tlc import render_tlc_html
    from joulemeter.reports.tlc import summarise_tlc

    began = time.monotonic()
    plan = options.plan or (QUICK if options.quick else FULL)
    progress = on_progress or (lambda stage, done, total: None)
    factors = resolve_factors(options.country)
    output = check_report_path(Path(options.output))
    device = resolve_device(options.device)
    if options.budget_j is not None and not options.budget_j > 0:
        raise ValueError(f"the training energy budget must be positive, got {options.budget_j}")
    set_torch_threads(options.threads)
    torch.manual_seed(options.seed)
    x_train, y_train = majority_task(plan.train_examples, plan.symbols, plan.length, seed=options.seed)
    x_test, y_test = majority_task(plan.test_examples, plan.symbols, plan.length, seed=options.seed + 1)
    loader = _loader(x_train, y_train, plan.batch_size, options.seed)
    own_process = os.getpid()

    def meter(name: str, kind: str, recipe: str, **metadata: Any):
        return production_meter(
            name, BASE_MODEL, kind=kind, device=device, project=options.project,
            ledger=options.ledger, metadata={"recipe": recipe, **metadata}, pid=own_process,
        )

    trained: dict[str, nn.Module] = {}
    training_runs: list[Run] = []
    budget_j = options.budget_j
    for name, size in ((SMALL, plan.small), (LARGE, plan.large)):
        model = encoder(size, plan.symbols, plan.length)
        stage = f"train-{name}"
        progress(stage, 0, 1)
        if budget_j is None:  # the small model sets the budget by time
            limit = f"trained for {plan.train_s:g} s, whose measured energy is the budget"
        else:
            limit = f"trained until {budget_j:g} J were measured"
        recipe = f"encoder {size.describe()}, Adam lr {plan.lr}, {limit}"
        with meter(name, "training", recipe, parameters=_parameters(model)) as m:
            steps = train_until_energy(
                model, loader, math.inf if budget_j is None else budget_j, meter=m,
                max_steps=plan.max_steps, max_s=plan.train_s if budget_j is None else None,
                lr=plan.lr, device=device,
            )
            budget_j = budget_j or sum(m.energy_so_far_j().values())  # as the large one reads it
            m.run.metadata.update(steps=steps, budget_j=budget_j)
        progress(stage, 1, 1)
        trained[name] = model
        training_runs.append(m.run)

    large = trained[LARGE]
    recipes: dict[str, tuple[str, Callable[[], nn.Module]]] = {
        f"{LARGE}-pruned": (
            f"unstructured L1 magnitude pruning of {plan.prune_amount:.0%} of the weights, "
            f"{plan.fine_tune_batches} batches of fine-tuning",
            lambda: prune_magnitude(
                large, plan.prune_amount, train_loader=_first_batches(loader, plan.fine_tune_batches),
                lr=plan.lr / 4, device=device,
            ),
        ),
        f"{LARGE}-int8": (
            "dynamic int8 quantization of every Linear (torch.ao; CPU kernels)",
            lambda: quantize_dynamic_int8(large),
        ),
    }
    for precision in HALF_PRECISIONS:
        recipes[f"{LARGE}-{precision}"] = (
            f"parameters cast to {precision}", lambda p=precision: to_half_precision(large, p)
        )
    for variant in WEIGHT_ONLY:
        recipes[f"{LARGE}-{variant}"] = (
            f"torchao int{WEIGHT_ONLY[variant]} weight-only quantization of every Linear",
            lambda v=variant: quantize_weight_only(large, v, device),
        )
    models: dict[str, nn.Module] = dict(trained)
    production_runs: list[Run] = []
    skipped: dict[str, str] = {}
    for step, (name, (recipe, make)) in enumerate(recipes.items(), start=1):
        reason = _unsupported(name.removeprefix(f"{LARGE}-"), device)
        if reason:
            skipped[name] = reason
        else:
            with meter(name, "production", recipe, trained_from=LARGE) as m:
                variant = make()
            problem = _size_problem(variant)
            if problem:
                skipped[name] = problem
            else:
                models[name] = variant
                production_runs.append(m.run)
        progress("compress", step, len(recipes))

    inference = benchmark_inference(
        models, x_test, y_test, batch_size=plan.inference_batch_size, warmup_batches=3,
        trials=plan.trials, max_trials=plan.max_trials, min_trial_s=plan.min_trial_s,
        base_model=BASE_MODEL, device=str(device), project=options.project,
        ledger=options.ledger, pid=own_process,
        on_round=lambda rounds, most: progress("benchmark", rounds, most),
    )
    summary = summarise_tlc(
        inference, training_runs, production_runs, baseline=SMALL, large=LARGE,
        budget_j=budget_j, queries=options.queries, test_size=len(y_test), factors=factors,
        skipped=skipped,
    )
    write_report(output, render_tlc_html(summary))
    progress("report", 1, 1)
    return TLCResult(summary, output, str(device), time.monotonic() - began)


def majority_task(
    n: int, symbols: int = 4, length: int = 24, *, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` sequences of `length` symbols drawn uniformly (ties for the most frequent symbol
    redrawn), each led by a class token (id `symbols`); the label is the most frequent
    symbol. Solving it means counting over the whole sequence, which attention can learn."""
    import torch

    if n < 1 or symbols < 2 or length < 1:
        raise ValueError(f"need n ≥ 1, symbols ≥ 2 and length ≥ 1; got {n}, {symbols}, {length}")
    generator = torch.Generator().manual_seed(seed)
    kept_x, kept_y, have = [], [], 0
    while have < n:
        x = torch.randint(0, symbols, (2 * n, length), generator=generator)
        counts = torch.stack([(x == s).sum(dim=1) for s in range(symbols)], dim=1)
        top = counts.topk(2, dim=1).values
        unique = top[:, 0] > top[:, 1]
        kept_x.append(x[unique])
        kept_y.append(counts[unique].argmax(dim=1))
        have += int(unique.sum())
    x, y = torch.cat(kept_x)[:n], torch.cat(kept_y)[:n]
    return torch.cat([torch.full((n, 1), symbols), x], dim=1), y


def encoder(size: Encoder, symbols: int, length: int) -> nn.Module:
    """A BertForSequenceClassification of `size` built from its config (no download, no
    dropout), wrapped to map token ids to class logits."""
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(
        vocab_size=symbols + 1, hidden_size=size.hidden, num_hidden_layers=size.layers,
        num_attention_heads=size.heads, intermediate_size=4 * size.hidden,
        max_position_embeddings=length + 1, num_labels=symbols,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )
    return logits_module(BertForSequenceClassification(config))


def _unsupported(variant: str, device: torch.device) -> str | None:
    if variant in HALF_PRECISIONS:
        return half_precision_unsupported(variant, device)
    if variant in WEIGHT_ONLY:
        return weight_only_unsupported(variant, device)
    return None


def _size_problem(model: nn.Module) -> str | None:
    """Why benchmark_inference could not take the variant's size figures, or None."""
    from joulemeter.integrations.compression import nonzero_parameter_count

    try:
        nonzero_parameter_count(model)
    except NotImplementedError as exc:  # torchao tensors before compression.stats reads them
        return f"its size figures cannot be read yet ({exc.__class__.__name__}: {str(exc)[:120]})"
    return None


def _parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _loader(x: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int) -> Any:
    import torch

    return torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y), batch_size=batch_size, shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )


def _first_batches(loader: Any, count: int) -> list[Any]:
    """The loader's first `count` batches, as a list a fine-tune passes over once."""
    batches = []
    for batch in loader:
        if len(batches) == count:
            break
        batches.append(batch)
    return batches
