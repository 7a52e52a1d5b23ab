"""A small transformers.Trainer run under DDP (gloo, CPU) with JoulemeterTrainerCallback.

Usage: torchrun --nproc-per-node 2 … transformers_ddp.py TRACE OUTPUT_DIR
A tiny BERT built from a config (no downloads). Every rank replays TRACE in place of
real hardware; the merged run goes to $JOULEMETER_LEDGER (written by rank 0 only).
"""

from __future__ import annotations

import sys

import torch
import transformers

from common import exit_without_teardown
from joulemeter.integrations.transformers import JoulemeterTrainerCallback

DATASET_SIZE = 32
BATCH = 4
EPOCHS = 2
SEQ_LEN = 12


class TokenDataset(torch.utils.data.Dataset):
    def __init__(self, size: int) -> None:
        g = torch.Generator().manual_seed(0)
        self.ids = torch.randint(1, 100, (size, SEQ_LEN), generator=g)
        self.labels = torch.randint(0, 2, (size,), generator=g)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "attention_mask": torch.ones(SEQ_LEN, dtype=torch.long),
                "labels": self.labels[i]}


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    config = transformers.BertConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
        vocab_size=100, max_position_embeddings=SEQ_LEN,
    )
    args = transformers.TrainingArguments(
        output_dir=sys.argv[2], num_train_epochs=EPOCHS, per_device_train_batch_size=BATCH,
        save_strategy="no", report_to=[], use_cpu=True, ddp_backend="gloo", disable_tqdm=True,
        dataloader_num_workers=0, seed=0,
    )
    callback = JoulemeterTrainerCallback("transformers-ddp", replay=sys.argv[1], interval_s=0.02, cuda_sync=False)
    trainer = transformers.Trainer(
        model=transformers.BertForSequenceClassification(config), args=args,
        train_dataset=TokenDataset(DATASET_SIZE), callbacks=[callback],
    )
    trainer.train()
    exit_without_teardown()


if __name__ == "__main__":
    main()
