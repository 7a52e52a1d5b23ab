"""The compression workbench: variants are what they claim, production and inference
are metered as ledger runs with every figure the comparison needs."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from joulemeter.integrations.compression import (  # noqa: E402
    accuracy,
    benchmark_inference,
    distill,
    distillation_loss,
    half_precision_unsupported,
    nonzero_parameter_count,
    parameter_count,
    production_meter,
    prune_magnitude,
    quantize_dynamic_int8,
    set_torch_threads,
    size_on_disk_bytes,
    state_bytes,
    to_half_precision,
    train_classifier,
    weight_sparsity,
)
from joulemeter.meter.store import open_ledger  # noqa: E402
from tests.doubles import LinearCounterSource, stamp_skew_j  # noqa: E402

POWER_W = 40.0


@pytest.fixture(scope="module")
def digits():
    """scikit-learn's 8x8 digits, scaled to [0, 1]: (x_train, y_train, x_test, y_test)."""
    from sklearn.datasets import load_digits

    set_torch_threads()
    data = load_digits()
    x = torch.tensor(data.data / 16.0, dtype=torch.float32)
    y = torch.tensor(data.target)
    return x[:1400], y[:1400], x[1400:], y[1400:]


def loader(x, y, batch_size=64):
    dataset = torch.utils.data.TensorDataset(x, y)
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(0)
    )


def mlp(hidden=128):
    return nn.Sequential(
        nn.Linear(64, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, 10),
    )


@pytest.fixture(scope="module")
def teacher(digits):
    x, y, _, _ = digits
    torch.manual_seed(0)
    return train_classifier(mlp(), loader(x, y), epochs=4, lr=3e-3)


def test_trained_teacher_is_well_above_chance(teacher, digits):
    _, _, x_test, y_test = digits
    assert accuracy(teacher, x_test, y_test) > 0.8  # chance is 0.1


# -- pruning -------------------------------------------------------------------------


def test_unstructured_pruning_reaches_the_target_sparsity_for_good(teacher):
    pruned = prune_magnitude(teacher, 0.6)
    assert weight_sparsity(pruned) >= 0.6
    names = [n for n, _ in pruned.named_parameters()] + [n for n, _ in pruned.named_buffers()]
    assert not any("weight_orig" in n or "weight_mask" in n for n in names)
    assert all(not m._forward_pre_hooks for m in pruned.modules())
    assert weight_sparsity(teacher) < 0.01  # the original is left untouched


def test_unstructured_pruning_removes_the_smallest_weights(teacher):
    pruned = prune_magnitude(teacher, 0.5)
    kept = torch.cat(
        [m.weight.abs().flatten() for m in pruned.modules() if isinstance(m, nn.Linear)]
    )
    original = torch.cat(
        [m.weight.abs().flatten() for m in teacher.modules() if isinstance(m, nn.Linear)]
    )
    cut = original.kthvalue(int(0.5 * original.numel())).values
    assert kept[kept > 0].min() >= cut


def test_structured_pruning_zeroes_whole_rows_and_spares_the_output_layer(teacher):
    pruned = prune_magnitude(teacher, 0.5, structured=True)
    linears = [m for m in pruned.modules() if isinstance(m, nn.Linear)]
    for layer in linears[:-1]:
        zero_rows = int((layer.weight.abs().sum(dim=1) == 0).sum())
        assert zero_rows == round(0.5 * layer.out_features)
    assert int((linears[-1].weight == 0).sum()) == 0
    assert not any("weight_orig" in n for n, _ in pruned.named_parameters())


def test_fine_tuning_after_pruning_keeps_pruned_weights_at_zero_and_is_metered(
    teacher, digits, tmp_path
):
    x, y, _, _ = digits
    untuned = prune_magnitude(teacher, 0.7)
    with production_meter(
        "pruned", "mlp", sources=[LinearCounterSource(POWER_W)], ledger=tmp_path / "ledger.db"
    ) as meter:
        tuned = prune_magnitude(teacher, 0.7, train_loader=loader(x, y), fine_tune_epochs=1)
    assert weight_sparsity(tuned) >= 0.7
    assert not torch.equal(tuned[0].weight, untuned[0].weight)  # fine-tuning moved the weights
    assert torch.equal(tuned[0].weight == 0, untuned[0].weight == 0)  # …but not the zeros
    run = meter.run
    assert run.metadata.items() >= {"kind": "production", "variant": "pruned", "base_model": "mlp"}.items()
    assert {"pruned", "mlp", "production"} <= set(run.tags)
    assert run.name == "mlp/pruned (making)"  # not "production", which reads as a deployment
    assert run.units["samples"] == len(x)
    assert [w.name for w in run.windows] == ["epoch-1"]
    sampled_s = run.samples[-1].t_s - run.samples[0].t_s  # a linear counter: energy = W × time
    assert run.total_energy_j == pytest.approx(POWER_W * sampled_s, abs=stamp_skew_j(POWER_W))


