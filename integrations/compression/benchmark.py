"""Meter inference of several variants of a model over the same inputs, one run each.

Per variant, before metering: accuracy, and warm-up (which also measures peak memory).
Then one meter spans interleaved rounds (trials.Rounds): each round runs one trial of every
variant, each trial repeating the inputs until it has lasted `min_trial_s` so it spans many
sampler ticks, so slow drift of the machine (other load, clock frequency, caches) lands on
every variant alike. Each variant's trials are then cut out as a run of its own
(meter/cut.py: energy and duration are those of its trials): window "inference" holding
"trial-N" (round N), metadata "trial_series" naming the rounds, so compare pairs them
round by round. The cut runs replace the spanning run in the ledger in one transaction
(it is kept there while it runs, so that a killed benchmark loses nothing). Inferences are counted
in the trials; latencies are per batch (time.perf_counter, after a CUDA sync on GPU).
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
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
from joulemeter.integrations.compression.trials import Rounds, TrialPlan, TrialProbe
from joulemeter.integrations.compression.variants import is_quantized, precision_label
from joulemeter.meter import EnergyMeter, Run, Window
from joulemeter.meter.cut import cut_run
from joulemeter.meter.meter import MeterOptions, check_meter_options, extend_options
from joulemeter.reports.confidence import TRIAL_SERIES

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
    on_round: Callable[[int, int], None] | None = None,
    **meter_options: Unpack[MeterOptions],
) -> list[Run]:
    """Meter inference of each named model over `data`; one ledger run per variant.

    `data` and `labels` are tensors or arrays with samples along the first axis. Every
    run is tagged with its variant and `base_model` and its metadata holds: variant,
    base_model, kind "inference", device, precision, energy_per_1000_inferences_j (also
    per trial, and trial_energy_spread: largest ÷ smallest trial), latency_p50_s,
    latency_p95_s and latency_p99_s per batch, throughput_per_s, parameters,
    nonzero_parameters, size_on_disk_bytes, peak_memory_bytes (with peak_memory_method),
    accuracy when labels are given, trial_series and trial_positions (its place in each round).
    Trials run in rounds, one trial of every model per round in the order of `models`,
    reversed every other round (trials.Rounds); after `trials` rounds (at least 2 for a
    confidence interval), more are run until the 95 % interval of every model's ratio to
    the first, paired by round, is within ±`target_half_width`, or `max_trials` (default
    3 × trials) is reached; each trial also records the CPU share other processes took
    (other_cpu_load_trials, other_cpu_load). `on_round(done, most)` is called after each
    round, for progress: rounds done and the most there may be (`max_trials`; the rounds
    done, once they stop early).
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
    if not models:
        return []
    wanted = resolve_device(device)
    variants = [
        _prepare(name, model, inputs, targets, torch.device("cpu") if is_quantized(model) else wanted,
                 batch_size=batch_size, warmup_batches=warmup_batches, base_model=base_model)
        for name, model in models.items()
    ]
    plan = TrialPlan(trials, max_trials, target_half_width, min_trial_s)
    options = extend_options(
        meter_options,
        tags=[base_model, "inference-rounds"],
        metadata={"kind": "inference-rounds", "base_model": base_model},
        sync=window_sync(wanted),
    )
    meter = EnergyMeter(f"{base_model}/inference rounds", **options)
    rounds = _run_rounds(meter, variants, plan, on_round)
    span = meter.run
    runs = [_cut(span, v, rounds, meter_options) for v in variants]
    if meter.store:
        _replace_in_ledger(meter_options.get("ledger"), span.id, runs)
    for variant, run in zip(variants, runs):
        log.info(
            "%s: %s J per 1,000 inferences over %d trials",
            variant.name,
            run.metadata["energy_per_1000_inferences_j"],
            run.metadata["trials"],
        )
    return runs


@dataclass
class _Variant:
    """One model ready to be metered: its batches on its device, the figures known before
    metering, and what its trials gather."""

    name: str
    model: nn.Module
    batches: list[torch.Tensor]
    sync: Callable[[], None] | None
    metadata: dict[str, Any]
    latencies: list[float] = field(default_factory=list)
    windows: list[Window] = field(default_factory=list)  # its trials in the spanning run


