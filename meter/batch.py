"""How many examples a batch holds, read from its structure without importing torch.

A tensor or array: its leading dimension. A tuple, list or dict (DataLoader's `(x, y)`, a
tokenizer's dict): the first tensor among its items, or else, for a list or tuple of
examples, its length (a dict of lists: the first list's length).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from joulemeter.meter.errors import InvalidCountError


def batch_size(batch: object) -> int:
    """The number of examples in `batch` (see the module doc); InvalidCountError if it cannot tell."""
    if _is_tensor(batch):
        return _leading(batch)
    items = list(batch.values()) if isinstance(batch, Mapping) else batch
    if isinstance(items, (list, tuple)):
        first = next((item for item in items if _is_tensor(item)), None)
        if first is not None:
            return _leading(first)
        if isinstance(batch, Mapping):
            first_list = next((item for item in items if isinstance(item, (list, tuple))), None)
            if first_list is not None:
                return len(first_list)
        elif items:
            return len(items)
    raise InvalidCountError(
        f"count_batch() cannot tell how many examples a {type(batch).__name__} holds; "
        "pass a tensor, a tuple/list/dict of tensors or a list of examples, or use count(n, unit=...)"
    )


def _is_tensor(value: Any) -> bool:
    """A torch tensor, numpy array or anything else with a shape of at least one dimension."""
    shape = getattr(value, "shape", None)
    return isinstance(shape, tuple) and len(shape) > 0


def _leading(tensor: Any) -> int:
    return int(tensor.shape[0])