def test_pruning_rejects_an_amount_outside_zero_to_one(teacher):
    with pytest.raises(ValueError, match="share of weights"):
        prune_magnitude(teacher, 1.5)


# -- quantization and half precision -------------------------------------------------


def test_dynamic_quantization_turns_every_linear_into_a_dynamic_int8_linear(teacher, digits):
    from torch.ao.nn.quantized.dynamic import Linear as DynamicQuantizedLinear

    _, _, x_test, y_test = digits
    quantized = quantize_dynamic_int8(teacher)
    layers = [
        m
        for m in quantized.modules()
        if isinstance(m, nn.Linear) or isinstance(m, DynamicQuantizedLinear)
    ]
    assert len(layers) == 3
    assert all(isinstance(m, DynamicQuantizedLinear) for m in layers)
    assert all(m.weight().dtype == torch.qint8 for m in layers)
    assert abs(accuracy(quantized, x_test, y_test) - accuracy(teacher, x_test, y_test)) < 0.05


def test_quantized_model_has_the_same_parameters_at_a_quarter_of_the_bytes(teacher):
    quantized = quantize_dynamic_int8(teacher)
    weights = sum(m.weight.numel() for m in teacher.modules() if isinstance(m, nn.Linear))
    biases = sum(m.bias.numel() for m in teacher.modules() if isinstance(m, nn.Linear))
    assert parameter_count(quantized) == parameter_count(teacher) == weights + biases
    # float32 weights take 4 bytes, int8 ones 1; biases stay float32 (packed params also
    # keep a scale and zero point per layer, a few bytes)
    assert state_bytes(teacher) == 4 * (weights + biases)
    assert 1 * weights + 4 * biases <= state_bytes(quantized) < 1 * weights + 4 * biases + 64 * 3
    assert size_on_disk_bytes(quantized) < size_on_disk_bytes(teacher) / 2


def test_size_on_disk_is_the_size_of_the_saved_state_dict(teacher, tmp_path):
    path = tmp_path / "model.pt"  # the file name is stored in the archive
    torch.save(teacher.state_dict(), path)
    assert size_on_disk_bytes(teacher) == path.stat().st_size


def test_bf16_variant_has_bfloat16_parameters_and_keeps_its_accuracy(teacher, digits):
    reason = half_precision_unsupported("bf16", "cpu")
    if reason:
        pytest.skip(reason)
    _, _, x_test, y_test = digits
    half = to_half_precision(teacher, "bf16")
    assert {p.dtype for p in half.parameters()} == {torch.bfloat16}
    assert next(teacher.parameters()).dtype == torch.float32
    assert abs(accuracy(half, x_test, y_test) - accuracy(teacher, x_test, y_test)) < 0.05


def test_half_precision_without_native_instructions_is_skipped_with_the_reason(monkeypatch):
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_fp16_supported", lambda: False)
    reason = half_precision_unsupported("fp16", "cpu")
    assert reason is not None and "no native fp16" in reason
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_fp16_supported", lambda: True)
    assert half_precision_unsupported("fp16", "cpu") is None  # the matmul trial agrees


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="bf16, fp16"):
        half_precision_unsupported("fp8")


# -- distillation ----------------------------------------------------------------------


def test_distillation_loss_matches_the_formula_by_hand():
    student = torch.tensor([[1.0, 0.0, -1.0]])
    teacher = torch.tensor([[2.0, 1.0, 0.0]])
    labels = torch.tensor([0])
    t, alpha = 2.0, 0.3

    def softmax(row):
        exps = [math.exp(v / t) for v in row]
        return [e / sum(exps) for e in exps]

    p, q = softmax([2.0, 1.0, 0.0]), softmax([1.0, 0.0, -1.0])
    kl = sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))
    ce = -math.log(math.exp(1.0) / (math.exp(1.0) + 1.0 + math.exp(-1.0)))
    expected = alpha * t * t * kl + (1 - alpha) * ce
    got = distillation_loss(student, teacher, labels, temperature=t, alpha=alpha)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_distilled_student_is_smaller_and_well_above_chance(teacher, digits):
    x, y, x_test, y_test = digits
    torch.manual_seed(0)
    student = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    distill(teacher, student, loader(x, y), epochs=4, lr=3e-3)
    assert parameter_count(student) < parameter_count(teacher) / 5
    assert accuracy(student, x_test, y_test) > 0.5  # chance is 0.1


# -- benchmark -------------------------------------------------------------------------

