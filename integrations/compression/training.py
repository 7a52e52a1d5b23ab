"""Supervised training and evaluation loops shared by the variants (full training,
fine-tuning after pruning) and the benchmark, metered when a meter is running.

torch is imported inside the functions so that importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from joulemeter.integrations.pytorch import cuda_sync_function
from joulemeter.meter import EnergyMeter, current_meter
from joulemeter.meter.meter import MeterOptions, extend_options

if TYPE_CHECKING:
    import torch
    from torch import nn
    from typing_extensions import Unpack

log = logging.getLogger("joulemeter.compression")


def resolve_device(device: str = "auto") -> torch.device:
    """ "auto" means cuda when torch sees a GPU, else cpu; "cpu"/"cuda"/"cuda:N" as given."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {device!r} asked for, but torch sees no CUDA GPU; use cpu or auto"
        )
    return resolved


def window_sync(device: torch.device) -> Callable[[], None] | None:
    """The callable to give EnergyMeter(sync=…) so window edges wait for the GPU, or None."""
    return cuda_sync_function(device.type == "cuda")


def set_torch_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads: `threads`, or every core this process may run on
    (None); returns the count. On a machine busy with other work, fewer threads than
    cores measure small models far more steadily (threads wait for each other less)."""
    import torch

    if threads is None:
        affinity = getattr(os, "sched_getaffinity", None)
        threads = len(affinity(0)) if affinity else os.cpu_count() or 1
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    torch.set_num_threads(threads)
    return threads


def model_dtype(model: nn.Module) -> torch.dtype:
    """The floating dtype the model's inputs must have (float32 for quantized models)."""
    import torch

    for tensor in list(model.parameters()) + list(model.buffers()):
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.float32


def model_device(model: nn.Module) -> torch.device:
    """Where the model's tensors live (cpu for a model without parameters)."""
    import torch

    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return torch.device("cpu")


