"""PyTorch integration: TrainingMeter windows and units, metered_training, CUDA sync, batch units."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from joulemeter.integrations.pytorch import (  # noqa: E402
    TrainingMeter,
    batch_units,
    cuda_sync_function,
    current_training_meter,
    metered_training,
    model_metadata,
)
from joulemeter.meter import Status  # noqa: E402
from joulemeter.meter.store import open_ledger  # noqa: E402
from tests.doubles import LinearCounterSource, stamp_skew_j  # noqa: E402

POWER_W = 40.0
BATCH = 8
N_SAMPLES = 24  # 3 batches per epoch


@pytest.fixture(autouse=True)
def one_thread_and_private_ledger(tmp_path, monkeypatch):
    """Keep torch on one thread (shared CPU) and never touch the user's ledger."""
    monkeypatch.setenv("JOULEMETER_LEDGER", str(tmp_path / "ledger.sqlite"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_model() -> torch.nn.Module:
    # Linear(4, 8): 4*8 + 8 = 40 parameters; Linear(8, 2): 8*2 + 2 = 18; total 58.
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))


def data() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N_SAMPLES, 4, generator=g)
    y = torch.randint(0, 2, (N_SAMPLES,), generator=g)
    return [(x[i : i + BATCH], y[i : i + BATCH]) for i in range(0, N_SAMPLES, BATCH)]


def train_epoch(model, batches, tm) -> None:
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1)
    for x, y in batches:
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimiser.step()
        tm.batch(len(x))


def meter_options(**extra):
    return {"sources": [LinearCounterSource(POWER_W)], "interval_s": 0.01, "store": False, **extra}


def test_training_meter_gives_a_window_per_epoch_and_phase_with_its_units():
    model, batches = tiny_model(), data()
    with TrainingMeter("mlp", model=model, cuda_sync=False, **meter_options()) as tm:
        for epoch in range(2):
            with tm.epoch(epoch):
                with tm.phase("train"):
                    train_epoch(model, batches, tm)
                with tm.phase("eval"), torch.no_grad():
                    for x, _ in batches:
                        model(x)
                        tm.batch(len(x))
    run = tm.run
    assert [w.path for w in run.windows] == [
        "epoch-0", "epoch-0/train", "epoch-0/eval", "epoch-1", "epoch-1/train", "epoch-1/eval",
    ]
    train = [w for w in run.windows if w.name == "train"]
    assert [w.units for w in train] == [{"samples": N_SAMPLES, "batches": 3}] * 2
    assert run.units == {"samples": 4 * N_SAMPLES, "batches": 12}
    for w in run.windows:  # a constant-power counter: every window is power × its duration
        assert w.total_energy_j == pytest.approx(POWER_W * w.duration_s, abs=stamp_skew_j(POWER_W))
    assert run.status is Status.COMPLETED


def test_model_metadata_counts_total_and_trainable_parameters():
    model = tiny_model()
    model[0].requires_grad_(False)  # freeze the first layer's 40 parameters
    assert model_metadata(model) == {
        "model": "Sequential", "parameters": 58, "trainable_parameters": 18,
    }


def test_training_meter_records_the_model_in_the_ledger_run():
    model = tiny_model()
    with TrainingMeter("saved", model=model, cuda_sync=False, **meter_options(store=True)) as tm:
        with tm.epoch(0), tm.phase("train"):
            train_epoch(model, data(), tm)
    with open_ledger() as ledger:
        stored = ledger.get_run(tm.run.id)
    assert stored.metadata["model"] == "Sequential"
    assert stored.metadata["parameters"] == 58
    assert stored.units["samples"] == N_SAMPLES


def test_metered_training_finds_the_model_argument_and_exposes_the_meter_inside():
    @metered_training("decorated", cuda_sync=False, **meter_options())
    def fit(model, batches, epochs):
        tm = current_training_meter()
        for epoch in range(epochs):
            with tm.epoch(epoch), tm.phase("train"):
                train_epoch(model, batches, tm)
        return "done"

    assert fit(tiny_model(), data(), epochs=2) == "done"
    run = fit.last_run
    assert run.name == "decorated"
    assert run.metadata["parameters"] == 58
    assert run.units["samples"] == 2 * N_SAMPLES
    assert [w.path for w in run.windows] == ["epoch-0", "epoch-0/train", "epoch-1", "epoch-1/train"]
    assert current_training_meter() is None


def test_metered_training_closes_a_raising_run_as_failed_and_keeps_it():
    @metered_training(cuda_sync=False, **meter_options())
    def broken(model):
        current_training_meter().batch(4)
        raise RuntimeError("loss is nan")

    with pytest.raises(RuntimeError, match="loss is nan"):
        broken(tiny_model())
    assert broken.last_run.status is Status.FAILED
    assert "loss is nan" in broken.last_run.error
    assert broken.last_run.units == {"samples": 4, "batches": 1}


def test_auto_cuda_sync_synchronises_at_window_edges_only_once_cuda_is_initialised(monkeypatch):
    calls = []
    initialised = [False]
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: initialised[0])
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: calls.append("sync"))
    with TrainingMeter("sync", cuda_sync="auto", **meter_options()) as tm:
        with tm.phase("before-cuda"):
            pass
        initialised[0] = True
        with tm.phase("after-cuda"):
            pass
    assert calls == ["sync", "sync"]  # entry and exit of the second window only


def test_cuda_sync_waits_on_every_device_in_use_not_only_the_current_one(monkeypatch):
    synced = []
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: synced.append(device))
    monkeypatch.setattr(torch._C, "_cuda_hasPrimaryContext", lambda i: i != 1, raising=False)
    cuda_sync_function("auto")()
    assert synced == [0, 2]  # device 1 has no context: nothing queued, and none is created


def test_cuda_sync_false_never_synchronises_and_bad_values_are_refused(monkeypatch):
    assert cuda_sync_function(False) is None
    with pytest.raises(ValueError, match="cuda_sync"):
        cuda_sync_function("sometimes")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no CUDA device"):
        cuda_sync_function(True)


def test_batch_units_reads_samples_and_real_tokens_from_common_batch_shapes():
    x, y = torch.zeros(5, 3), torch.zeros(5)
    assert batch_units((x, y)) == {"samples": 5}
    assert batch_units({"pixel_values": x, "labels": y}) == {"samples": 5}
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])  # 3 + 2 real tokens, 3 of padding
    assert batch_units({"input_ids": torch.ones(2, 4), "attention_mask": mask}) == {
        "samples": 2, "tokens": 5,
    }
    assert batch_units({"input_ids": torch.ones(2, 4)}) == {"samples": 2, "tokens": 8}
    assert batch_units([[x]]) == {"samples": 5}
    assert batch_units("not a batch") == {}
