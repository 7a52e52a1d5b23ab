"""Transformers: a real Trainer on CPU, a tiny BERT built from a config (no downloads)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from joulemeter.integrations.transformers import JoulemeterTrainerCallback  # noqa: E402
from joulemeter.meter import Status  # noqa: E402
from joulemeter.meter.store import open_ledger  # noqa: E402
from tests.doubles import LinearCounterSource, stamp_skew_j  # noqa: E402

POWER_W = 35.0
TRAIN_SIZE, EVAL_SIZE, BATCH, EPOCHS, SEQ_LEN = 16, 8, 4, 2, 12


class TokenDataset(torch.utils.data.Dataset):
    """Random token ids; sample i has 3 + i % 8 real tokens and the rest padding."""

    def __init__(self, size: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(1, 100, (size, SEQ_LEN), generator=g)
        self.lengths = [3 + i % 8 for i in range(size)]
        self.labels = torch.randint(0, 2, (size,), generator=g)

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, i):
        mask = torch.zeros(SEQ_LEN, dtype=torch.long)
        mask[: self.lengths[i]] = 1
        return {"input_ids": self.ids[i] * mask, "attention_mask": mask, "labels": self.labels[i]}


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("JOULEMETER_LEDGER", str(tmp_path / "ledger.sqlite"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("WANDB_DISABLED", "true")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield tmp_path
    torch.set_num_threads(threads)


def tiny_bert():
    config = transformers.BertConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, vocab_size=100,
        max_position_embeddings=SEQ_LEN,
    )
    torch.manual_seed(0)
    return transformers.BertForSequenceClassification(config)


def make_trainer(tmp_path, model, callback):
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"), num_train_epochs=EPOCHS, per_device_train_batch_size=BATCH,
        per_device_eval_batch_size=BATCH, eval_strategy="epoch", save_strategy="no", logging_strategy="epoch",
        report_to=[], use_cpu=True, disable_tqdm=True, dataloader_num_workers=0, seed=0,
    )
    return transformers.Trainer(
        model=model, args=args, train_dataset=TokenDataset(TRAIN_SIZE, 0),
        eval_dataset=TokenDataset(EVAL_SIZE, 1), callbacks=[callback],
    )


def callback():
    return JoulemeterTrainerCallback(sources=[LinearCounterSource(POWER_W)], interval_s=0.01, cuda_sync=False)


def test_train_is_one_run_with_epoch_windows_evaluations_and_every_sample_and_token(env):
    model, cb = tiny_bert(), callback()
    trainer = make_trainer(env, model, cb)
    trainer.train()

    run = cb.run
    assert run.status is Status.COMPLETED
    assert [w.path for w in run.windows] == [
        p for e in range(EPOCHS) for p in (f"epoch-{e}", f"epoch-{e}/train", "evaluate")
    ]
    train_tokens = sum(TokenDataset(TRAIN_SIZE, 0).lengths)  # real tokens, padding excluded
    eval_tokens = sum(TokenDataset(EVAL_SIZE, 1).lengths)
    for w in run.windows:
        if w.name == "train":
            assert w.units == {"samples": TRAIN_SIZE, "tokens": train_tokens}
        if w.name == "evaluate":
            assert w.units == {"samples": EVAL_SIZE, "tokens": eval_tokens}
        assert w.total_energy_j == pytest.approx(POWER_W * w.duration_s, abs=stamp_skew_j(POWER_W))
    assert run.units == {
        "samples": EPOCHS * (TRAIN_SIZE + EVAL_SIZE), "tokens": EPOCHS * (train_tokens + eval_tokens),
    }

    with open_ledger() as ledger:
        stored = ledger.get_run(run.id)
    assert stored.name == "BertForSequenceClassification"
    assert stored.metadata["parameters"] == sum(p.numel() for p in model.parameters())
    assert stored.metadata["stage"] == "train"

    # Live figures (up to one sampling interval stale) for epochs and evaluations, the exact total.
    history = trainer.state.log_history
    epochs_logged = [h["energy/train_epoch_j"] for h in history if "energy/train_epoch_j" in h]
    evals_logged = [h["eval_energy_j"] for h in history if "eval_energy_j" in h]
    assert len(epochs_logged) == len(evals_logged) == EPOCHS
    assert 0 <= sum(epochs_logged) + sum(evals_logged) <= run.total_energy_j
    assert [h["energy/total_j"] for h in history if "energy/total_j" in h] == [run.total_energy_j]


def test_evaluate_and_predict_after_training_are_runs_of_their_own(env):
    cb = callback()
    trainer = make_trainer(env, tiny_bert(), cb)
    metrics = trainer.evaluate()
    evaluation = cb.run
    assert metrics["eval_energy_j"] == evaluation.windows[0].total_energy_j > 0
    assert [w.path for w in evaluation.windows] == ["evaluate"]
    assert evaluation.windows[0].units["samples"] == EVAL_SIZE
    assert evaluation.metadata["stage"] == "evaluate"

    output = trainer.predict(TokenDataset(EVAL_SIZE, 2))
    prediction = cb.run
    assert output.metrics["test_energy_j"] == prediction.windows[0].total_energy_j > 0
    assert [w.path for w in prediction.windows] == ["predict"]
    assert prediction.metadata["stage"] == "predict"
    with open_ledger() as ledger:
        assert {r.id for r in ledger.list_runs()} == {evaluation.id, prediction.id}


def test_a_train_call_that_raises_is_closed_as_interrupted_by_the_next_train_call(env):
    class Diverge(transformers.TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            raise FloatingPointError("loss is nan")

    cb = callback()
    trainer = make_trainer(env, tiny_bert(), cb)
    trainer.add_callback(Diverge())
    with pytest.raises(FloatingPointError):
        trainer.train()
    assert cb.runs == []  # the Trainer told no callback that train() raised
    trainer.remove_callback(Diverge)
    trainer.train()
    broken, retried = cb.runs
    assert broken.status is Status.INTERRUPTED
    assert "on_train_end" in broken.error
    assert broken.units["samples"] == BATCH  # the one step that ran
    assert retried.status is Status.COMPLETED