def as_model_input(batch: torch.Tensor, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """`batch` on `device`; floating inputs take the model's dtype, token ids stay integers."""
    return batch.to(device, dtype) if batch.is_floating_point() else batch.to(device)


def flat_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the last axis: (N, C) logits with (N,) labels, or per position
    (N, T, C) with (N, T), as a language model's next-token targets are."""
    import torch.nn.functional as F

    return F.cross_entropy(logits.flatten(0, -2).float(), labels.flatten())


def train_classifier(
    model: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    epochs: int = 1,
    lr: float = 1e-3,
    device: torch.device | str = "cpu",
    meter: EnergyMeter | None = None,
    loss_fn: Any = None,
    on_epoch: Callable[[int], None] | None = None,
) -> nn.Module:
    """Train `model` in place with Adam on (inputs, labels) batches (`flat_cross_entropy` by
    default). Inputs are features or token ids (a Transformer wrapped by `logits_module`).

    When a meter runs (given, or the current one) each epoch is a window "epoch-N" and
    every batch's samples are counted, so energy per sample and training prediction work.
    `on_epoch(n)` is called after each epoch (progress bars).
    """
    import torch

    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    device = torch.device(device)
    meter = meter or current_meter()
    loss_fn = loss_fn or flat_cross_entropy
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    dtype = model_dtype(model)
    last_loss = None
    for epoch in range(1, epochs + 1):
        with meter.window(f"epoch-{epoch}") if meter else contextlib.nullcontext():
            for inputs, labels in loader:
                inputs, labels = as_model_input(inputs, device, dtype), labels.to(device)
                optimizer.zero_grad()
                loss = loss_fn(model(inputs), labels)
                loss.backward()
                optimizer.step()
                last_loss = loss.item()
                if meter:
                    meter.count(len(labels), "samples")
        log.debug("epoch %d: last batch loss %s", epoch, last_loss)
        if on_epoch is not None:
            on_epoch(epoch)
    return model.eval()


def train_until_energy(
    model: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    budget_j: float,
    *,
    meter: EnergyMeter,
    max_steps: int,
    max_s: float | None = None,
    lr: float = 1e-3,
    device: torch.device | str = "cpu",
    loss_fn: Any = None,
    on_step: Callable[[float], None] | None = None,
) -> int:
    """Train `model` in place with Adam, passing over `loader` again and again, until the
    running `meter` has measured `budget_j` joules since it started (math.inf: no energy
    limit), `max_steps` were taken (a guard for sources that read no energy) or the window
    has lasted `max_s` seconds; returns the steps taken.

    The check reads `meter.energy_so_far_j()` after every step: counters are read then,
    estimated and sampled domains count up to their latest tick, so the run may overshoot
    the budget by up to one sampler interval of energy; the run records what was spent.
    All steps are in one window "train" that counts samples and steps. `on_step(spent_j)`
    is called after each step (progress bars).
    """
    import torch

    if not budget_j > 0 or max_steps < 1 or (max_s is not None and not max_s > 0):
        raise ValueError(
            f"need budget_j > 0, max_steps ≥ 1 and max_s > 0 or None; got {budget_j!r}, "
            f"{max_steps!r} and {max_s!r}"
        )
    if not meter.running:
        raise ValueError("train_until_energy needs a running meter: call it inside `with meter:`")
    device = torch.device(device)
    loss_fn = loss_fn or flat_cross_entropy
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    dtype = model_dtype(model)
    steps = 0
    started = time.monotonic()
    with meter.window("train"):
        for inputs, labels in _batches_forever(loader):
            inputs, labels = as_model_input(inputs, device, dtype), labels.to(device)
            optimizer.zero_grad()
            loss_fn(model(inputs), labels).backward()
            optimizer.step()
            steps += 1
            meter.count(len(labels), "samples")
            meter.count(1, "steps")
            spent = sum(meter.energy_so_far_j().values())
            if on_step is not None:
                on_step(spent)
            out_of_time = max_s is not None and time.monotonic() - started >= max_s
            if spent >= budget_j or steps >= max_steps or out_of_time:
                break
    model.eval()
    log.debug("trained %d steps on a %.1f J budget", steps, budget_j)
    return steps


def _batches_forever(loader: Iterable[Any]) -> Iterator[Any]:
    """The loader's batches, pass after pass; ValueError if a pass yields none."""
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise ValueError("the loader yields no batches")


def accuracy(
    model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, *, batch_size: int = 512
) -> float:
    """Share of predictions (arg-max over the last axis) equal to their label, model in eval
    mode: one per input for a classifier, one per position for per-token labels."""
    import torch

    device, dtype = model_device(model), model_dtype(model)
    correct = 0
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(inputs), batch_size):
            batch = as_model_input(inputs[start : start + batch_size], device, dtype)
            predicted = model(batch).argmax(dim=-1).cpu()
            correct += int((predicted == labels[start : start + batch_size].cpu()).sum())
    return correct / labels.numel()


def production_meter(
    variant: str,
    base_model: str,
    *,
    kind: str = "production",
    device: torch.device | str = "cpu",
    **meter_options: Unpack[MeterOptions],
) -> EnergyMeter:
    """A meter for the energy spent producing a variant: `kind` "training" for the full
    model, "production" for fine-tuning after pruning, distillation, conversion.

    Its run carries kind, variant and base_model in metadata and tags, so break-even
    and lifetime comparisons find the production energy of each variant; `tags` and
    `metadata` add to them (e.g. a "recipe" saying how the variant was made).
    """
    import torch

    options = extend_options(
        meter_options,
        tags=[variant, base_model, kind],
        metadata={"kind": kind, "variant": variant, "base_model": base_model},
        sync=window_sync(torch.device(device)),
    )
    # named for a reader: "production" is the ledger's kind, which a run list would misread
    doing = "training" if kind == "training" else "making" if kind == "production" else kind
    return EnergyMeter(f"{base_model}/{variant} ({doing})", **options)
