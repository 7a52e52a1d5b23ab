"""Knowledge distillation (Hinton, Vinyals and Dean 2015, arXiv:1503.02531): train a
smaller student on the teacher's temperature-softened outputs plus the hard labels.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from joulemeter.integrations.compression.training import as_model_input, model_dtype
from joulemeter.meter import EnergyMeter, current_meter

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger("joulemeter.compression")


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    temperature: float = 4.0,
    alpha: float = 0.5,
) -> torch.Tensor:
    """alpha · T² · KL(softmax(teacher/T) ‖ softmax(student/T)) + (1 − alpha) · CE(student, labels).

    The T² keeps the soft term's gradients on the scale of the hard one as T changes
    (Hinton et al. 2015, §2). Classes are the last axis: (N, C) logits with (N,) labels,
    or per position (N, T, C) with (N, T) for a language model; KL is averaged over the
    N (or N × T) predictions.
    """
    import torch.nn.functional as F

    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature!r}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha weighs the soft term, in [0, 1]; got {alpha!r}")
    student_logits = student_logits.flatten(0, -2)
    teacher_logits = teacher_logits.flatten(0, -2)
    soft = F.kl_div(
        F.log_softmax(student_logits / temperature, dim=1),
        F.log_softmax(teacher_logits / temperature, dim=1),
        reduction="batchmean",
        log_target=True,
    )
    hard = F.cross_entropy(student_logits, labels.flatten())
    return alpha * temperature**2 * soft + (1.0 - alpha) * hard


def distill(
    teacher: nn.Module,
    student: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    epochs: int = 1,
    temperature: float = 4.0,
    alpha: float = 0.5,
    lr: float = 1e-3,
    device: torch.device | str = "cpu",
    meter: EnergyMeter | None = None,
    on_epoch: Callable[[int], None] | None = None,
) -> nn.Module:
    """Train `student` in place to mimic `teacher` on (inputs, labels) batches; returns it.

    The teacher runs in eval mode without gradients. When a meter runs (given, or the
    current one) each epoch is a window "epoch-N" and samples are counted; meter the call
    to get the student's production energy. `on_epoch(n)` is called after each epoch.
    """
    import torch

    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    device = torch.device(device)
    meter = meter or current_meter()
    teacher.to(device).eval()
    student.to(device).train()
    optimizer = torch.optim.Adam(student.parameters(), lr=lr)
    teacher_dtype, student_dtype = model_dtype(teacher), model_dtype(student)
    for epoch in range(1, epochs + 1):
        with meter.window(f"epoch-{epoch}") if meter else contextlib.nullcontext():
            for inputs, labels in loader:
                labels = labels.to(device)
                with torch.no_grad():
                    teacher_logits = teacher(as_model_input(inputs, device, teacher_dtype)).float()
                optimizer.zero_grad()
                student_logits = student(as_model_input(inputs, device, student_dtype)).float()
                loss = distillation_loss(
                    student_logits, teacher_logits, labels, temperature=temperature, alpha=alpha
                )
                loss.backward()
                optimizer.step()
                if meter:
                    meter.count(len(labels), "samples")
        log.debug("distillation epoch %d done", epoch)
        if on_epoch is not None:
            on_epoch(epoch)
    return student.eval()
