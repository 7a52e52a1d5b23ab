"""A small Lightning fit under DDP (gloo, CPU) with JoulemeterCallback; launched by torchrun.

Usage: torchrun --nproc-per-node 2 … lightning_ddp.py TRACE
Every rank replays TRACE in place of real hardware; the merged run goes to
$JOULEMETER_LEDGER (written by rank 0 only).
"""

from __future__ import annotations

import sys

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from common import exit_without_teardown
from joulemeter.integrations.lightning import JoulemeterCallback

DATASET_SIZE = 64
BATCH = 4
EPOCHS = 2


class TinyMLP(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.cross_entropy(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(DATASET_SIZE, 8), torch.randint(0, 2, (DATASET_SIZE,)))
    trainer = pl.Trainer(
        accelerator="cpu", devices=2, strategy="ddp", max_epochs=EPOCHS, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        callbacks=[JoulemeterCallback("lightning-ddp", replay=sys.argv[1], interval_s=0.02, cuda_sync=False)],
    )
    trainer.fit(TinyMLP(), DataLoader(data, batch_size=BATCH))
    exit_without_teardown()


if __name__ == "__main__":
    main()