def _prepare(
    name: str,
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor | None,
    device: torch.device,
    *,
    batch_size: int,
    warmup_batches: int,
    base_model: str,
) -> _Variant:
    """Move the model to its device, measure accuracy and size, and warm it up."""
    import torch

    model = model.to(device).eval()
    dtype = model_dtype(model)
    batches = [
        as_model_input(inputs[i : i + batch_size], device, dtype) for i in range(0, len(inputs), batch_size)
    ]
    metadata: dict[str, Any] = {
        "kind": "inference",
        "variant": name,
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
    return _Variant(name, model, batches, window_sync(device), metadata)


def _run_rounds(
    meter: EnergyMeter,
    variants: Sequence[_Variant],
    plan: TrialPlan,
    on_round: Callable[[int, int], None] | None = None,
) -> Rounds:
    """Rounds of one trial per variant under one meter, each trial in a window named after
    its variant inside "round-N", until the plan says stop."""
    import torch

    by_name = {v.name: v for v in variants}
    rounds = Rounds({v.name: TrialProbe(meter, INFERENCE_UNIT) for v in variants}, plan)
    with meter, torch.inference_mode():
        while rounds.more():
            number = rounds.done + 1
            with meter.window(f"round-{number}"):
                for name in rounds.order(number):
                    variant, probe = by_name[name], rounds.probes[name]
                    _settle(variant)
                    with meter.window(name) as window:
                        probe.begin()
                        _run_trial(variant, plan.min_trial_s, meter)
                    probe.end()
                    variant.windows.append(window)
            if on_round is not None:
                on_round(number, plan.max_trials)
    if on_round is not None and rounds.done < plan.max_trials:
        on_round(rounds.done, rounds.done)  # stopped early: no more to come
    return rounds


def _settle(variant: _Variant) -> None:
    """One batch before the trial, outside it: the switch from the previous variant (its
    weights out of cache, a cold kernel) is not charged to this one's first batches."""
    variant.model(variant.batches[0])
    if variant.sync is not None:
        variant.sync()


def _cut(span: Run, variant: _Variant, rounds: Rounds, meter_options: MeterOptions) -> Run:
    """The variant's run: its trials cut out of the spanning run, with every figure."""
    probe = rounds.probes[variant.name]
    base_model = variant.metadata["base_model"]
    run = cut_run(
        span,
        variant.windows,
        names=[f"trial-{r}" for r in range(1, len(variant.windows) + 1)],
        name=f"{base_model}/{variant.name}",
        tags=[*meter_options.get("tags", ()), variant.name, base_model, "inference"],
        metadata={
            **span.metadata,
            **variant.metadata,
            TRIAL_SERIES: span.id,
            "trial_positions": rounds.positions(variant.name, len(variant.windows)),
        },
        outer=INFERENCE_WINDOW,
    )
    run.metadata.update(
        {**_latency_figures(variant.latencies), **_steady_state_figures(run), **probe.figures()}
    )
    return run


def _replace_in_ledger(
    ledger: str | os.PathLike[str] | Ledger | None, span_id: str, runs: Sequence[Run]
) -> None:
    """Save the variants' runs and delete the spanning run they were cut from, in one
    transaction: the ledger holds either, never both (counted twice) nor neither."""
    from joulemeter.meter.store import Ledger, open_ledger

    store = ledger if isinstance(ledger, Ledger) else open_ledger(ledger)
    try:
        spanning = store.existing_ids([span_id])
        if not spanning:  # the ledger refused its writes: its spool would bring it back beside the cuts
            log.warning("the interleaved run %s is not in %s to be replaced", span_id[:8], store.location)
        store.save_runs(runs, replacing=list(spanning))
    finally:
        if store is not ledger:
            store.close()


def _run_trial(variant: _Variant, min_trial_s: float, meter: EnergyMeter) -> None:
    """Whole passes over the variant's batches until the trial has lasted `min_trial_s`."""
    model, sync, latencies = variant.model, variant.sync, variant.latencies
    start = time.perf_counter()
    while time.perf_counter() - start < min_trial_s:
        for batch in variant.batches:
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