METADATA_FIELDS = {
    "kind",
    "variant",
    "base_model",
    "device",
    "precision",
    "parameters",
    "nonzero_parameters",
    "size_on_disk_bytes",
    "peak_memory_bytes",
    "peak_memory_method",
    "accuracy",
    "latency_p50_s",
    "latency_p95_s",
    "latency_p99_s",
    "throughput_per_s",
    "energy_per_1000_inferences_j",
    "energy_per_1000_inferences_j_trials",
    "trial_energy_spread",
    "inferences",
}


@pytest.fixture(scope="module")
def benchmarked(teacher, digits, tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "ledger.db"
    _, _, x_test, y_test = digits
    models = {
        "full": teacher,
        "pruned": prune_magnitude(teacher, 0.5),
        "int8": quantize_dynamic_int8(teacher),
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JOULEMETER_LEDGER", str(path))  # the default ledger, as users get it
        runs = benchmark_inference(
            models,
            x_test,
            y_test,
            batch_size=128,
            warmup_batches=2,
            trials=2,
            max_trials=2,
            min_trial_s=0.15,
            base_model="digits-mlp",
            project="bench",
            device="cpu",
            sources=[LinearCounterSource(POWER_W, domain="cpu", kind="cpu")],
        )
    return runs, len(x_test), path


def test_benchmark_records_every_metadata_field_for_every_variant(benchmarked):
    runs, _, _ = benchmarked
    assert [r.metadata["variant"] for r in runs] == ["full", "pruned", "int8"]
    for run in runs:
        missing = METADATA_FIELDS - set(run.metadata)
        assert not missing, f"{run.name} lacks {missing}"
        assert run.metadata["base_model"] == "digits-mlp"
        assert {run.metadata["variant"], "digits-mlp"} <= set(run.tags)
        assert 0.0 <= run.metadata["accuracy"] <= 1.0
        assert (
            run.metadata["latency_p50_s"]
            <= run.metadata["latency_p95_s"]
            <= run.metadata["latency_p99_s"]
        )
    by_variant = {r.metadata["variant"]: r.metadata for r in runs}
    assert by_variant["pruned"]["nonzero_parameters"] < by_variant["full"]["nonzero_parameters"]
    assert by_variant["int8"]["precision"] == "qint8"
    assert by_variant["int8"]["size_on_disk_bytes"] < by_variant["full"]["size_on_disk_bytes"]


def test_benchmark_energy_per_1000_inferences_is_window_energy_over_inferences(benchmarked):
    runs, n_test, _ = benchmarked
    for run in runs:
        steady = next(w for w in run.windows if w.name == "inference")
        trials = [w for w in run.windows if w.path.startswith("inference/trial-")]
        assert len(trials) == 2 and all(w.duration_s >= 0.15 for w in trials)
        inferences = steady.units["inferences"]
        assert inferences % n_test == 0  # whole passes over the test set, warm-up not counted
        assert run.units["inferences"] == inferences
        # a constant 40 W counter: the window's energy is 40 W × its duration
        expected = POWER_W * steady.duration_s / inferences * 1000
        assert run.metadata["energy_per_1000_inferences_j"] == pytest.approx(expected, rel=0.02)
        trial_s = sum(w.duration_s for w in trials)
        assert run.metadata["throughput_per_s"] == pytest.approx(inferences / trial_s)
        by_trial = run.metadata["energy_per_1000_inferences_j_trials"]
        assert run.metadata["trial_energy_spread"] == pytest.approx(max(by_trial) / min(by_trial))


def test_benchmark_writes_each_variant_to_the_ledger_with_its_figures(benchmarked):
    runs, _, path = benchmarked
    with open_ledger(path) as ledger:
        stored = ledger.list_runs(project="bench")
        assert {r.id for r in stored} == {r.id for r in runs}
        for run in runs:
            again = ledger.get_run(run.id)
            assert again.metadata["energy_per_1000_inferences_j"] == pytest.approx(
                run.metadata["energy_per_1000_inferences_j"]
            )
            assert again.metadata["latency_p95_s"] == run.metadata["latency_p95_s"]


def test_benchmark_refuses_labels_that_do_not_match_the_inputs(teacher, digits):
    _, _, x_test, y_test = digits
    with pytest.raises(ValueError, match="labels"):
        benchmark_inference({"full": teacher}, x_test, y_test[:10], store=False)


def test_nonzero_parameters_count_what_pruning_left(teacher):
    pruned = prune_magnitude(teacher, 0.5)
    weights = sum(m.weight.numel() for m in teacher.modules() if isinstance(m, nn.Linear))
    assert nonzero_parameter_count(pruned) <= parameter_count(pruned) - weights // 2
