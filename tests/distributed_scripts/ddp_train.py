"""A small real DDP training run (gloo, CPU) metered with TrainingMeter; launched by torchrun.

Usage: torchrun … ddp_train.py TRACE [--gpu-per-rank]
Every rank replays TRACE (a power trace with gpu:N, cpu and ram domains) in place of
real hardware. --gpu-per-rank sets CUDA_VISIBLE_DEVICES to the rank's local rank, as a
launcher that binds one GPU per rank would, so every rank sees its GPU as gpu:0.
The merged run goes to $JOULEMETER_LEDGER (written by rank 0 only).
"""

from __future__ import annotations

import os
import sys

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from common import exit_without_teardown
from joulemeter.integrations.pytorch import TrainingMeter

DATASET_SIZE = 64
BATCH = 4
EPOCHS = 2


def main() -> None:
    trace = sys.argv[1]
    if "--gpu-per-rank" in sys.argv:
        os.environ["CUDA_VISIBLE_DEVICES"] = os.environ["LOCAL_RANK"]
    torch.set_num_threads(1)
    torch.manual_seed(0)
    dist.init_process_group("gloo")
    dataset = TensorDataset(torch.randn(DATASET_SIZE, 8), torch.randint(0, 2, (DATASET_SIZE,)))
    sampler = DistributedSampler(dataset, shuffle=False)
    loader = DataLoader(dataset, batch_size=BATCH, sampler=sampler)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    ddp = DistributedDataParallel(model)
    optimiser = torch.optim.SGD(ddp.parameters(), lr=0.1)
    with TrainingMeter("ddp-test", model=model, replay=trace, interval_s=0.02, cuda_sync=False) as tm:
        for epoch in range(EPOCHS):
            sampler.set_epoch(epoch)
            with tm.epoch(epoch):
                with tm.phase("train"):
                    for x, y in loader:
                        optimiser.zero_grad()
                        torch.nn.functional.cross_entropy(ddp(x), y).backward()
                        optimiser.step()
                        tm.batch(len(x))
                with tm.phase("eval"), torch.no_grad():
                    for x, _ in loader:
                        ddp(x)
                        tm.batch(len(x))
    if dist.get_rank() == 0:
        print(f"merged run {tm.run.id} total {tm.run.total_energy_j:.3f} J", flush=True)
    exit_without_teardown()


if __name__ == "__main__":
    main()
