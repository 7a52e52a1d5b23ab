"""Lightning: a real Trainer on CPU with JoulemeterCallback: windows, counts, ledger, logged metrics."""

from __future__ import annotations

import csv

import pytest

torch = pytest.importorskip("torch")
pl = pytest.importorskip("lightning.pytorch")

from lightning.pytorch.loggers import CSVLogger  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from joulemeter.integrations.lightning import JoulemeterCallback  # noqa: E402
from joulemeter.meter import Status  # noqa: E402
from joulemeter.meter.store import open_ledger  # noqa: E402
from tests.doubles import LinearCounterSource, stamp_skew_j  # noqa: E402

POWER_W = 25.0
TRAIN_SIZE, VAL_SIZE, BATCH, EPOCHS = 40, 12, 8, 2
# Lightning's default sanity check runs 2 validation batches: 8 + 4, the whole validation set.
SANITY_SAMPLES = VAL_SIZE
FLOAT32_EPS = 2.0**-23  # float32's machine epsilon: twice the largest relative rounding


class TinyMLP(pl.LightningModule):
    # Linear(4, 8): 40 parameters, Linear(8, 2): 18; 58 in all.
    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
        self.fail = fail

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        if self.fail:
            raise RuntimeError("diverged")
        x, y = batch
        return torch.nn.functional.cross_entropy(self(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", torch.nn.functional.cross_entropy(self(x), y))

    def test_step(self, batch, batch_idx):
        return self.validation_step(batch, batch_idx)

    def predict_step(self, batch, batch_idx):
        return self(batch[0])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def loader(size: int, seed: int) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    data = TensorDataset(torch.randn(size, 4, generator=g), torch.randint(0, 2, (size,), generator=g))
    return DataLoader(data, batch_size=BATCH)


@pytest.fixture
def ledger_path(tmp_path, monkeypatch):
    path = tmp_path / "ledger.sqlite"
    monkeypatch.setenv("JOULEMETER_LEDGER", str(path))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield path
    torch.set_num_threads(threads)


def trainer(tmp_path, callback) -> pl.Trainer:
    return pl.Trainer(
        accelerator="cpu", max_epochs=EPOCHS, logger=CSVLogger(tmp_path / "logs", name="tiny"),
        callbacks=[callback], enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, log_every_n_steps=1,
    )


def callback() -> JoulemeterCallback:
    return JoulemeterCallback(sources=[LinearCounterSource(POWER_W)], interval_s=0.01, cuda_sync=False)


def test_fit_is_one_run_with_epoch_train_and_validate_windows_and_every_sample_counted(tmp_path, ledger_path):
    cb = callback()
    t = trainer(tmp_path, cb)
    t.fit(TinyMLP(), loader(TRAIN_SIZE, 0), loader(VAL_SIZE, 1))

    run = cb.run
    assert run.status is Status.COMPLETED
    assert [w.path for w in run.windows] == ["sanity-check"] + [
        p for e in range(EPOCHS) for p in (f"epoch-{e}", f"epoch-{e}/train", f"epoch-{e}/validate")
    ]
    train = [w for w in run.windows if w.name == "train"]
    assert sum(w.units["samples"] for w in train) == TRAIN_SIZE * EPOCHS
    assert [w.units["samples"] for w in run.windows if w.name == "validate"] == [VAL_SIZE] * EPOCHS
    assert run.windows[0].units["samples"] == SANITY_SAMPLES
    for w in run.windows:
        assert w.total_energy_j == pytest.approx(POWER_W * w.duration_s, abs=stamp_skew_j(POWER_W))

    with open_ledger(ledger_path) as ledger:
        stored = ledger.get_run(run.id)
    assert stored.name == "TinyMLP"
    assert stored.metadata["parameters"] == 58
    assert stored.metadata["stage"] == "fit"
    assert stored.units["samples"] == TRAIN_SIZE * EPOCHS + VAL_SIZE * EPOCHS + SANITY_SAMPLES


def test_energy_metrics_reach_the_trainer_logger_once_per_epoch(tmp_path, ledger_path):
    cb = callback()
    t = trainer(tmp_path, cb)
    t.fit(TinyMLP(), loader(TRAIN_SIZE, 0), loader(VAL_SIZE, 1))

    with open(t.logger.log_dir + "/metrics.csv") as f:
        rows = list(csv.DictReader(f))
    logged = {
        key: [float(r[key]) for r in rows if r.get(key)]
        for key in ("energy/train_epoch_j", "energy/validate_epoch_j", "energy/total_j")
    }
    assert all(len(values) == EPOCHS for values in logged.values()), logged
    # Lightning keeps logged values as float32 (its ResultMetric state), so each logged
    # figure carries a rounding of up to half a float32 ulp: allow exactly that, no more.
    # Live figures: never more than the run's exact total.
    totals = logged["energy/total_j"]
    assert 0 <= totals[0] <= totals[1] <= cb.run.total_energy_j * (1 + FLOAT32_EPS)
    epochs = logged["energy/train_epoch_j"] + logged["energy/validate_epoch_j"]
    rounding = FLOAT32_EPS * (sum(epochs) + totals[-1])
    assert 0 <= sum(epochs) <= totals[-1] + rounding


def test_test_and_predict_calls_are_runs_of_their_own(tmp_path, ledger_path):
    cb = callback()
    t = trainer(tmp_path, cb)
    model = TinyMLP()
    t.test(model, loader(VAL_SIZE, 1))
    t.predict(model, loader(VAL_SIZE, 2))
    test_run, predict_run = cb.runs
    assert [w.path for w in test_run.windows] == ["test"]
    assert test_run.windows[0].units == {"samples": VAL_SIZE}
    assert [w.path for w in predict_run.windows] == ["predict"]
    assert predict_run.metadata["stage"] == "predict"
    with open_ledger(ledger_path) as ledger:
        assert {r.id for r in ledger.list_runs()} == {test_run.id, predict_run.id}


def test_a_failing_training_step_closes_the_run_as_failed_in_the_ledger(tmp_path, ledger_path):
    cb = callback()
    with pytest.raises(RuntimeError, match="diverged"):
        trainer(tmp_path, cb).fit(TinyMLP(fail=True), loader(TRAIN_SIZE, 0))
    with open_ledger(ledger_path) as ledger:
        stored = ledger.get_run(cb.run.id)
    assert stored.status is Status.FAILED
    assert "diverged" in stored.error
