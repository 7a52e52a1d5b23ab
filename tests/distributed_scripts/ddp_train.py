"""A small real DDP training run (gloo, CPU) metered with TrainingMeter; launched by torchrun.

Usage: torchrun … ddp_train.py TRACE [--gpu-per-rank] [--group-after-meter | --no-group] [--until-killed]
Every rank replays TRACE (a power trace with gpu:N, cpu and ram domains) in place of
real hardware. --gpu-per-rank sets CUDA_VISIBLE_DEVICES to the rank's local rank, as a
launcher that binds one GPU per rank would, so every rank sees its GPU as gpu:0.
--group-after-meter initialises the process group inside the metered function, after the
meter started (as `@metered_training` on a `main()` that calls init_process_group does);
--no-group never creates one (each rank trains on its shard alone). --until-killed trains
epoch after epoch, gently (a short pause per batch), until the job is killed.
Every rank writes its part to $JOULEMETER_LEDGER as it goes; rank 0 replaces them by the
merged run at the end.
"""

from __future__ import annotations

import itertools
import os
import sys
import time

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from common import exit_without_teardown
from joulemeter.integrations.pytorch import TrainingMeter, current_training_meter, metered_training

DATASET_SIZE = 64
BATCH = 4
EPOCHS = 2


def main() -> None:
    trace = sys.argv[1]
    if "--gpu-per-rank" in sys.argv:
        os.environ["CUDA_VISIBLE_DEVICES"] = os.environ["LOCAL_RANK"]
    torch.set_num_threads(1)
    torch.manual_seed(0)
    if "--group-after-meter" in sys.argv or "--no-group" in sys.argv:
        metered = metered_training("ddp-test", replay=trace, interval_s=0.02, cuda_sync=False)(train)
        run = metered(trace, group="--no-group" not in sys.argv).run
    else:
        dist.init_process_group("gloo")
        with TrainingMeter("ddp-test", replay=trace, interval_s=0.02, cuda_sync=False) as tm:
            train(trace, group=True, tm=tm)
        run = tm.run
    if os.environ["RANK"] == "0":
        print(f"merged run {run.id} total {run.total_energy_j:.3f} J", flush=True)
    exit_without_teardown()


def train(trace: str, group: bool, tm: TrainingMeter | None = None) -> TrainingMeter:
    """Train on this rank's shard under the running TrainingMeter (DDP where there is a group)."""
    tm = tm or current_training_meter()
    if group and not dist.is_initialized():
        dist.init_process_group("gloo")
    dataset = TensorDataset(torch.randn(DATASET_SIZE, 8), torch.randint(0, 2, (DATASET_SIZE,)))
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=False)
    loader = DataLoader(dataset, batch_size=BATCH, sampler=sampler)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    trained = DistributedDataParallel(model) if group else model
    optimiser = torch.optim.SGD(trained.parameters(), lr=0.1)
    until_killed = "--until-killed" in sys.argv
    for epoch in itertools.count() if until_killed else range(EPOCHS):
        sampler.set_epoch(epoch)
        with tm.epoch(epoch):
            with tm.phase("train"):
                for x, y in loader:
                    optimiser.zero_grad()
                    torch.nn.functional.cross_entropy(trained(x), y).backward()
                    optimiser.step()
                    tm.batch(len(x))
                    if until_killed:
                        time.sleep(0.01)  # leave the test's CPUs to the test
            with tm.phase("eval"), torch.no_grad():
                for x, _ in loader:
                    trained(x)
                    tm.batch(len(x))
    return tm


if __name__ == "__main__":
    main()
