"""Compressed variants of a model, built with torch's own APIs; each returns a new model
and leaves the original untouched.

- magnitude pruning (torch.nn.utils.prune): unstructured L1 over all weights, or
  structured Ln over output channels/rows; optionally fine-tuned with the masks in
  place, then made permanent (prune.remove) so no `weight_orig`/`weight_mask` remain;
- dynamic int8 quantization of nn.Linear (torch.ao.quantization.quantize_dynamic);
- half precision (bf16 / fp16), after checking the device supports it natively.
"""

from __future__ import annotations

import copy
import logging
import math
import warnings
from collections.abc import Iterable
from typing import TYPE_CHECKING

from joulemeter.integrations.compression.training import train_classifier

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger("joulemeter.compression")

#: variant name -> torch dtype attribute
HALF_PRECISIONS = {"bf16": "bfloat16", "fp16": "float16"}


def prunable_layers(model: nn.Module) -> list[nn.Module]:
    """The Linear and Conv layers whose weights pruning acts on, in module order."""
    from torch import nn

    kinds = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
    return [m for m in model.modules() if isinstance(m, kinds)]


def weight_sparsity(model: nn.Module) -> float:
    """Share of zero weights over the prunable layers (biases not counted)."""
    layers = prunable_layers(model)
    total = sum(layer.weight.numel() for layer in layers)
    zeros = sum(int((layer.weight == 0).sum()) for layer in layers)
    return zeros / total if total else 0.0


def prune_magnitude(
    model: nn.Module,
    amount: float,
    *,
    structured: bool = False,
    norm: float = 2,
    train_loader: Iterable[tuple[torch.Tensor, torch.Tensor]] | None = None,
    fine_tune_epochs: int = 1,
    lr: float = 1e-3,
    device: torch.device | str = "cpu",
) -> nn.Module:
    """A pruned copy of `model` with at least `amount` (0–1) of its weights zero for good.

    Unstructured: the smallest-|w| weights over all Linear/Conv layers together (global
    L1). Structured: in each layer but the last (whose rows are the outputs), the output
    rows/channels of smallest Ln norm. With `train_loader` the copy is fine-tuned for
    `fine_tune_epochs` while the masks hold the pruned weights at zero; meter that call
    to get the production energy of the variant.
    """
    import torch.nn.utils.prune as prune

    if not 0.0 <= amount < 1.0:
        raise ValueError(f"amount is the share of weights to prune, in [0, 1); got {amount!r}")
    pruned = copy.deepcopy(model)
    layers = prunable_layers(pruned)
    if not layers:
        raise ValueError("the model has no Linear or Conv layer to prune")
    if structured:
        layers = layers[:-1]
        if not layers:
            raise ValueError("structured pruning needs a layer before the output layer")
        for layer in layers:
            rows = math.ceil(amount * layer.weight.shape[0])
            prune.ln_structured(layer, "weight", amount=rows, n=norm, dim=0)
    else:
        weights = sum(layer.weight.numel() for layer in layers)
        prune.global_unstructured(
            [(layer, "weight") for layer in layers],
            pruning_method=prune.L1Unstructured,
            amount=math.ceil(amount * weights),
        )
    if train_loader is not None:
        train_classifier(pruned, train_loader, epochs=fine_tune_epochs, lr=lr, device=device)
    for layer in layers:
        prune.remove(layer, "weight")
    return pruned.eval()


def quantize_dynamic_int8(model: nn.Module) -> nn.Module:
    """A copy of `model` on the CPU with every nn.Linear replaced by a dynamic int8 Linear.

    Weights are stored as int8, activations quantized on the fly. torch 2.13 still ships
    torch.ao.quantization.quantize_dynamic but marks it deprecated in favour of torchao
    (a separate package); the warning is silenced here because the API works.
    """
    import torch
    from torch import nn
    from torch.ao.quantization import quantize_dynamic

    float_model = copy.deepcopy(model).to("cpu").float().eval()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.ao\.quantization is deprecated")
        warnings.filterwarnings("ignore", message=r".*quantize_per_tensor.*deprecated")
        return quantize_dynamic(float_model, {nn.Linear}, dtype=torch.qint8)


def is_quantized(model: nn.Module) -> bool:
    """True when the model holds quantized modules (they run on the CPU only)."""
    return any(type(m).__module__.startswith("torch.ao.nn.quantized") for m in model.modules())


def half_precision_unsupported(precision: str, device: torch.device | str = "cpu") -> str | None:
    """Why `precision` ("bf16" or "fp16") is not worth running on `device`, or None if it is.

    On the CPU only native instructions count (oneDNN reports them): without them torch
    emulates the type, far slower than float32. On CUDA, bf16 needs Ampere or newer.
    A tiny matmul trial must also run and agree with float32.
    """
    import torch

    if precision not in HALF_PRECISIONS:
        raise ValueError(
            f"unknown precision {precision!r}; choose one of {', '.join(HALF_PRECISIONS)}"
        )
    dtype = getattr(torch, HALF_PRECISIONS[precision])
    device = torch.device(device)
    if device.type == "cpu":
        native = (
            torch.ops.mkldnn._is_mkldnn_bf16_supported()
            if precision == "bf16"
            else torch.ops.mkldnn._is_mkldnn_fp16_supported()
        )
        if not native:
            return (
                f"this CPU has no native {precision} instructions (oneDNN reports none), so torch "
                f"would emulate {precision}, slower than float32"
            )
    elif device.type == "cuda" and precision == "bf16" and not torch.cuda.is_bf16_supported():
        return "this GPU does not support bf16 (needs compute capability 8.0, Ampere, or newer)"
    return _matmul_trial_problem(dtype, device)


def _matmul_trial_problem(dtype: torch.dtype, device: torch.device) -> str | None:
    """Run a small matmul in `dtype`; say what went wrong, or None when it matches float32."""
    import torch

    generator = torch.Generator().manual_seed(0)
    a = torch.rand(16, 16, generator=generator)
    b = torch.rand(16, 16, generator=generator)
    try:
        low = (a.to(device, dtype) @ b.to(device, dtype)).float().cpu()
    except (RuntimeError, TypeError) as exc:
        return f"a {dtype} matmul failed on {device}: {exc}"
    reference = a @ b
    if not torch.allclose(low, reference, rtol=0.05, atol=0.05):
        return f"a {dtype} matmul on {device} disagrees with float32 beyond 5 %"
    return None


def to_half_precision(model: nn.Module, precision: str) -> nn.Module:
    """A copy of `model` with floating parameters and buffers cast to bf16 or fp16.

    Check `half_precision_unsupported` first: this casts whatever the device.
    """
    import torch

    if precision not in HALF_PRECISIONS:
        raise ValueError(
            f"unknown precision {precision!r}; choose one of {', '.join(HALF_PRECISIONS)}"
        )
    return copy.deepcopy(model).to(getattr(torch, HALF_PRECISIONS[precision])).eval()
