"""Compressed variants of a model, built with torch's own APIs; each returns a new model
and leaves the original untouched.

- magnitude pruning (torch.nn.utils.prune): unstructured L1 over all weights, or
  structured Ln over output channels/rows; optionally fine-tuned with the masks in
  place, then made permanent (prune.remove) so no `weight_orig`/`weight_mask` remain;
- dynamic int8 quantization of nn.Linear (torch.ao.quantization.quantize_dynamic);
- weight-only int8 / int4 of nn.Linear through torchao's quantize_ (an optional package);
- half precision (bf16 / fp16), after checking the device supports it natively.

Transformers work as they are: GPT-2's Conv1D projections are turned into nn.Linear in
the copy first (compression.transformer), and a Linear that shares its weight with an
embedding (a tied language-model head) is left out of pruning.

Why both int8 paths: torch 2.13 marks torch.ao's quantize_dynamic deprecated in favour
of torchao, but on the CPU it is still the one with fast eager kernels (fbgemm). Measured
here (torch 2.13.0, torchao 0.18.0, 1 thread, a 512-2048-512 MLP, batch 64): float32
6.4 ms, quantize_dynamic 2.8 ms, torchao Int8WeightOnlyConfig 8.2 ms,
Int8DynamicActivationInt8WeightConfig 153 ms; torchao's kernels are for CUDA or
torch.compile. So dynamic int8 stays on torch.ao for CPU serving, and torchao's
weight-only int8/int4 is the path for GPUs (torch.ao has no CUDA kernels at all).
"""

from __future__ import annotations

import copy
import logging
import math
import warnings
from collections.abc import Iterable
from typing import TYPE_CHECKING

from joulemeter.integrations.compression.training import train_classifier
from joulemeter.integrations.compression.transformer import copy_with_linears, tied_linears

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger("joulemeter.compression")

#: variant name -> torch dtype attribute
HALF_PRECISIONS = {"bf16": "bfloat16", "fp16": "float16"}

#: weight-only variant name -> bits per weight (torchao)
WEIGHT_ONLY = {"w8": 8, "w4": 4}

#: torchao Int4WeightOnlyConfig's default group size (torchao 0.18 API reference,
#: torchao.quantization.Int4WeightOnlyConfig): one scale per 128 weights of a row
INT4_GROUP_SIZE = 128


def prunable_layers(model: nn.Module) -> list[nn.Module]:
    """The Linear and Conv layers whose weights pruning acts on, in module order, without
    a Linear that shares its weight with an embedding (a tied language-model head)."""
    from torch import nn

    kinds = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
    tied = tied_linears(model)
    return [m for m in model.modules() if isinstance(m, kinds) and id(m) not in tied]


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
    pruned = copy_with_linears(model)
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

    float_model = copy_with_linears(model).to("cpu").float().eval()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.ao\.quantization is deprecated")
        warnings.filterwarnings("ignore", message=r".*quantize_per_tensor.*deprecated")
        return quantize_dynamic(float_model, {nn.Linear}, dtype=torch.qint8)


def is_quantized(model: nn.Module) -> bool:
    """True when the model holds torch.ao quantized modules (they run on the CPU only)."""
    return any(type(m).__module__.startswith("torch.ao.nn.quantized") for m in model.modules())


def weight_only_bits(model: nn.Module) -> int | None:
    """Bits per weight of a torchao weight-only quantized model (8 or 4), else None."""
    for parameter in model.parameters():
        kind = type(parameter)
        if kind.__module__.startswith("torchao."):
            return 4 if "Int4" in kind.__name__ else 8
    return None


def precision_label(model: nn.Module) -> str:
    """How the model's weights are stored: "qint8" (torch.ao dynamic), "int8-weight-only"
    or "int4-weight-only" (torchao), else the floating dtype ("float32", "bfloat16")."""
    from joulemeter.integrations.compression.training import model_dtype

    if is_quantized(model):
        return "qint8"
    bits = weight_only_bits(model)
    if bits is not None:
        return f"int{bits}-weight-only"
    return str(model_dtype(model)).removeprefix("torch.")


def weight_only_unsupported(variant: str, device: torch.device | str = "cpu") -> str | None:
    """Why the torchao weight-only `variant` ("w8" or "w4") cannot be built or is not worth
    running on `device`, or None if it is."""
    import importlib.util

    import torch

    if variant not in WEIGHT_ONLY:
        raise ValueError(f"unknown weight-only variant {variant!r}; choose one of {', '.join(WEIGHT_ONLY)}")
    if importlib.util.find_spec("torchao") is None:
        return "torchao is not installed (pip install 'joulemeter[torchao]')"
    device = torch.device(device)
    if device.type != "cuda":
        if variant == "w4":
            return (
                "torchao 0.18's int4 weight-only kernels need a CUDA GPU (tinygemm) or the mslk "
                "package; on the CPU it would store int4 values unpacked in int8"
            )
        return (
            "torchao's int8 weight-only has no fast eager CPU kernel (measured slower than "
            "float32 here, see variants.py); dynamic int8 is the CPU variant"
        )
    return None


def quantize_weight_only(model: nn.Module, variant: str, device: torch.device | str = "cuda") -> nn.Module:
    """A copy of `model` on `device` with every nn.Linear's weight quantized by torchao:
    "w8" int8 per row (Int8WeightOnlyConfig), "w4" int4 in groups of INT4_GROUP_SIZE
    (Int4WeightOnlyConfig, tinygemm layout, bf16 activations). Activations stay floating.

    Check `weight_only_unsupported` first: this tries whatever the device.
    """
    import torch

    if variant not in WEIGHT_ONLY:
        raise ValueError(f"unknown weight-only variant {variant!r}; choose one of {', '.join(WEIGHT_ONLY)}")
    from torchao.quantization import Int4WeightOnlyConfig, Int8WeightOnlyConfig, quantize_

    quantized = copy_with_linears(model).to(device).eval()
    if variant == "w4":
        quantized = quantized.to(torch.bfloat16)
        config = Int4WeightOnlyConfig(
            group_size=INT4_GROUP_SIZE, int4_packing_format="tile_packed_to_4d"
        )
    else:
        config = Int8WeightOnlyConfig()
    quantize_(quantized, config)
    return quantized


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
