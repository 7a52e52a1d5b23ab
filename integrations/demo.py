"""`joulemeter demo`: full versus compressed models, end to end, offline.

Trains an MLP on scikit-learn's bundled digits (1,797 8×8 images, no download),
builds pruned (fine-tuned), dynamic-int8, half-precision and distilled variants,
meters producing each and serving each (one ledger run apiece, project "demo"), and
writes an HTML report: comparison with ratios, Pareto plot, break-even of each
compression, lifetime projection, equivalences, every figure with its provenance.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from joulemeter.integrations.compression import (
    HALF_PRECISIONS,
    benchmark_inference,
    distill,
    half_precision_unsupported,
    production_meter,
    prune_magnitude,
    quantize_dynamic_int8,
    resolve_device,
    set_torch_threads,
    to_half_precision,
    train_classifier,
    weight_sparsity,
)
from joulemeter.meter.errors import ReportError
from joulemeter.meter.run import Run

if TYPE_CHECKING:
    import torch
    from torch import nn

    from joulemeter.reports.render.compression import CompressionSummary

log = logging.getLogger("joulemeter.demo")

BASE_MODEL = "digits-mlp"
BASELINE = "full"

#: progress callback: (stage, steps done, steps in the stage)
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class DemoPlan:
    """How much work each stage does; QUICK fits a test, FULL measures more honestly."""

    train_epochs: int
    fine_tune_epochs: int
    distill_epochs: int
    trials: int  # at least this many rounds, one trial of every variant each (2+ give an interval)
    max_trials: int  # more rounds while a ratio's 95 % interval to the full model is wider than ±5 %
    min_trial_s: float  # each trial repeats the test set until it has lasted this long
    prune_amount: float = 0.7
    hidden: int = 256
    student_hidden: int = 32
    batch_size: int = 64
    inference_batch_size: int = 256
    lr: float = 3e-3


QUICK = DemoPlan(
    train_epochs=6, fine_tune_epochs=1, distill_epochs=8, trials=2, max_trials=2, min_trial_s=0.5
)
FULL = DemoPlan(
    train_epochs=20, fine_tune_epochs=3, distill_epochs=30, trials=3, max_trials=6, min_trial_s=1.0
)


@dataclass(frozen=True)
class DemoOptions:
    """What `joulemeter demo` was asked for (its CLI options)."""

    quick: bool = False
    output: Path = Path("joulemeter-demo.html")
    country: str | None = None  # None: world-average grid intensity (said in the report)
    queries_per_day: float = 1_000_000
    days: float = 365
    ledger: str | os.PathLike[str] | None = None  # None: $JOULEMETER_LEDGER or the default
    device: str = "auto"
    # torch CPU threads: with 2 threads on a shared 2-core VM, trials of one model varied
    # 4–10×; with 1 they agreed within 1.1× (measured while building the demo).
    threads: int | None = 1
    project: str = "demo"
    seed: int = 0


@dataclass
class DemoResult:
    """The study's figures (runs included), where its report went, and how long it took."""

    summary: CompressionSummary
    report_path: Path
    device: str
    duration_s: float


def demo_stages() -> list[tuple[str, str]]:
    """(stage, description) in the order run_demo goes through them."""
    return [
        ("train", "train the full model"),
        ("variants", "build pruned, int8 and half-precision variants"),
        ("distill", "distill a smaller student"),
        ("benchmark", "meter inference of each variant"),
        ("report", "write the report"),
    ]


