"""Lightning: a callback that meters fit, validation, test and predict as windows of one run.

    trainer = lightning.pytorch.Trainer(callbacks=[JoulemeterCallback(project="paper")])
    trainer.fit(model, data)

Each trainer entry point (fit, validate, test, predict) is one run named after the
LightningModule's class, with its parameter count in the metadata. Windows:
"sanity-check", "epoch-<i>" holding "train" and "validate", then "test" or "predict".
Samples (and tokens, for batches with input_ids/attention_mask) are counted per batch.
Energy figures are logged through the module ("energy/train_epoch_j",
"energy/validate_epoch_j", "energy/total_j"), summed across ranks.

Multi-process training (DDP and friends) uses the distributed merge: every rank meters
its own GPUs, each node's local rank 0 its CPU and memory, and rank 0 writes one merged
run. Metering only on global rank 0 would be simpler but would miss every other GPU.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import lightning.pytorch as pl

from joulemeter.integrations.distributed import DistributedMeter, DistributedOptions
from joulemeter.integrations.pytorch import (
    CudaSync,
    HookWindows,
    batch_units,
    cuda_sync_function,
    model_metadata,
)
from joulemeter.meter.meter import check_meter_options, extend_options
from joulemeter.meter.run import Run, Status

if TYPE_CHECKING:
    from typing_extensions import Unpack


class JoulemeterCallback(pl.Callback):
    """Meters a Lightning Trainer's fit/validate/test/predict calls, one run per call.

    Args:
        name: run name (default: the LightningModule's class name).
        log_metrics: log energy through the LightningModule (to the Trainer's loggers).
        count_tokens: also count tokens of batches that carry input_ids/attention_mask.
        cuda_sync: True, False or "auto" (synchronise at window edges once CUDA is in use).
        **meter_options: EnergyMeter's options (`MeterOptions`), and `gpus` (`DistributedOptions`).
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        log_metrics: bool = True,
        count_tokens: bool = True,
        cuda_sync: CudaSync = "auto",
        **meter_options: Unpack[DistributedOptions],
    ) -> None:
        check_meter_options(meter_options, type(self).__name__, DistributedOptions)
        self.name = name
        self.log_metrics = log_metrics
        self.count_tokens = count_tokens
        self.cuda_sync = cuda_sync
        self.meter_options = meter_options
        self.runs: list[Run] = []
        self._meter: DistributedMeter | None = None
        self._windows: HookWindows | None = None
        self._train_epoch_j = 0.0

    @property
    def run(self) -> Run | None:
        """The latest finished run (merged across ranks on rank 0)."""
        return self.runs[-1] if self.runs else None

    # -- life cycle: one run per trainer entry point ---------------------------------
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        options = extend_options(
            self.meter_options,
            metadata={**model_metadata(pl_module), "framework": "lightning", "stage": stage},
            sync=cuda_sync_function(self.cuda_sync),
        )
        self._meter = DistributedMeter(self.name or type(pl_module).__name__, **options)
        self._meter.start()
        self._windows = HookWindows(self._meter)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._finish(Status.COMPLETED, None)

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        interrupted = isinstance(exception, (KeyboardInterrupt, SystemExit))
        status = Status.INTERRUPTED if interrupted else Status.FAILED
        self._finish(status, f"{type(exception).__name__}: {exception}")

    # -- training ------------------------------------------------------------------
    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._open("epoch", f"epoch-{trainer.current_epoch}")
        self._train_epoch_j = 0.0
        self._open("train", "train")

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        windows = self._running_windows()
        if "epoch" in windows and "train" not in windows:
            self._open("train", "train")  # back to training after a mid-epoch validation

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._count(batch)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._close("train")
        self._log(pl_module, "energy/train_epoch_j", self._train_epoch_j)
        self._log(pl_module, "energy/total_j", sum(self._running_meter().energy_so_far_j().values()))
        self._close("epoch")

    # -- validation, test, predict ----------------------------------------------------
    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._close("train")
        self._open("validate", "sanity-check" if trainer.sanity_checking else "validate")

    def on_validation_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                                outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._count(batch)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        energy_j = self._running_windows().energy_so_far_j("validate")
        if energy_j is not None and not trainer.sanity_checking:
            self._log(pl_module, "energy/validate_epoch_j", energy_j)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._close("validate")

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._open("test", "test")

    def on_test_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                          outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._count(batch)

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        energy_j = self._running_windows().energy_so_far_j("test")
        if energy_j is not None:
            self._log(pl_module, "energy/test_j", energy_j)

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._close("test")

    def on_predict_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._open("predict", "predict")

    def on_predict_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                             outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._count(batch)

    def on_predict_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._close("predict")

    # -- internals -------------------------------------------------------------------
    def _running_meter(self) -> DistributedMeter:
        if self._meter is None:
            raise RuntimeError("JoulemeterCallback hook called outside setup/teardown")
        return self._meter

    def _running_windows(self) -> HookWindows:
        if self._windows is None:
            raise RuntimeError("JoulemeterCallback hook called outside setup/teardown")
        return self._windows

    def _open(self, role: str, name: str) -> None:
        self._running_windows().open(role, name)

    def _close(self, role: str) -> None:
        energy_j = self._running_windows().close(role)
        if role == "train":
            self._train_epoch_j += energy_j

    def _count(self, batch: Any) -> None:
        units = batch_units(batch, tokens=self.count_tokens)
        meter = self._running_meter()
        for unit, n in units.items():
            meter.count(n, unit)

    def _log(self, pl_module: pl.LightningModule, key: str, value: float) -> None:
        if self.log_metrics:
            pl_module.log(key, value, on_step=False, on_epoch=True, sync_dist=True, reduce_fx="sum")

    def _finish(self, status: Status, error: str | None) -> None:
        """Close open windows (innermost first) and stop the run."""
        meter, windows = self._meter, self._windows
        self._meter = self._windows = None
        if meter is None or windows is None:
            return
        windows.close_all()
        meter.stop(status, error)
        self.runs.append(meter.run)
