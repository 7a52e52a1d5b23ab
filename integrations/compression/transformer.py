"""Transformers in the workbench: a wrapper that makes a Hugging Face model a plain
tensor → logits module (so training, accuracy, distillation and the inference benchmark
take it as they take an MLP), GPT-2's Conv1D layers turned into nn.Linear (so pruning
and quantization see them), and perplexity on held-out tokens.

torch and transformers are imported inside the functions.
"""

from __future__ import annotations

import copy
import functools
import math
from typing import TYPE_CHECKING

from joulemeter.integrations.compression.training import model_device

if TYPE_CHECKING:
    import torch
    from torch import nn


def logits_module(model: nn.Module) -> nn.Module:
    """`model` (a Hugging Face model returning an output with `.logits`) as a module that
    takes token ids, (batch, length), and returns the logits tensor.

    Floating inputs are rounded back to ids: benchmark_inference casts its inputs to the
    model's dtype, which keeps every id below 256 exact even in bf16 (8 significant bits).
    """
    return _logits_class()(model)


@functools.cache
def _logits_class() -> type:
    from torch import nn

    class LogitsOnly(nn.Module):
        """Token ids in, logits out: the wrapped model's `.logits`."""

        def __init__(self, model: nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            if ids.is_floating_point():
                ids = ids.round().long()
            return self.model(input_ids=ids).logits

    return LogitsOnly


def is_conv1d(module: nn.Module) -> bool:
    """True for transformers' Conv1D (GPT-2's attention and MLP projections): a Linear
    with its weight stored transposed, (in, out)."""
    kind = type(module)
    return kind.__name__ == "Conv1D" and kind.__module__.startswith("transformers.")


def conv1d_to_linear(model: nn.Module) -> nn.Module:
    """Replace, in place, every transformers Conv1D of `model` by the nn.Linear that
    computes the same (weight transposed, same bias); returns `model`.

    Pruning (torch.nn.utils.prune over nn.Linear), dynamic int8 (quantize_dynamic maps
    nn.Linear) and torchao (quantize_ filters nn.Linear) all look for nn.Linear only;
    GPT-2 keeps its projections in Conv1D, so without this they would leave them alone.
    """
    import torch
    from torch import nn

    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if not is_conv1d(child):
                continue
            n_in, n_out = child.weight.shape
            linear = nn.Linear(n_in, n_out, bias=child.bias is not None)
            linear = linear.to(child.weight.device, child.weight.dtype)
            with torch.no_grad():
                linear.weight.copy_(child.weight.t())
                if child.bias is not None:
                    linear.bias.copy_(child.bias)
            setattr(parent, name, linear)
    return model


def tied_linears(model: nn.Module) -> set[int]:
    """ids of the nn.Linear layers whose weight is an Embedding's (GPT-2's lm_head shares
    the token embedding): pruning one would prune the other and untie them."""
    from torch import nn

    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    return {
        id(m) for m in model.modules() if isinstance(m, nn.Linear) and id(m.weight) in embeddings
    }


def perplexity(
    model: nn.Module, tokens: torch.Tensor, *, block: int = 64, batch_size: int = 16
) -> float:
    """exp(mean next-token cross-entropy) of a causal language model over `tokens` (1-D ids),
    cut into non-overlapping blocks of `block` tokens; `model` maps ids to logits (wrap a
    Hugging Face model with `logits_module`). Lower is better; 1 is perfect.
    """
    import torch
    import torch.nn.functional as F

    if tokens.dim() != 1 or len(tokens) < block + 1 or block < 2:
        raise ValueError(
            f"perplexity needs 1-D tokens longer than one block ({block} ≥ 2); got shape "
            f"{tuple(tokens.shape)}"
        )
    usable = (len(tokens) - 1) // block * block
    inputs = tokens[:usable].view(-1, block)
    targets = tokens[1 : usable + 1].view(-1, block)
    device = model_device(model)
    nll, count = 0.0, 0
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(inputs), batch_size):
            logits = model(inputs[start : start + batch_size].to(device)).float()
            batch_targets = targets[start : start + batch_size].to(device)
            nll += float(F.cross_entropy(logits.flatten(0, 1), batch_targets.flatten(), reduction="sum"))
            count += batch_targets.numel()
    return math.exp(nll / count)


def copy_with_linears(model: nn.Module) -> nn.Module:
    """A deep copy of `model` with its Conv1D layers as nn.Linear (see conv1d_to_linear)."""
    return conv1d_to_linear(copy.deepcopy(model))


#: standard-library modules whose docstrings make the offline text corpus (shipped with
#: every Python; the text changes a little between Python versions)
DOC_MODULES = (
    "argparse", "collections", "csv", "datetime", "decimal", "email", "fractions", "heapq",
    "http", "inspect", "json", "logging", "pathlib", "pickle", "random", "re", "shutil",
    "statistics", "string", "subprocess", "textwrap", "threading", "unittest", "zipfile",
)


def python_docs_text() -> str:
    """English technical prose available offline: the docstrings of DOC_MODULES and of their
    public functions and classes, joined in a fixed order."""
    import importlib

    parts = []
    for name in DOC_MODULES:
        module = importlib.import_module(name)
        parts.append(module.__doc__ or "")
        for attribute in sorted(vars(module)):
            doc = getattr(getattr(module, attribute), "__doc__", None)
            if not attribute.startswith("_") and isinstance(doc, str):
                parts.append(doc)
    return "\n\n".join(dict.fromkeys(p.strip() for p in parts if p.strip()))


def byte_tokens(text: str) -> torch.Tensor:
    """`text` as a byte-level token tensor (UTF-8 bytes, ids 0–255): a tokenizer with no
    vocabulary to download."""
    import torch

    return torch.tensor(list(text.encode("utf-8")), dtype=torch.long)