def run_demo(options: DemoOptions, *, on_progress: Progress | None = None) -> DemoResult:
    """Run the whole study and write its HTML report to options.output."""
    import torch

    from joulemeter.reports.factors import resolve_factors
    from joulemeter.reports.render.compression import (
        render_compression_html,
        summarise_compression,
    )

    began = time.monotonic()
    plan = QUICK if options.quick else FULL
    progress = on_progress or (lambda stage, done, total: None)
    factors = resolve_factors(options.country)  # a bad country fails before any work
    output = check_report_path(Path(options.output))
    device = resolve_device(options.device)
    set_torch_threads(options.threads)
    torch.manual_seed(options.seed)
    x_train, y_train, x_test, y_test = _digits(options.seed)
    loader = _loader(x_train, y_train, plan.batch_size, options.seed)
    production: list[Run] = []
    # Estimated CPU/RAM follow this process tree, not the whole machine, so other work on
    # a shared box does not leak into the variants' figures (counters are unaffected).
    own_process = os.getpid()

    def produce(
        name: str, recipe: str, make: Callable[[], nn.Module], kind: str = "production"
    ) -> nn.Module:
        with production_meter(
            name,
            BASE_MODEL,
            kind=kind,
            device=device,
            project=options.project,
            ledger=options.ledger,
            metadata={"recipe": recipe},
            pid=own_process,
        ) as meter:
            model = make()
        production.append(meter.run)
        return model

    full = produce(
        BASELINE,
        f"MLP 64-{plan.hidden}-{plan.hidden}-10, Adam lr {plan.lr}, {plan.train_epochs} epochs",
        lambda: train_classifier(
            _mlp(x_train.shape[1], plan.hidden),
            loader,
            epochs=plan.train_epochs,
            lr=plan.lr,
            device=device,
            on_epoch=lambda e: progress("train", e, plan.train_epochs),
        ),
        kind="training",
    )

    recipes: dict[str, tuple[str, Callable[[], nn.Module]]] = {
        "pruned": (
            f"unstructured L1 magnitude pruning of {plan.prune_amount:.0%} of the weights, "
            f"{plan.fine_tune_epochs} epoch(s) of fine-tuning",
            lambda: prune_magnitude(
                full,
                plan.prune_amount,
                train_loader=loader,
                fine_tune_epochs=plan.fine_tune_epochs,
                lr=plan.lr / 3,
                device=device,
            ),
        ),
        "int8": (
            "dynamic int8 quantization of every Linear (torch.ao; CPU kernels)",
            lambda: quantize_dynamic_int8(full),
        ),
    }
    for precision in HALF_PRECISIONS:
        recipes[precision] = (
            f"parameters cast to {precision}",
            lambda p=precision: to_half_precision(full, p),
        )
    variants: dict[str, nn.Module] = {BASELINE: full}
    skipped: dict[str, str] = {}
    for step, (name, (recipe, make)) in enumerate(recipes.items(), start=1):
        reason = half_precision_unsupported(name, device) if name in HALF_PRECISIONS else None
        if reason:
            skipped[name] = reason
            log.info("%s variant skipped: %s", name, reason)
        else:
            variants[name] = produce(name, recipe, make)
        progress("variants", step, len(recipes))
    log.info(
        "pruned variant: %.1f %% of weights are zero", 100 * weight_sparsity(variants["pruned"])
    )

    variants["distilled"] = produce(
        "distilled",
        f"distilled into an MLP 64-{plan.student_hidden}-10 (T=4, alpha 0.5), "
        f"{plan.distill_epochs} epochs",
        lambda: distill(
            full,
            _student(x_train.shape[1], plan.student_hidden),
            loader,
            epochs=plan.distill_epochs,
            lr=plan.lr,
            device=device,
            on_epoch=lambda e: progress("distill", e, plan.distill_epochs),
        ),
    )

    inference = benchmark_inference(
        variants,
        x_test,
        y_test,
        batch_size=plan.inference_batch_size,
        warmup_batches=5,
        trials=plan.trials,
        max_trials=plan.max_trials,
        min_trial_s=plan.min_trial_s,
        base_model=BASE_MODEL,
        device=str(device),
        project=options.project,
        ledger=options.ledger,
        on_round=lambda done, most: progress("benchmark", done, most),
        pid=own_process,
    )
    summary = summarise_compression(
        inference,
        production,
        baseline=BASELINE,
        queries_per_day=options.queries_per_day,
        days=options.days,
        factors=factors,
        skipped=skipped,
    )
    write_report(output, render_compression_html(summary))
    progress("report", 1, 1)
    return DemoResult(summary, output, str(device), time.monotonic() - began)


def _digits(seed: int) -> tuple[torch.Tensor, ...]:
    """scikit-learn's digits scaled to [0, 1], split 80/20 stratified."""
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        data.data / 16.0, data.target, test_size=0.2, random_state=seed, stratify=data.target
    )
    return (
        torch.tensor(x_train, dtype=torch.float32),
        torch.tensor(y_train),
        torch.tensor(x_test, dtype=torch.float32),
        torch.tensor(y_test),
    )


def _loader(x: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int) -> Any:
    import torch

    return torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y),
        batch_size=batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )


def _mlp(inputs: int, hidden: int) -> nn.Module:
    from torch import nn

    return nn.Sequential(
        nn.Linear(inputs, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, 10),
    )


def _student(inputs: int, hidden: int) -> nn.Module:
    from torch import nn

    return nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, 10))


def check_report_path(path: Path) -> Path:
    """Create the report's folder and make sure it can be written, before any work."""
    if path.is_dir():
        raise ReportError(
            f"{path} is a folder; give a file name for the report, e.g. {path / 'demo.html'}"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    if not os.access(path.parent, os.W_OK):
        raise ReportError(f"cannot write to {path.parent}; choose another place", parameter="output")
    return path


def write_report(path: Path, text: str) -> None:
    """Write a report whole or not at all (meter.export.replacing: a temporary file, renamed)."""
    from joulemeter.meter.export import replacing

    with replacing(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
