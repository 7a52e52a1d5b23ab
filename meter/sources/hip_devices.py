"""Which AMD GPUs this process uses, by identity: HIP's device numbers mapped to AMD SMI's boards.

The ROCm runtimes pick devices in two stages (ROCm docs, "GPU isolation techniques" and
"HIP environment variables", https://rocm.docs.amd.com/en/latest/conceptual/gpu-isolation.html):
ROCR_VISIBLE_DEVICES (ROCr, every user-mode ROCm program) lists device indices or UUIDs
("GPU-<hex>"); HIP_VISIBLE_DEVICES, or CUDA_VISIBLE_DEVICES where it is unset, then lists
indices among the devices ROCr left. Both renumber from 0 in the order listed. An entry that
names no device ends the list here, as CUDA_VISIBLE_DEVICES does in CUDA (cuda_devices); the
physical order is taken to be PCI bus order, which is how the amdgpu driver enumerates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class AmdBoard:
    """What AMD SMI says about one GPU (one compute partition where the board is partitioned)."""

    smi_index: int  # position in amdsmi_get_processor_handles()
    uuid: str
    bdf: str  # "0000:23:00.0"; "" where AMD SMI does not say
    name: str


@dataclass(frozen=True)
class HipDevice:
    """One device HIP gives this process: its number here and the board it is."""

    hip_index: int
    board: AmdBoard
    matched_by: str  # in words, e.g. "ROCR_VISIBLE_DEVICES UUID"


def _entries(spec: str) -> list[str]:
    """The entries of a visible-devices list up to the first empty one."""
    entries = []
    for entry in (e.strip() for e in spec.split(",")):
        if not entry:
            break
        entries.append(entry)
    return entries


def _by_uuid(entry: str, boards: Sequence[AmdBoard]) -> AmdBoard | None:
    """The one board whose UUID holds the hex digits of a ROCr "GPU-<hex>" entry."""
    digits = entry[len("GPU-"):].lower()
    found = [b for b in boards if digits and digits in b.uuid.replace("-", "").lower()]
    return found[0] if len(found) == 1 else None


def map_devices(
    boards: Sequence[AmdBoard], rocr: str | None, hip: str | None, cuda: str | None = None
) -> tuple[list[HipDevice], list[str]]:
    """The devices HIP gives this process, in HIP's numbering, and warnings in words.

    `rocr`, `hip`, `cuda` are ROCR_VISIBLE_DEVICES, HIP_VISIBLE_DEVICES and
    CUDA_VISIBLE_DEVICES (None where unset).
    """
    warnings: list[str] = []
    physical = sorted(boards, key=lambda b: (b.bdf or "~", b.smi_index))
    stage: list[tuple[AmdBoard, str]] = [(b, "PCI bus order") for b in physical]
    if rocr is not None:
        stage = []
        for entry in _entries(rocr):
            if entry.isdigit():
                board = physical[int(entry)] if int(entry) < len(physical) else None
                how = f"ROCR_VISIBLE_DEVICES index {entry} in PCI bus order"
            else:
                board = _by_uuid(entry, physical) if entry.upper().startswith("GPU-") else None
                how = "ROCR_VISIBLE_DEVICES UUID"
            if board is None:
                warnings.append(f"ROCR_VISIBLE_DEVICES entry {entry!r} names no GPU: ROCm ignores it and the rest")
                break
            if all(b != board for b, _ in stage):
                stage.append((board, how))
    name, spec = ("HIP_VISIBLE_DEVICES", hip) if hip is not None else ("CUDA_VISIBLE_DEVICES", cuda)
    if spec is None:
        return [HipDevice(i, b, how) for i, (b, how) in enumerate(stage)], warnings
    chosen: list[tuple[AmdBoard, str]] = []
    for entry in _entries(spec):
        if not entry.isdigit() or int(entry) >= len(stage):
            warnings.append(f"{name} entry {entry!r} names no GPU: HIP ignores it and the rest")
            break
        board, how = stage[int(entry)]
        if all(b != board for b, _ in chosen):
            chosen.append((board, f"{name} index {entry} of {how}"))
    return [HipDevice(i, b, how) for i, (b, how) in enumerate(chosen)], warnings
