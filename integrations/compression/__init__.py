"""The compression workbench: build pruned, quantized, half-precision and distilled
variants of a model with torch's own APIs, meter what producing each costs, and meter
their inference side by side (one ledger run per variant).

    from joulemeter.integrations.compression import benchmark_inference, prune_magnitude
    runs = benchmark_inference({"full": model, "pruned": prune_magnitude(model, 0.5)},
                               x_test, y_test, base_model="mlp", project="demo")

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
    production_meter,
    resolve_device,
    set_torch_threads,
    train_classifier,
)
from joulemeter.integrations.compression.variants import (
    HALF_PRECISIONS,
    half_precision_unsupported,
    is_quantized,
    prune_magnitude,
    quantize_dynamic_int8,
    to_half_precision,
    weight_sparsity,
)

__all__ = [
    "HALF_PRECISIONS",
    "accuracy",
    "benchmark_inference",
    "distill",
    "distillation_loss",
    "half_precision_unsupported",
    "is_quantized",
    "nonzero_parameter_count",
    "parameter_count",
    "production_meter",
    "prune_magnitude",
    "quantize_dynamic_int8",
    "resolve_device",
    "set_torch_threads",
    "size_on_disk_bytes",
    "state_bytes",
    "to_half_precision",
    "train_classifier",
    "weight_sparsity",
]
