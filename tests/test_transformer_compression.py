"""The compression workbench on Transformers: GPT-2's Conv1D becomes nn.Linear, pruning and
int8 reach its projections and spare a tied head, token-id inputs go through training,
distillation and accuracy, and each variant's quality is measured (perplexity)."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from torch import nn  # noqa: E402

from joulemeter.integrations.compression import (  # noqa: E402
    accuracy,
    conv1d_to_linear,
    distill,
    distillation_loss,
    flat_cross_entropy,
    logits_module,
    perplexity,
    precision_label,
    prune_magnitude,
    quantize_dynamic_int8,
    train_classifier,
    train_until_energy,
    weight_only_unsupported,
    weight_sparsity,
)
from joulemeter.integrations.compression.transformer import byte_tokens, python_docs_text  # noqa: E402
from joulemeter.integrations.compression.variants import prunable_layers  # noqa: E402
from joulemeter.meter import EnergyMeter  # noqa: E402
from tests.doubles import LinearCounterSource  # noqa: E402


def tiny_gpt2(vocab: int = 256) -> nn.Module:
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=vocab, n_positions=64, n_embd=32, n_layer=2, n_head=2,
                                     bos_token_id=0, eos_token_id=0)
    return transformers.GPT2LMHeadModel(config).eval()


@pytest.fixture(scope="module")
def text():
    tokens = byte_tokens(python_docs_text()[:40_000])
    return tokens[:36_000], tokens[36_000:]


@pytest.fixture(scope="module")
def trained_lm(text):
    """A tiny byte-level GPT-2 trained briefly on the docs text (next-byte targets)."""
    train, _ = text
    blocks = train[: len(train) // 33 * 33].view(-1, 33)
    loader = [(blocks[i : i + 32, :-1], blocks[i : i + 32, 1:]) for i in range(0, 320, 32)]
    model = logits_module(tiny_gpt2())
    return train_classifier(model, loader, epochs=2, lr=3e-3)


def test_conv1d_becomes_a_linear_that_computes_the_same(text):
    model = tiny_gpt2()
    ids = text[1][:20].view(1, -1)
    with torch.inference_mode():
        before = model(input_ids=ids).logits
        conv1d_to_linear(model)
        after = model(input_ids=ids).logits
    assert not any(type(m).__name__ == "Conv1D" for m in model.modules())
    assert sum(isinstance(m, nn.Linear) for m in model.modules()) == 2 * 4 + 1  # 4 per block, lm_head
    assert torch.allclose(before, after, atol=1e-5)


def test_pruning_gpt2_reaches_its_projections_and_spares_the_tied_head():
    model = tiny_gpt2()
    pruned = prune_magnitude(model, 0.5)
    head, embedding = pruned.lm_head, pruned.transformer.wte
    assert head.weight is embedding.weight  # still tied, and not pruned
    assert int((embedding.weight == 0).sum()) == 0
    assert head not in prunable_layers(pruned)
    assert weight_sparsity(pruned) >= 0.5
    assert not any(type(m).__name__ == "Conv1D" for m in pruned.modules())
    assert any(type(m).__name__ == "Conv1D" for m in model.modules())  # the original is untouched


def test_dynamic_int8_quantizes_every_gpt2_projection():
    quantized = quantize_dynamic_int8(tiny_gpt2())
    dynamic = [m for m in quantized.modules() if type(m).__name__ == "Linear" and "quantized" in type(m).__module__]
    assert len(dynamic) == 2 * 4 + 1
    assert precision_label(quantized) == "qint8"


def test_perplexity_of_a_model_that_knows_nothing_is_the_vocabulary_size():
    class Uniform(nn.Module):
        def forward(self, ids):
            return torch.zeros(*ids.shape, 50)

    assert perplexity(Uniform(), torch.randint(0, 50, (300,)), block=16) == pytest.approx(50.0)


def test_every_lm_variant_has_a_perplexity_and_training_lowered_it(trained_lm, text):
    _, held_out = text
    untrained = perplexity(logits_module(tiny_gpt2()), held_out, block=32)
    variants = {
        "full": trained_lm,
        "pruned": prune_magnitude(trained_lm, 0.3),
        "int8": quantize_dynamic_int8(trained_lm),
    }
    scores = {name: perplexity(model, held_out, block=32) for name, model in variants.items()}
    assert scores["full"] < untrained * 0.8  # it learnt something about English bytes
    assert all(math.isfinite(s) and s > 1 for s in scores.values())
    assert scores["int8"] == pytest.approx(scores["full"], rel=0.1)  # int8 costs little quality


def test_token_ids_train_a_bert_classifier_and_distil_into_a_smaller_one():
    from joulemeter.integrations.experiment_tlc import Encoder, encoder, majority_task

    x, y = majority_task(600, 3, 8, seed=0)
    loader = [(x[i : i + 50], y[i : i + 50]) for i in range(0, 600, 50)]
    teacher = train_classifier(encoder(Encoder(32, 1, 2), 3, 8), loader, epochs=3, lr=3e-3)
    student = encoder(Encoder(8, 1, 1), 3, 8)
    distill(teacher, student, loader, epochs=1, lr=3e-3)
    assert x.dtype == torch.long  # ids were never cast to floats on the way
    assert sum(p.numel() for p in student.parameters()) < sum(p.numel() for p in teacher.parameters())
    assert 0.0 <= accuracy(student, x, y) <= 1.0
    assert accuracy(teacher, x, y) > 0.5  # chance is about 1/3


def test_losses_and_accuracy_take_per_position_labels():
    logits = torch.randn(2, 5, 7)
    labels = torch.randint(0, 7, (2, 5))
    by_position = torch.stack([
        torch.nn.functional.cross_entropy(logits[i, t : t + 1], labels[i, t : t + 1])
        for i in range(2) for t in range(5)
    ]).mean()
    assert flat_cross_entropy(logits, labels) == pytest.approx(float(by_position), rel=1e-5)
    teacher = torch.randn(2, 5, 7)
    assert distillation_loss(logits, teacher, labels) == pytest.approx(
        float(distillation_loss(logits.view(10, 7), teacher.view(10, 7), labels.view(10))), rel=1e-6
    )

    class Echo(nn.Module):
        def forward(self, x):
            return x

    assert accuracy(Echo(), logits, logits.argmax(-1)) == 1.0


def test_training_stops_once_the_meter_has_measured_the_budget():
    model = nn.Linear(4, 2)
    loader = [(torch.randn(8, 4), torch.randint(0, 2, (8,)))]
    with EnergyMeter("budget", store=False, sources=[LinearCounterSource(40.0, domain="cpu", kind="cpu")]) as m:
        steps = train_until_energy(model, loader, 0.2, meter=m, max_steps=10**6)
        spent = sum(m.energy_so_far_j().values())
    assert steps >= 1 and spent >= 0.2
    assert m.run.windows[0].units["steps"] == steps


def test_training_on_a_source_that_reads_nothing_stops_at_max_steps():
    model = nn.Linear(4, 2)
    loader = [(torch.randn(8, 4), torch.randint(0, 2, (8,)))]
    with EnergyMeter("nothing", store=False, sources=[LinearCounterSource(0.0, domain="cpu", kind="cpu")]) as m:
        assert train_until_energy(model, loader, 1.0, meter=m, max_steps=7) == 7
    with pytest.raises(ValueError, match="budget_j > 0"):
        with EnergyMeter("bad", store=False, sources=[LinearCounterSource(0.0, domain="cpu", kind="cpu")]) as m:
            train_until_energy(model, loader, 0.0, meter=m, max_steps=1)


def test_weight_only_variants_say_why_they_do_not_run_on_the_cpu():
    for variant in ("w8", "w4"):
        reason = weight_only_unsupported(variant, "cpu")
        assert reason
    with pytest.raises(ValueError, match="unknown weight-only"):
        weight_only_unsupported("w3")


def test_torchao_int8_weight_only_quantizes_every_linear_where_it_installs():
    pytest.importorskip("torchao")
    from joulemeter.integrations.compression import quantize_weight_only

    model = tiny_gpt2()
    ids = torch.randint(0, 256, (1, 12))
    quantized = quantize_weight_only(model, "w8", "cpu")
    assert precision_label(quantized) == "int8-weight-only"
    with torch.inference_mode():
        close = torch.allclose(quantized(input_ids=ids).logits, model(input_ids=ids).logits, atol=0.05)
    assert close
