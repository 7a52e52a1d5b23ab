"""Size figures of a model, dense, pruned or dynamic-quantized alike: parameters,
non-zero parameters, bytes in memory, and bytes of its saved state_dict.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from torch import nn


def _weight_tensors(model: nn.Module) -> Iterator[torch.Tensor]:
    """Every learned tensor once: plain parameters, and the weight and bias that dynamic
    quantized Linear layers keep packed (dequantized, so zeros read as 0)."""
    for module in model.modules():
        if hasattr(module, "_packed_params") and callable(getattr(module, "weight", None)):
            yield module.weight().dequantize()
            bias = module.bias()
            if bias is not None:
                yield bias
        else:
            for parameter in module.parameters(recurse=False):
                # torchao's quantized weights are tensor subclasses without count_nonzero
                yield parameter.dequantize() if _is_torchao(parameter) else parameter


def _is_torchao(tensor: torch.Tensor) -> bool:
    return type(tensor).__module__.startswith("torchao.")


def parameter_count(model: nn.Module) -> int:
    """Learned values (weights and biases), whatever their storage type."""
    return sum(t.numel() for t in _weight_tensors(model))


def nonzero_parameter_count(model: nn.Module) -> int:
    """Learned values that are not exactly zero (what pruning removes)."""
    return sum(int(t.count_nonzero()) for t in _weight_tensors(model))


def state_bytes(model: nn.Module) -> int:
    """Bytes the model's state takes in memory (quantized weights at their int8 size)."""
    return sum(t.numel() * t.element_size() for t in _state_tensors(model.state_dict()))


def _state_tensors(value: object) -> Iterator[torch.Tensor]:
    """Tensors in a state_dict, looking inside the tuples that packed params are."""
    import torch

    if isinstance(value, torch.Tensor) and _is_torchao(value):
        names, _ = value.__tensor_flatten__()  # the int8/int4 data and scales it holds
        for name in names:
            yield getattr(value, name)
    elif isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _state_tensors(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _state_tensors(item)


def size_on_disk_bytes(model: nn.Module) -> int:
    """Bytes of `torch.save(model.state_dict())` (quantized models save their int8 state).

    Pruned weights are stored dense, so unstructured pruning alone does not shrink this.
    """
    import torch

    with tempfile.TemporaryDirectory(prefix="joulemeter-size-") as folder:
        path = os.path.join(folder, "model.pt")  # the name goes into the archive: keep it fixed
        torch.save(model.state_dict(), path)
        return os.stat(path).st_size
