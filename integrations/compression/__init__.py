"""The compression workbench: build pruned, quantized, half-precision and distilled
variants of a model with torch's own APIs, meter what producing each costs, and meter
their inference side by side (one ledger run per variant).

    from joulemeter.integrations.compression import benchmark_inference, prune_magnitude
    runs = benchmark_inference({"full": model, "pruned": prune_magnitude(model, 0.5)},
                               x_test, y_test, base_model="mlp", project="demo")

Transformers (Hugging Face models built from a config) go through the same functions:
wrap one with `logits_module` so it maps token ids to logits; pruning and quantization
turn GPT-2's Conv1D into nn.Linear first (compression.transformer).

torch is imported inside the functions: importing this package stays cheap.
"""

from joulemeter.integrations.compression.benchmark import benchmark_inference
from joulemeter.integrations.compression.distill import distill, distillation_loss
from joulemeter.integrations.compression.stats import (
    nonzero_parameter_count,
    parameter_count,
    size_on_disk_bytes,
    state_bytes,
)
from joulemeter.integrations.compression.training import (
    accuracy,
    flat_cross_entropy,
    production_meter,
    resolve_device,
    set_torch_threads,
    train_classifier,
    train_until_energy,
)
from joulemeter.integrations.compression.transformer import (
    conv1d_to_linear,
    logits_module,
    perplexity,
)
from joulemeter.integrations.compression.variants import (
    HALF_PRECISIONS,
    WEIGHT_ONLY,
    half_precision_unsupported,
    is_quantized,
    precision_label,
    prune_magnitude,
    quantize_dynamic_int8,
    quantize_weight_only,
    to_half_precision,
    weight_only_unsupported,
    weight_sparsity,
)

__all__ = [
    "HALF_PRECISIONS",
    "WEIGHT_ONLY",
    "accuracy",
    "benchmark_inference",
    "conv1d_to_linear",
    "distill",
    "distillation_loss",
    "flat_cross_entropy",
    "half_precision_unsupported",
    "is_quantized",
    "logits_module",
    "nonzero_parameter_count",
    "parameter_count",
    "perplexity",
    "precision_label",
    "production_meter",
    "prune_magnitude",
    "quantize_dynamic_int8",
    "quantize_weight_only",
    "resolve_device",
    "set_torch_threads",
    "size_on_disk_bytes",
    "state_bytes",
    "to_half_precision",
    "train_classifier",
    "train_until_energy",
    "weight_only_unsupported",
    "weight_sparsity",
]
