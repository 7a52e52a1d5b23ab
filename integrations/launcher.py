"""A job started by a launcher (torchrun, accelerate, DeepSpeed), seen from one of its processes.

Launchers tell each process its place in environment variables: RANK, WORLD_SIZE,
LOCAL_RANK, LOCAL_WORLD_SIZE, GROUP_RANK (the node's rank) and MASTER_ADDR/MASTER_PORT
(torchrun's documented worker environment, "torchrun (Elastic Launch)", torch docs;
accelerate launch and DeepSpeed's launcher set the same names). That is enough to meter
each rank from its first line, before any process group exists.

To exchange what ranks measured without a process group, torchrun's own key-value store
serves: its agent hosts a TCPStore at MASTER_ADDR:MASTER_PORT for its workers when it sets
TORCHELASTIC_USE_AGENT_STORE=True (torch.distributed.elastic's LocalElasticAgent), so a
client reaches it without starting a server that a later init_process_group would collide
with. Keys are prefixed with the job's run id and restart, and never touch torch's own.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

#: How long a rank waits for the others' parts in the store (a slow rank's teardown included).
STORE_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class Launch:
    """This process's place in a launched job of more than one process."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int | None
    group_rank: str | None
    master_addr: str | None
    master_port: int | None
    agent_store: bool  # torchrun's agent store is there to exchange through
    job: str  # tells this job (and restart) from others that reuse the store

    @property
    def job_key(self) -> str:
        """What every rank knows alike of its job without asking the others (the launcher's
        job and restart, master address and port, world size): groups the job's parts in the
        ledger where no merged run id was shared."""
        return f"{self.job}@{self.master_addr}:{self.master_port}/{self.world_size}"


def launched() -> Launch | None:
    """The launcher's description of this process, None when not launched with more than one."""
    env = os.environ
    try:
        rank, world_size = int(env["RANK"]), int(env["WORLD_SIZE"])
    except (KeyError, ValueError):
        return None
    if world_size < 2 or not 0 <= rank < world_size:
        return None
    local_world = env.get("LOCAL_WORLD_SIZE")
    port = env.get("MASTER_PORT")
    return Launch(
        rank=rank,
        world_size=world_size,
        local_rank=int(env.get("LOCAL_RANK", "0")),
        local_world_size=int(local_world) if local_world and local_world.isdigit() else None,
        group_rank=env.get("GROUP_RANK"),
        master_addr=env.get("MASTER_ADDR"),
        master_port=int(port) if port and port.isdigit() else None,
        agent_store=env.get("TORCHELASTIC_USE_AGENT_STORE") == "True",
        job=f"{env.get('TORCHELASTIC_RUN_ID', 'job')}/{env.get('TORCHELASTIC_RESTART_COUNT', '0')}",
    )


class JobStore:
    """The launcher's TCPStore as a place for ranks to leave JSON for each other."""

    def __init__(self, launch: Launch, timeout_s: float = STORE_TIMEOUT_S) -> None:
        import torch.distributed as dist

        if not (launch.agent_store and launch.master_addr and launch.master_port):
            raise RuntimeError("no launcher store to reach (TORCHELASTIC_USE_AGENT_STORE is not True)")
        self.launch = launch
        self.timeout = timedelta(seconds=timeout_s)
        client = dist.TCPStore(launch.master_addr, launch.master_port, is_master=False, timeout=self.timeout)
        self._store = dist.PrefixStore(f"joulemeter/{launch.job}/", client)

    def all_gather(self, key: str, value: Any) -> list[Any]:
        """Every rank's `value` under `key`, in rank order (each rank must call it)."""
        self.put(key, value)
        return [self.get(f"{key}/{rank}") for rank in range(self.launch.world_size)]

    def put(self, key: str, value: Any) -> None:
        """Leave this rank's `value` under `key`."""
        self._store.set(f"{key}/{self.launch.rank}", json.dumps(value))

    def get(self, key: str) -> Any:
        """The value under `key`, waiting for it up to the store's timeout."""
        self._store.wait([key], self.timeout)
        return json.loads(self._store.get(key))
