"""PyTorch: meter a training function or a hand-written loop, with windows per epoch and phase.

    with TrainingMeter("resnet", model=model) as tm:
        for epoch in range(3):
            with tm.epoch(epoch):
                with tm.phase("train"):
                    for x, y in loader:
                        ...
                        tm.batch(len(x))
                with tm.phase("eval"):
                    ...
    tm.run.windows  # paths "epoch-0", "epoch-0/train", "epoch-0/eval", …

Under torch.distributed the meter is a `DistributedMeter`: each rank meters its own
GPUs, each node its CPU and memory once, and rank 0 keeps one merged run.
torch is imported when these tools are used, never when `integrations` is imported.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from joulemeter.integrations.distributed import DistributedMeter, DistributedOptions
from joulemeter.meter.meter import (
    check_meter_options,
    current,
    extend_options,
    pop_running,
    push_running,
)
from joulemeter.meter.run import Run, Status, Window
from joulemeter.meter.sources.cuda_devices import synchronize_cuda

if TYPE_CHECKING:
    from typing_extensions import Unpack

F = TypeVar("F", bound=Callable[..., Any])
CudaSync = bool | Literal["auto"]


def current_training_meter() -> TrainingMeter | None:
    """The TrainingMeter of the innermost `metered_training` call or `with TrainingMeter`."""
    return current(TrainingMeter)


def cuda_sync_function(cuda_sync: CudaSync) -> Callable[[], None] | None:
    """What to call at window edges so queued GPU work lands in the right window.

    True: always synchronise (CUDA must be there); False: never; "auto": only once CUDA
    has been initialised in this process. Either waits on every device in use here, not
    only the current one (work queued on cuda:1 is as real as on cuda:0).
    """
    if cuda_sync is False:
        return None
    if cuda_sync not in (True, "auto"):
        raise ValueError(f"cuda_sync must be True, False or 'auto', got {cuda_sync!r}")
    import torch

    if cuda_sync is True and not torch.cuda.is_available():
        raise ValueError(
            "cuda_sync=True but torch sees no CUDA device here; pass cuda_sync='auto' "
            "(synchronises only when CUDA is in use) or False"
        )
    return _synchronize_every_device


def _synchronize_every_device() -> None:
    synchronize_cuda()


def model_metadata(model: Any) -> dict[str, Any]:
    """Run metadata for a model: class name and parameter counts (total and trainable)."""
    meta: dict[str, Any] = {"model": type(model).__name__}
    parameters = getattr(model, "parameters", None)
    if callable(parameters):
        params = list(parameters())
        meta["parameters"] = sum(p.numel() for p in params)
        meta["trainable_parameters"] = sum(p.numel() for p in params if p.requires_grad)
    return meta


def batch_units(batch: Any, tokens: bool = True) -> dict[str, int]:
    """Units of work in one batch: "samples" (batch size) and, for token batches, "tokens".

    Tokens are the attention mask's ones (real tokens, padding excluded) or, without a
    mask, the number of input ids. A batch whose size cannot be found gives {}.
    Reading the mask of a batch on the GPU costs one small device sync (tokens=False
    skips it and counts samples only).
    """
    if tokens and isinstance(batch, Mapping):
        mask, ids = batch.get("attention_mask"), batch.get("input_ids")
        if _is_tensor(mask) and mask.ndim >= 1:
            return {"samples": int(mask.shape[0]), "tokens": int(mask.sum().item())}
        if _is_tensor(ids) and ids.ndim >= 1:
            return {"samples": int(ids.shape[0]), "tokens": int(ids.numel())}
    samples = _first_batch_dimension(batch)
    return {} if samples is None else {"samples": samples}


def _first_batch_dimension(batch: Any) -> int | None:
    """The leading dimension of the first tensor found in a (nested) batch."""
    if _is_tensor(batch):
        return 1 if batch.ndim == 0 else int(batch.shape[0])
    if isinstance(batch, Mapping):
        items: Sequence[Any] = list(batch.values())
    elif isinstance(batch, (list, tuple)):
        items = batch
    else:
        return None
    for item in items:
        size = _first_batch_dimension(item)
        if size is not None:
            return size
    return None


def _is_tensor(value: Any) -> bool:
    return hasattr(value, "shape") and hasattr(value, "ndim") and hasattr(value, "numel")


class TrainingMeter:
    """Meters a training loop: a window per epoch and per phase, units per batch.

    Args:
        name: run name.
        model: a torch module; its class name and parameter counts go into run.metadata.
        cuda_sync: True, False or "auto" (synchronise at window edges once CUDA is in use).
        **meter_options: EnergyMeter's options (`MeterOptions`), and `gpus` (`DistributedOptions`).
    """

    def __init__(
        self,
        name: str = "training",
        *,
        model: Any = None,
        cuda_sync: CudaSync = "auto",
        **meter_options: Unpack[DistributedOptions],
    ) -> None:
        check_meter_options(meter_options, type(self).__name__, DistributedOptions)
        metadata = model_metadata(model) if model is not None else None
        options = extend_options(meter_options, metadata=metadata, sync=cuda_sync_function(cuda_sync))
        self.meter = DistributedMeter(name, **options)
        self._token: contextvars.Token[tuple[object, ...]] | None = None

    @property
    def run(self) -> Run:
        """The run: live while training, merged across ranks on rank 0 once stopped."""
        return self.meter.run

    def start(self) -> None:
        self.meter.start()

    def stop(self, status: Status = Status.COMPLETED, error: str | None = None) -> Run:
        return self.meter.stop(status, error)

    def epoch(self, index: int) -> contextlib.AbstractContextManager[Window]:
        """A window named "epoch-<index>"; phases opened inside nest under it."""
        return self.meter.window(f"epoch-{index}")

    def phase(self, name: str) -> contextlib.AbstractContextManager[Window]:
        """A window for a phase ("train", "eval", …), nested in the open epoch if any."""
        return self.meter.window(name)

    def batch(self, n_samples: int, tokens: int | None = None) -> None:
        """Count one batch: its samples, its tokens when given, and the batch itself."""
        self.meter.count(n_samples, "samples")
        if tokens is not None:
            self.meter.count(tokens, "tokens")
        self.meter.count(1, "batches")

    def __enter__(self) -> TrainingMeter:
        self.meter.__enter__()
        self._token = push_running(self)
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if self._token is not None:
            pop_running(self._token)
            self._token = None
        self.meter.__exit__(exc_type, exc, tb)


class HookWindows:
    """Windows opened in one framework hook and closed in another, kept by role.

    Callbacks (Lightning, Transformers) cannot use `with`; this opens a meter window
    for a role ("epoch", "train", …), remembers the live energy at its start, and on
    close gives the live energy it drew (up to one sampling interval stale; the run's
    window energy, filled in when the run stops, is exact).
    """

    def __init__(self, meter: DistributedMeter) -> None:
        self.meter = meter
        self._open: dict[str, tuple[contextlib.AbstractContextManager[Window], Window, float]] = {}

    def __contains__(self, role: str) -> bool:
        return role in self._open

    def open(self, role: str, name: str) -> Window:
        """Open a window named `name` for `role`, closing the role's previous one."""
        self.close(role)
        context = self.meter.window(name)
        window = context.__enter__()
        self._open[role] = (context, window, self._live_j())
        return window

    def get(self, role: str) -> Window | None:
        entry = self._open.get(role)
        return entry[1] if entry else None

    def energy_so_far_j(self, role: str) -> float | None:
        """Live energy since the role's window opened, J; None if it is not open."""
        entry = self._open.get(role)
        return None if entry is None else self._live_j() - entry[2]

    def close(self, role: str) -> float:
        """Close the role's window if open; its live energy in J (0 if it was not open)."""
        entry = self._open.pop(role, None)
        if entry is None:
            return 0.0
        context, _, start_j = entry
        energy = self._live_j() - start_j
        context.__exit__(None, None, None)
        return energy

    def close_all(self) -> None:
        """Close every open window, innermost (latest opened) first."""
        for role in reversed(list(self._open)):
            self.close(role)

    def _live_j(self) -> float:
        return sum(self.meter.energy_so_far_j().values())


def metered_training(
    name: str | None = None,
    *,
    model: Any = None,
    cuda_sync: CudaSync = "auto",
    **meter_options: Unpack[DistributedOptions],
) -> Callable[[F], F]:
    """Decorator: meter each call of a training function as one run.

    Inside, `current_training_meter()` gives the TrainingMeter for epochs, phases and
    batches. Without `model`, the first torch module among the call's arguments is
    recorded. The latest run is at `fn.last_run`.
    """
    check_meter_options(meter_options, "metered_training", DistributedOptions)

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            found = model if model is not None else _first_module(args, kwargs)
            meter = TrainingMeter(
                name or fn.__qualname__, model=found, cuda_sync=cuda_sync, **meter_options
            )
            try:
                with meter:
                    return fn(*args, **kwargs)
            finally:
                wrapper.last_run = meter.meter.run if meter.meter.started else None  # type: ignore[attr-defined]

        wrapper.last_run = None  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


def _first_module(args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
    import torch

    for value in [*args, *kwargs.values()]:
        if isinstance(value, torch.nn.Module):
            return value
    return None

