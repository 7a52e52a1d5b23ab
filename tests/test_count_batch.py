"""count_batch(): the batch size read from the batch itself (issue 12, item 3)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from joulemeter.meter import EnergyMeter
from joulemeter.meter.batch import batch_size
from joulemeter.meter.errors import InvalidCountError
from tests.doubles import LinearCounterSource


def test_a_dataloader_over_x_and_y_counts_every_example_once_the_last_short_batch_included():
    dataset = TensorDataset(torch.randn(20, 3), torch.arange(20))
    with EnergyMeter("loader", sources=[LinearCounterSource()], store=False, sync_devices=False) as m:
        with m.window("train") as window:
            sizes = [m.count_batch(batch) for batch in DataLoader(dataset, batch_size=8)]
    assert sizes == [8, 8, 4]
    assert m.run.units == {"samples": 20.0} and window.units == {"samples": 20.0}


@pytest.mark.parametrize(
    ("batch", "size"),
    [
        (torch.zeros(5, 2), 5),
        ({"input_ids": torch.zeros(6, 128), "labels": torch.zeros(6)}, 6),  # a tokenizer's dict
        (((torch.zeros(3), torch.zeros(3)), torch.zeros(7, 1)), 7),  # first tensor among the items
        ([{"text": "a"}, {"text": "b"}, {"text": "c"}], 3),  # a list of examples
        (["a", "b"], 2),
        ({"text": ["a", "b", "c", "d"], "label": [0, 1, 0, 1]}, 4),  # a dict of lists
    ],
)
def test_the_batch_size_is_the_first_tensors_leading_dimension_or_the_number_of_examples(batch, size):
    assert batch_size(batch) == size


@pytest.mark.parametrize("batch", [torch.tensor(3.0), 42, object(), [], {}])
def test_a_batch_whose_size_cannot_be_told_is_a_clear_error_and_counts_nothing(batch):
    with EnergyMeter("bad", sources=[LinearCounterSource()], store=False, sync_devices=False) as m:
        with pytest.raises(InvalidCountError, match="count_batch"):
            m.count_batch(batch)
    assert m.run.units == {}
