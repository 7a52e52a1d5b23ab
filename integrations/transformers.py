"""Hugging Face Transformers: a TrainerCallback that meters training, evaluation and prediction.

    trainer = Trainer(model, args, …, callbacks=[JoulemeterTrainerCallback(project="paper")])
    trainer.train()           # one run: windows "epoch-<i>/train" and "evaluate"
    trainer.evaluate()        # outside train(): a run of its own; metrics gain "eval_energy_j"

Samples and tokens are counted from the model's inputs by a forward pre-hook (the
Trainer hands callbacks no batches): every forward call in training mode counts into
the open "train" window, every call in eval mode into an "evaluate" window, which the
first eval-mode forward opens (the Trainer has no hook at the start of an evaluation)
and `on_evaluate` / `on_predict` close, naming it "evaluate" or "predict".
Energy goes into the Trainer's logs (`state.log_history`, saved in trainer_state.json)
from the world process zero. Under torch.distributed the ranks' runs are merged and
rank 0 writes the one run (see joulemeter.integrations.distributed).

The Trainer tells callbacks nothing when train() raises: such a run stays open (an
evaluate() in between is metered into it) until the next train() call closes it as
`interrupted`, or the meter's exit handler does at interpreter exit (in a single
process; under torch.distributed an unfinished rank part is lost).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import transformers

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


class JoulemeterTrainerCallback(transformers.TrainerCallback):
    """Meters a transformers.Trainer: train() is one run, a standalone evaluate()/predict() another.

    Args:
        name: run name (default: the model's class name).
        count_tokens: count tokens of inputs that carry input_ids/attention_mask.
        cuda_sync: True, False or "auto" (synchronise at window edges once CUDA is in use).
        **meter_options: EnergyMeter's options (`MeterOptions`), and `gpus` (`DistributedOptions`).
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        count_tokens: bool = True,
        cuda_sync: CudaSync = "auto",
        **meter_options: Unpack[DistributedOptions],
    ) -> None:
        check_meter_options(meter_options, type(self).__name__, DistributedOptions)
        self.name = name
        self.count_tokens = count_tokens
        self.cuda_sync = cuda_sync
        self.meter_options = meter_options
        self.runs: list[Run] = []
        self._meter: DistributedMeter | None = None
        self._stage: str | None = None
        self._windows: HookWindows | None = None
        self._hooked: set[int] = set()
        self._model: Any = None
        self._epoch = 0

    @property
    def run(self) -> Run | None:
        """The latest finished run (merged across ranks on rank 0)."""
        return self.runs[-1] if self.runs else None

    # -- training ------------------------------------------------------------------
    def on_init_end(self, args, state, control, model=None, **kwargs):
        self._hook(model)

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self._hook(model)
        self._start("train")
        self._epoch = 0

    def on_epoch_begin(self, args, state, control, **kwargs):
        self._open("epoch", f"epoch-{self._epoch}")
        self._open("train", "train")

    def on_step_begin(self, args, state, control, **kwargs):
        windows = self._windows
        if windows is not None and "epoch" in windows and "train" not in windows:
            self._open("train", "train")  # back to training after a mid-epoch evaluation

    def on_epoch_end(self, args, state, control, **kwargs):
        train_j = self._close("train")
        self._close("epoch")
        self._log(state, {"energy/train_epoch_j": train_j})
        self._epoch += 1

    def on_train_end(self, args, state, control, **kwargs):
        run = self._finish()
        if run is not None:
            self._log(state, {"energy/total_j": run.total_energy_j})

    # -- evaluation and prediction ------------------------------------------------------
    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        self._end_inference("evaluate", state, metrics)

    def on_predict(self, args, state, control, metrics=None, **kwargs):
        self._end_inference("predict", state, metrics)

    def _end_inference(self, name: str, state: Any, metrics: dict[str, float] | None) -> None:
        """Close the inference window (named now that the Trainer says what it was).

        A standalone evaluate()/predict() run is stopped here, so its window's exact
        energy is reported; inside train() the live figure is (one sampling interval stale).
        """
        window = self._windows.get("inference") if self._windows else None
        if window is None:
            return
        window.path = window.path[: len(window.path) - len(window.name)] + name
        window.name = name
        energy_j = self._close("inference")
        if self._stage == "inference":
            self._finish(stage=name)
            energy_j = window.total_energy_j
        prefix = _metric_prefix(metrics or {}, default="eval" if name == "evaluate" else "test")
        values = {f"{prefix}_energy_j": energy_j}
        if metrics is not None:
            metrics.update(values)  # evaluate()/predict() return these metrics to the caller
        self._log(state, values)

    # -- counting, through the model's forward --------------------------------------------
    def _hook(self, model: Any) -> None:
        if model is None or id(model) in self._hooked:
            return
        model.register_forward_pre_hook(self._on_forward, with_kwargs=True)
        self._hooked.add(id(model))
        self._model = model

    def _on_forward(self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if not module.training and (self._windows is None or "inference" not in self._windows):
            if self._meter is None:
                self._start("inference")  # evaluate()/predict() called outside train()
            self._close("train")
            self._open("inference", "evaluate")
        if self._meter is None:
            return
        units = batch_units(kwargs, tokens=self.count_tokens) or batch_units(args, tokens=self.count_tokens)
        for unit, n in units.items():
            self._meter.count(n, unit)

    # -- internals -------------------------------------------------------------------
    def _start(self, stage: str) -> None:
        if self._meter is not None:  # the previous train() never reached on_train_end: it raised
            self._finish(Status.INTERRUPTED, "train() ended without reaching on_train_end (it raised)")
        metadata: dict[str, Any] = {"framework": "transformers"}
        if self._model is not None:
            metadata.update(model_metadata(self._model))
            name_or_path = getattr(getattr(self._model, "config", None), "_name_or_path", "")
            if name_or_path:
                metadata["model_name_or_path"] = name_or_path
        self._stage = stage
        options = extend_options(self.meter_options, metadata=metadata, sync=cuda_sync_function(self.cuda_sync))
        self._meter = DistributedMeter(self.name or metadata.get("model"), **options)
        self._meter.start()
        self._windows = HookWindows(self._meter)

    def _finish(
        self, status: Status = Status.COMPLETED, error: str | None = None, stage: str | None = None
    ) -> Run | None:
        meter, windows = self._meter, self._windows
        self._meter = self._windows = None
        if meter is None or windows is None:
            return None
        windows.close_all()
        meter.rank_run.metadata["stage"] = stage or self._stage
        run = meter.stop(status, error)
        self._stage = None
        self.runs.append(run)
        return run

    def _open(self, role: str, name: str) -> None:
        if self._windows is not None:
            self._windows.open(role, name)

    def _close(self, role: str) -> float:
        """Close a window; its live energy in J (0 when no run is going)."""
        return self._windows.close(role) if self._windows is not None else 0.0

    def _log(self, state: Any, values: dict[str, float]) -> None:
        """Add an entry to the Trainer's log history (world process zero only)."""
        if state.is_world_process_zero:
            state.log_history.append({**values, "epoch": state.epoch, "step": state.global_step})


def _metric_prefix(metrics: dict[str, float], default: str) -> str:
    """The metric_key_prefix the Trainer used ("eval", "test", …), read from its runtime key."""
    for key in metrics:
        if key.endswith("_runtime"):
            return key[: -len("_runtime")]
    return default
