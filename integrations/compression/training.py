"""Supervised training and evaluation loops shared by the variants (full training,
fine-tuning after pruning) and the benchmark, metered when a meter is running.

torch is imported inside the functions so that importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterable
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
    """Train `model` in place with Adam on (inputs, labels) batches (cross-entropy by default).

    When a meter runs (given, or the current one) each epoch is a window "epoch-N" and
    every batch's samples are counted, so energy per sample and training prediction work.
    `on_epoch(n)` is called after each epoch (progress bars).
    """
    import torch

    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    device = torch.device(device)
    meter = meter or current_meter()
    loss_fn = loss_fn or torch.nn.functional.cross_entropy
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    dtype = model_dtype(model)
    last_loss = None
    for epoch in range(1, epochs + 1):
        with meter.window(f"epoch-{epoch}") if meter else contextlib.nullcontext():
            for inputs, labels in loader:
                inputs, labels = inputs.to(device, dtype), labels.to(device)
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


def accuracy(
    model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, *, batch_size: int = 512
) -> float:
    """Share of `inputs` whose arg-max prediction equals its label (model in eval mode)."""
    import torch

    device, dtype = model_device(model), model_dtype(model)
    correct = 0
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(inputs), batch_size):
            batch = inputs[start : start + batch_size].to(device, dtype)
            predicted = model(batch).argmax(dim=1).cpu()
            correct += int((predicted == labels[start : start + batch_size].cpu()).sum())
    return correct / len(inputs)


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
    return EnergyMeter(f"{base_model}/{variant} {kind}", **options)
