"""Meter inference of several variants of a model over the same inputs, one run each.

Per variant: accuracy and warm-up outside the run (warm-up also measures peak memory),
then a metered run whose steady-state window "inference" holds `trials` windows
"trial-N", each repeating the inputs until it has lasted `min_trial_s`, so the window
spans many sampler ticks. Inferences are counted in it; latencies are per batch
(time.perf_counter, after a CUDA sync on GPU).
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from joulemeter.integrations.compression.stats import (
    nonzero_parameter_count,
    parameter_count,
    size_on_disk_bytes,
    state_bytes,
)
from joulemeter.integrations.compression.training import (
    accuracy,
    as_model_input,
    model_dtype,
    resolve_device,
    window_sync,
)
from joulemeter.integrations.compression.trials import TrialPlan, TrialProbe
from joulemeter.integrations.compression.variants import is_quantized, precision_label
from joulemeter.meter import EnergyMeter, Run
from joulemeter.meter.meter import MeterOptions, check_meter_options, extend_options

if TYPE_CHECKING:
    import torch
    from torch import nn
    from typing_extensions import Unpack

    from joulemeter.meter.store import Ledger

log = logging.getLogger("joulemeter.compression")

INFERENCE_WINDOW = "inference"
INFERENCE_UNIT = "inferences"


def benchmark_inference(
    models: Mapping[str, nn.Module],
    data: Any,
    labels: Any = None,
    *,
    batch_size: int = 256,
    warmup_batches: int = 5,
    trials: int = 3,
    min_trial_s: float = 1.0,
    max_trials: int | None = None,
    target_half_width: float = 0.05,
    base_model: str = "model",
    device: str = "auto",
    on_variant: Callable[[str, Run], None] | None = None,
    **meter_options: Unpack[MeterOptions],
) -> list[Run]:
    """Meter inference of each named model over `data`; one ledger run per variant.

    `data` and `labels` are tensors or arrays with samples along the first axis. Every
    run is tagged with its variant and `base_model` and its metadata holds: variant,
    base_model, kind "inference", device, precision, energy_per_1000_inferences_j (also
    per trial, and trial_energy_spread: largest ÷ smallest trial), latency_p50_s,
    latency_p95_s and latency_p99_s per batch, throughput_per_s, parameters,
    nonzero_parameters, size_on_disk_bytes, peak_memory_bytes (with peak_memory_method),
    and accuracy when labels are given.
    Trials adapt: after `trials` (at least 2 for a confidence interval), more are run until
    the 95 % interval of the variant's energy per 1,000 inferences is within
    ±`target_half_width` or `max_trials` (default 3 × trials) is reached; each trial also
    records the CPU share other processes took (other_cpu_load_trials, other_cpu_load).
    Each model is moved to the device and put in eval mode (in place, as nn.Module.to
    does); quantized models stay on the CPU whatever `device` says (CPU-only kernels).
    The other options are EnergyMeter's (`MeterOptions`): `tags` and `metadata` add to
    the variant's, window edges wait for the device.
    """
    import torch

    check_meter_options(meter_options, "benchmark_inference")
    max_trials = 3 * trials if max_trials is None else max_trials
    if trials < 1 or batch_size < 1 or warmup_batches < 0 or min_trial_s <= 0:
        raise ValueError(
            "need trials ≥ 1, batch_size ≥ 1, warmup_batches ≥ 0 and min_trial_s > 0; got "
            f"{trials}, {batch_size}, {warmup_batches}, {min_trial_s}"
        )
    if max_trials < trials or not 0 < target_half_width < 1:
        raise ValueError(
            f"need max_trials ≥ trials and 0 < target_half_width < 1; got {max_trials}, "
            f"{trials} and {target_half_width}"
        )
    inputs = torch.as_tensor(data)
    targets = None if labels is None else torch.as_tensor(labels)
    if len(inputs) == 0:
        raise ValueError("no inputs to benchmark on")
    if targets is not None and len(targets) != len(inputs):
        raise ValueError(f"{len(inputs)} inputs but {len(targets)} labels")
    wanted = resolve_device(device)
    runs = []
    for variant, model in models.items():
        run = _benchmark_one(
            variant,
            model,
            inputs,
            targets,
            device=torch.device("cpu") if is_quantized(model) else wanted,
            batch_size=batch_size,
            warmup_batches=warmup_batches,
            trials=TrialPlan(trials, max_trials, target_half_width, min_trial_s),
            base_model=base_model,
            meter_options=meter_options,
        )
        runs.append(run)
        if on_variant is not None:
            on_variant(variant, run)
    return runs


def _benchmark_one(
    variant: str,
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor | None,
    *,
    device: torch.device,
    batch_size: int,
    warmup_batches: int,
    trials: TrialPlan,
    base_model: str,
    meter_options: MeterOptions,
) -> Run:
    import torch

    model = model.to(device).eval()
    dtype = model_dtype(model)
    batches = [
        as_model_input(inputs[i : i + batch_size], device, dtype) for i in range(0, len(inputs), batch_size)
    ]
    sync = window_sync(device)
    metadata: dict[str, Any] = {
        "kind": "inference",
        "variant": variant,
        "base_model": base_model,
        "device": str(device),
        "precision": precision_label(model),
        "batch_size": batch_size,
        "parameters": parameter_count(model),
        "nonzero_parameters": nonzero_parameter_count(model),
        "size_on_disk_bytes": size_on_disk_bytes(model),
    }
    if targets is not None:
        metadata["accuracy"] = accuracy(model, inputs, targets, batch_size=batch_size)
    with torch.inference_mode():
        peak, method = _warm_up_peak_memory(model, batches, warmup_batches, device)
    metadata["peak_memory_bytes"] = peak
    metadata["peak_memory_method"] = method

    latencies: list[float] = []
    options = extend_options(
        meter_options, tags=[variant, base_model, "inference"], metadata=metadata, sync=sync
    )
    meter = EnergyMeter(f"{base_model}/{variant}", **options)
    probe = TrialProbe(meter, INFERENCE_UNIT)
    with meter, torch.inference_mode():
        with meter.window(INFERENCE_WINDOW):
            while probe.trials < trials.max_trials and not probe.tight_enough(trials):
                with meter.window(f"trial-{probe.trials + 1}"):
                    probe.begin()
                    _run_trial(model, batches, trials.min_trial_s, sync, meter, latencies)
                probe.end()
    run = meter.run
    measured = {
        **_latency_figures(latencies),
        **_steady_state_figures(run),
        **probe.figures(),
    }
    run.metadata.update(measured)
    if meter.store:
        _store_metadata(meter_options.get("ledger"), run.id, measured)
    log.info(
        "%s: %s J per 1,000 inferences over %d trials",
        variant,
        measured["energy_per_1000_inferences_j"],
        probe.trials,
    )
    return run


def _run_trial(
    model: nn.Module,
    batches: list[torch.Tensor],
    min_trial_s: float,
    sync: Callable[[], None] | None,
    meter: EnergyMeter,
    latencies: list[float],
) -> None:
    """Whole passes over the batches until the trial has lasted `min_trial_s`."""
    start = time.perf_counter()
    while time.perf_counter() - start < min_trial_s:
        for batch in batches:
            began = time.perf_counter()
            model(batch)
            if sync is not None:
                sync()
            latencies.append(time.perf_counter() - began)
            meter.count(len(batch), INFERENCE_UNIT)


def _latency_figures(latencies: list[float]) -> dict[str, float]:
    """Per-batch latency percentiles in seconds."""
    import numpy

    p50, p95, p99 = numpy.percentile(latencies, [50, 95, 99])
    return {"latency_p50_s": float(p50), "latency_p95_s": float(p95), "latency_p99_s": float(p99)}


def _steady_state_figures(run: Run) -> dict[str, Any]:
    """Energy per 1,000 inferences and throughput over the steady-state window, and the
    energy per 1,000 inferences of each trial with their spread (largest ÷ smallest):
    far above 1, the machine was busy with something else and the figures are noisy."""

    def per_1000(window) -> float | None:
        per_unit = window.energy_per_unit_j(INFERENCE_UNIT)
        return None if per_unit is None else per_unit * 1000

    steady = next(w for w in run.windows if w.name == INFERENCE_WINDOW)
    trials = [w for w in run.windows if w.name.startswith("trial-")]
    inferences = steady.units.get(INFERENCE_UNIT, 0.0)
    trial_s = sum(w.duration_s or 0.0 for w in trials)
    by_trial = [per_1000(w) for w in trials]
    known = [v for v in by_trial if v]
    return {
        "energy_per_1000_inferences_j": per_1000(steady),
        "energy_per_1000_inferences_j_trials": by_trial,
        "trial_energy_spread": max(known) / min(known) if len(known) > 1 else None,
        "inferences": inferences,
        "throughput_per_s": inferences / trial_s if trial_s > 0 else None,
        "inference_window_energy_j": steady.total_energy_j,
        "inference_window_s": steady.duration_s,
    }


def _store_metadata(
    ledger: str | os.PathLike[str] | Ledger | None, run_id: str, figures: dict[str, Any]
) -> None:
    from joulemeter.meter.store import Ledger, open_ledger

    if isinstance(ledger, Ledger):
        ledger.update_metadata(run_id, figures)
        return
    store = open_ledger(ledger)
    try:
        store.update_metadata(run_id, figures)
    finally:
        store.close()


def _warm_up_peak_memory(
    model: nn.Module, batches: list[torch.Tensor], warmup_batches: int, device: torch.device
) -> tuple[int, str]:
    """Run the warm-up batches (at least one) and return peak memory in bytes and how it
    was measured: CUDA's allocator peak on GPU; on CPU the model's state bytes plus the
    peak growth of this process's RSS during warm-up (psutil, polled every millisecond,
    after returning freed heap to the OS so reused memory is not missed)."""
    import torch

    count = max(warmup_batches, 1)
    warmup = [batches[i % len(batches)] for i in range(count)]
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        for batch in warmup:
            model(batch)
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(
            device
        ), "torch.cuda.max_memory_allocated during warm-up"
    import psutil

    gc.collect()
    _release_free_heap()
    process = psutil.Process()
    baseline = process.memory_info().rss
    peak = baseline
    done = threading.Event()

    def poll() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, process.memory_info().rss)
            done.wait(0.001)

    poller = threading.Thread(target=poll, name="joulemeter-rss-poll", daemon=True)
    poller.start()
    try:
        for batch in warmup:
            model(batch)
    finally:
        done.set()
        poller.join()
    peak = max(peak, process.memory_info().rss)
    return (
        state_bytes(model) + max(peak - baseline, 0),
        "model state bytes + peak RSS growth during warm-up (psutil)",
    )


def _release_free_heap() -> None:
    """Ask glibc to give freed heap back to the OS (no-op elsewhere)."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name:
        return
    try:
        ctypes.CDLL(name).malloc_trim(0)
    except (OSError, AttributeError):
        pass
