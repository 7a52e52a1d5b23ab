"""Which NVIDIA boards this process uses, by identity: CUDA's device numbers mapped to boards.

CUDA numbers devices fastest first unless CUDA_DEVICE_ORDER=PCI_BUS_ID, then renumbers
the ones CUDA_VISIBLE_DEVICES lists (indices, UUIDs, unique UUID prefixes, MIG UUIDs);
NVML numbers boards its own way. So a board is matched by UUID (torch's, when it already
runs CUDA here) or by PCI bus id order, never by NVML's index. CUDA rules used here are
from the CUDA Programming Guide, "CUDA Environment Variables"
(https://docs.nvidia.com/cuda/cuda-c-programming-guide/#cuda-environment-variables), and
the MIG User Guide, "CUDA Device Enumeration"
(https://docs.nvidia.com/datacenter/tesla/mig-user-guide/#cuda-device-enumeration): a
process enumerates one MIG device only, the first listed.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

log = logging.getLogger("joulemeter.sources.nvml")


@dataclass(frozen=True)
class Board:
    """What NVML says about one physical board."""

    nvml_index: int
    uuid: str  # "GPU-…"
    pci_bus_id: str  # "00000000:07:00.0"; "" where NVML does not say
    name: str
    mig_uuids: tuple[str, ...] = ()  # "MIG-…" of its MIG devices, where MIG is on


@dataclass(frozen=True)
class CudaDevice:
    """One device CUDA gives this process: its number here and the board it is on."""

    cuda_index: int
    board: Board
    mig_uuid: str | None  # the MIG device used, None for a whole board
    matched_by: str  # how the board was found, in words, e.g. "UUID from torch"


def visible_entries(spec: str | None) -> list[str] | None:
    """CUDA_VISIBLE_DEVICES as CUDA reads it, None when unset: its entries up to the first
    empty one, with only the first MIG entry kept (one MIG device per process)."""
    if spec is None:
        return None
    entries: list[str] = []
    for entry in (e.strip() for e in spec.split(",")):
        if not entry:
            break
        if entry.startswith("MIG-") and any(e.startswith("MIG-") for e in entries):
            continue
        entries.append(entry)
    return entries


def cuda_device_count(spec: str | None, boards: int) -> int:
    """How many devices CUDA gives a process with this CUDA_VISIBLE_DEVICES on `boards` boards,
    counted without asking the hardware (entries that name no board are not seen)."""
    entries = visible_entries(spec)
    if entries is None:
        return boards
    count = 0
    for entry in entries:
        if entry.isdigit() and int(entry) >= boards:
            break
        count += 1
    return count


def map_devices(
    boards: Sequence[Board],
    spec: str | None,
    order: str | None,
    torch_uuids: Sequence[str] | None = None,
) -> tuple[list[CudaDevice], list[str]]:
    """The devices CUDA gives this process, in CUDA's numbering, and warnings in words.

    `spec` is CUDA_VISIBLE_DEVICES, `order` CUDA_DEVICE_ORDER; `torch_uuids` the UUID of
    each device torch sees (None when torch has not initialised CUDA here): it decides.
    """
    if torch_uuids is not None:
        return _by_torch(boards, torch_uuids), []
    warnings = []
    physical = sorted(boards, key=lambda b: (b.pci_bus_id or "~", b.nvml_index))
    how = "PCI bus order"
    if order != "PCI_BUS_ID" and len({b.name for b in boards}) > 1:
        how = "PCI bus order, assumed"
        warnings.append(
            "CUDA numbers unlike GPUs fastest first and torch has not started CUDA here, so "
            "which CUDA index is which GPU is assumed from PCI bus order; set "
            "CUDA_DEVICE_ORDER=PCI_BUS_ID to make it certain"
        )
    entries = visible_entries(spec)
    if entries is None:
        return [CudaDevice(i, b, None, how) for i, b in enumerate(physical)], warnings
    devices: list[CudaDevice] = []
    for entry in entries:
        found = _resolve(entry, physical, how)
        if found is None:
            warnings.append(f"CUDA_VISIBLE_DEVICES entry {entry!r} names no GPU: CUDA ignores it and the rest")
            break
        board, mig, matched_by = found
        if any(d.board == board and d.mig_uuid == mig for d in devices):
            continue
        devices.append(CudaDevice(len(devices), board, mig, matched_by))
    return devices, warnings


def _resolve(entry: str, physical: Sequence[Board], how: str) -> tuple[Board, str | None, str] | None:
    """(board, MIG UUID or None, how it matched) for one CUDA_VISIBLE_DEVICES entry."""
    if entry.isdigit():
        index = int(entry)
        return (physical[index], None, f"CUDA index {index} in {how}") if index < len(physical) else None
    if entry.startswith("MIG-GPU-"):  # legacy form MIG-GPU-<uuid>/<gi>/<ci>
        board = _unique(b for b in physical if b.uuid == entry[len("MIG-"):].split("/")[0])
        return (board, entry, "MIG device of the board's UUID") if board else None
    if entry.startswith("MIG-"):
        board = _unique(b for b in physical if any(m.startswith(entry) for m in b.mig_uuids))
        return (board, entry, "MIG device UUID") if board else None
    if entry.startswith("GPU-"):
        board = _unique(b for b in physical if b.uuid.startswith(entry))
        return (board, None, "UUID" if board and board.uuid == entry else "UUID prefix") if board else None
    return None


def _unique(boards: Iterable[Board]) -> Board | None:
    found = list(boards)
    return found[0] if len(found) == 1 else None


def _by_torch(boards: Sequence[Board], torch_uuids: Sequence[str]) -> list[CudaDevice]:
    devices = []
    for index, uuid in enumerate(torch_uuids):
        for board in boards:
            migs = [m for m in board.mig_uuids if m.endswith(uuid)]
            if board.uuid.endswith(uuid) or migs:
                devices.append(CudaDevice(index, board, migs[0] if migs else None, "UUID from torch"))
                break
    return devices


def torch_cuda_uuids() -> list[str] | None:
    """The UUID of each CUDA device torch sees, only where torch already runs CUDA here.

    Never imports torch nor starts CUDA (that would cost seconds and change the process).
    """
    torch = sys.modules.get("torch")
    cuda = getattr(torch, "cuda", None)
    try:
        if cuda is None or not cuda.is_initialized():
            return None
        uuids = [str(cuda.get_device_properties(i).uuid) for i in range(cuda.device_count())]
    except Exception as exc:  # an old torch without .uuid, a broken CUDA: fall back to PCI order
        log.debug("torch cannot name its CUDA devices: %s", exc)
        return None
    return uuids


def synchronize_cuda(indices: Iterable[int] | None = None) -> bool:
    """Wait for the work queued on these CUDA devices (None: every device), where torch runs
    CUDA here; never imports torch. True if it synchronised."""
    torch = sys.modules.get("torch")
    cuda = getattr(torch, "cuda", None)
    if cuda is None or not cuda.is_initialized():
        return False
    # A device without a context has no queued work; synchronising it would create one
    # (hundreds of MB of GPU memory), so it is skipped where torch can tell.
    has_context = getattr(getattr(torch, "_C", None), "_cuda_hasPrimaryContext", None)
    for index in range(cuda.device_count()) if indices is None else indices:
        if has_context is None or has_context(index):
            cuda.synchronize(index)
    return True
