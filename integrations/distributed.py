"""torch.distributed: one run for a whole multi-process job, with nothing metered twice.

Each rank meters only the GPUs it uses; the CPU and memory of a node are metered once,
by the node's local rank 0. Every rank writes its run to the ledger as it goes, as a
*part* of the job (metadata["distributed"], meter/merge.py), so a job killed with SIGKILL
keeps what its ranks flushed. When the job ends, rank 0 gathers every rank's run and
merges them into ONE run whose domains say where they are ("node0/rank1/gpu:0",
"node0/cpu", "node0/ram"), with energy per rank and per node in its metadata, saves it
and deletes the parts; a completed job leaves that one run.

    with DistributedMeter("ddp-train") as m:   # every rank enters and leaves together
        ...
    m.run  # rank 0: the merged run; other ranks: their own part

A job that did not complete leaves its parts; rank 0 of the next distributed job on the
same ledger (or `joulemeter merge-parts`, or meter.merge.settle_parts) merges them into one
run, interrupted or failed, the same way.

A process started by a launcher (torchrun, accelerate, DeepSpeed: RANK and WORLD_SIZE set)
is metered as a rank from its start even before any process group exists (a decorated
`main()` that calls init_process_group itself): ranks are placed and merged through
torchrun's own store (launcher.py), or, without it, placed from the launcher's variables
and merged through the process group created meanwhile. Otherwise, without
torch.distributed initialised, it is a plain EnergyMeter. Entering and a clean
exit are collective calls (every rank must make them) over the default process group,
gloo or NCCL; with NCCL, set each rank's device (torch.cuda.set_device) before entering,
as object collectives travel through the current device. A rank whose part does not
complete (its code raised, it was interrupted) skips the merge and leaves its part in the
ledger, so nothing hangs on a collective the other ranks may never reach and nothing
measured is lost.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import threading
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from joulemeter.integrations.launcher import JobStore, Launch, launched
from joulemeter.meter.errors import MeterStateError
from joulemeter.meter.merge import (
    HOST_KINDS,
    PART_KEY,
    RankPlacement,
    delete_parts,
    merge_runs,
    part_metadata,
    replace_parts,
    settle_parts,
)
from joulemeter.meter.meter import EnergyMeter, MeterOptions, check_meter_options
from joulemeter.meter.run import Run, Status, Window
from joulemeter.meter.sources.cuda_devices import visible_entries

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from joulemeter.meter.store import Ledger

log = logging.getLogger("joulemeter.distributed")

#: How long a rank waits, when it leaves, for the tidying of the ledger it started.
TIDY_WAIT_S = 30.0


class DistributedOptions(MeterOptions, total=False):
    """MeterOptions plus `gpus`: the CUDA indices one rank meters (see DistributedMeter)."""

    gpus: Sequence[int] | None

def local_identity(gpus: Sequence[int] | None = None, rank: int | None = None) -> dict[str, Any]:
    """What this process knows about its place, to be gathered from every rank (`rank`:
    the launcher's, where no process group exists yet)."""
    if rank is None:
        import torch.distributed as dist

        rank = dist.get_rank()
    hostname = socket.gethostname()
    local_rank = os.environ.get("LOCAL_RANK")
    return {
        "rank": rank,
        "local_rank": int(local_rank) if local_rank is not None else None,
        "node_key": os.environ.get("GROUP_RANK") or hostname,
        "hostname": hostname,
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "cuda_device": _current_cuda_device(),
        "gpus": list(gpus) if gpus is not None else None,
        "run_id": uuid.uuid4().hex,
    }


def place_ranks(identities: Sequence[dict[str, Any]]) -> list[RankPlacement]:
    """Decide, from every rank's identity, the node, GPUs and host duty of each rank.

    GPUs: ranks of a node that see the same CUDA_VISIBLE_DEVICES each meter the device torch
    uses (torch.cuda.current_device) where each set a different one; else they share the
    devices in blocks (n visible as CUDA counts them, g ranks: n // g each; fewer devices
    than ranks: device i to the i-th rank); unset means each rank uses the device at its
    position (cuda:LOCAL_RANK).
    A rank given `gpus` explicitly meters exactly those. Host duty: the node's lowest
    local rank (LOCAL_RANK 0 under torchrun).
    """
    ordered = sorted(identities, key=lambda i: i["rank"])
    nodes: dict[str, list[dict[str, Any]]] = {}
    for ident in ordered:
        nodes.setdefault(ident["node_key"], []).append(ident)
    placements = []
    for index, (key, members) in enumerate(nodes.items()):
        local = {
            i["rank"]: i["local_rank"] if i["local_rank"] is not None else position
            for position, i in enumerate(members)
        }
        members = sorted(members, key=lambda i: local[i["rank"]])
        host_rank = members[0]["rank"]
        sharing: dict[str | None, list[dict[str, Any]]] = {}
        for ident in members:
            sharing.setdefault(ident["cuda_visible_devices"], []).append(ident)
        for visible, group in sharing.items():
            current = [i.get("cuda_device") for i in group]
            # torch's current device names a rank's GPU only where each rank set its own
            # (torch.cuda.set_device); all at the default 0 says nothing.
            by_torch = None not in current and len(set(current)) == len(current)
            for position, ident in enumerate(group):
                if ident["gpus"] is not None:
                    gpus = tuple(ident["gpus"])
                elif by_torch:
                    gpus = (ident["cuda_device"],)
                else:
                    gpus = _gpus_of(position, len(group), visible)
                placements.append(
                    RankPlacement(
                        rank=ident["rank"],
                        local_rank=local[ident["rank"]],
                        node=f"node{index}",
                        node_key=str(key),
                        hostname=ident["hostname"],
                        gpus=gpus,
                        meters_host=ident["rank"] == host_rank,
                    )
                )
    return sorted(placements, key=lambda p: p.rank)


def _gpus_of(position: int, group_size: int, visible: str | None) -> tuple[int, ...]:
    """The visible CUDA indices used by the rank at `position` among `group_size` sharers."""
    if visible is None:
        return (position,)
    count = len(visible_entries(visible) or [])  # as CUDA counts: one MIG device at most
    if count >= group_size:
        per_rank = count // group_size
        return tuple(range(position * per_rank, (position + 1) * per_rank))
    return (position,) if position < count else ()


def rank_devices(devices: Sequence[str] | None, placement: RankPlacement) -> list[str]:
    """The devices filter for one rank: its GPUs, plus the host kinds on the host rank."""
    gpu_names = [f"gpu:{i}" for i in placement.gpus]
    if devices is None:
        return gpu_names + (list(HOST_KINDS) if placement.meters_host else [])
    wanted = [g for g in gpu_names if "gpu" in devices or g in devices]
    if placement.meters_host:
        wanted += [d for d in devices if d != "gpu" and not d.startswith("gpu:")]
    return wanted


def _current_cuda_device() -> int | None:
    """The CUDA device torch uses in this process, where it already runs CUDA (never starts it)."""
    torch = sys.modules.get("torch")
    cuda = getattr(torch, "cuda", None)
    try:
        return int(cuda.current_device()) if cuda is not None and cuda.is_initialized() else None
    except Exception:  # a broken CUDA: fall back to LOCAL_RANK / CUDA_VISIBLE_DEVICES
        return None


def _warn_if_gpus_missing(meter: EnergyMeter, place: RankPlacement) -> None:
    """Warn when a rank was placed on GPUs that its meter does not read (they do not exist here)."""
    metered = {d.name for d in meter.domains}
    missing = [f"gpu:{i}" for i in place.gpus if f"gpu:{i}" not in metered]
    if missing:
        log.warning(
            "rank %d was placed on %s but this process cannot meter %s (CUDA_VISIBLE_DEVICES=%r); "
            "its GPU energy is missing from the run: pass gpus=[...] to DistributedMeter",
            place.rank, [f"gpu:{i}" for i in place.gpus], missing, os.environ.get("CUDA_VISIBLE_DEVICES"),
        )


class DistributedMeter:
    """An energy meter for a torch.distributed job that leaves one merged run on rank 0.

    Args:
        name: run name.
        gpus: under torch.distributed, the CUDA indices this rank meters, overriding the
            LOCAL_RANK / CUDA_VISIBLE_DEVICES rule of `place_ranks`.
        devices: restrict metering to these kinds or domains (as EnergyMeter's devices).
        ledger, store: where every rank writes its part and rank 0 the merged run (store=False:
            keep them in memory).
        **meter_options: the other EnergyMeter options (MeterOptions), applied on every rank.
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        gpus: Sequence[int] | None = None,
        devices: Sequence[str] | None = None,
        ledger: str | os.PathLike[str] | Ledger | None = None,
        store: bool = True,
        **meter_options: Unpack[MeterOptions],
    ) -> None:
        check_meter_options(meter_options, "DistributedMeter", DistributedOptions)
        self.name = name
        self.gpus = list(gpus) if gpus is not None else None
        self.devices = list(devices) if devices is not None else None
        self.ledger = ledger
        self.store = store
        self.meter_options = meter_options
        self.placement: RankPlacement | None = None
        self.placements: list[RankPlacement] = []
        self._meter: EnergyMeter | None = None
        self._merged: Run | None = None
        self._run_id: str | None = None
        self._shared = False
        self._started = False
        self._launch: Launch | None = None
        self._store: JobStore | None = None
        self._identity: dict[str, Any] = {}
        self._ledger: Ledger | None = None  # the one this process's parts go to (store=True)
        self._tidying: threading.Thread | None = None

    # -- state ---------------------------------------------------------------------
    @property
    def distributed(self) -> bool:
        """True when this meter runs across ranks (torch.distributed was initialised)."""
        return self.placement is not None

    @property
    def started(self) -> bool:
        """True once this rank's meter has started (its run exists)."""
        return self._started

    @property
    def meter(self) -> EnergyMeter:
        """This rank's own EnergyMeter."""
        if self._meter is None:
            raise MeterStateError("the meter has not started: use `with DistributedMeter(...)`")
        return self._meter

    @property
    def rank_run(self) -> Run:
        """This rank's own run (all of it when not distributed)."""
        return self.meter.run

    @property
    def run(self) -> Run:
        """The merged run on rank 0 once stopped; otherwise this rank's own run."""
        return self._merged if self._merged is not None else self.rank_run

    @property
    def merged_run_id(self) -> str | None:
        """Id of the merged run in the ledger (known on every rank once started)."""
        return self._run_id

    # -- life cycle ----------------------------------------------------------------
    def start(self) -> Run:
        """Place this rank (a collective call when distributed) and start its meter."""
        return self._begin(EnergyMeter.start)

    def stop(self, status: Status = Status.COMPLETED, error: str | None = None) -> Run:
        """Stop this rank's meter; completed: merge every rank's run on rank 0 (collective).

        Any other status leaves this rank's part in the ledger, with no collective call.
        """
        if self.meter.running:
            self.meter.stop(status, error)
            self._share()
        return self.run

    def window(self, name: str) -> contextlib.AbstractContextManager[Window]:
        """A named span on this rank; matched across ranks by path when merged."""
        return self.meter.window(name)

    def count(self, n: float, unit: str = "samples") -> None:
        """Units of work done by this rank; added up across ranks when merged."""
        self.meter.count(n, unit)

    def energy_so_far_j(self) -> dict[str, float]:
        return self.meter.energy_so_far_j()

    def power_now_w(self) -> dict[str, float | None]:
        return self.meter.power_now_w()

    def elapsed_s(self) -> float:
        return self.meter.elapsed_s()

    def __enter__(self) -> DistributedMeter:
        self._begin(EnergyMeter.__enter__)
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.meter.__exit__(exc_type, exc, tb)  # stops this rank's part, failed if it raised
        self._share()

    # -- internals -------------------------------------------------------------------
    def _begin(self, begin: Callable[[EnergyMeter], Any]) -> Run:
        if self._meter is not None:
            raise MeterStateError("this meter already ran; create a new DistributedMeter per run")
        launch = None if _distributed_ready() else launched()
        if launch is not None:
            return self._begin_launched(launch, begin)
        if not _distributed_ready():
            self._meter = EnergyMeter(
                self.name, devices=self.devices, ledger=self.ledger, store=self.store,
                **self.meter_options,
            )
            begin(self._meter)
            self._started = True
            return self._meter.run
        import torch.distributed as dist

        identities: list[Any] = [None] * dist.get_world_size()
        self._identity = local_identity(self.gpus)
        dist.all_gather_object(identities, self._identity)
        self._placed(identities)
        return self._start_rank_meter(begin)

    def _placed(self, identities: Sequence[dict[str, Any]]) -> None:
        """Every rank's place, decided from all their identities (the same on every rank)."""
        self.placements = place_ranks(identities)
        self.placement = self.placements[self._identity["rank"]]
        self._run_id = identities[0]["run_id"]

    def _begin_launched(self, launch: Launch, begin: Callable[[EnergyMeter], Any]) -> Run:
        """Meter one rank of a launched job from its start, before any process group exists.

        Ranks are placed together through torchrun's store where it is there; otherwise each
        places itself from the launcher's variables (LOCAL_RANK 0 meters the node's CPU and
        memory) and the merge at the end goes through the process group, if one exists then.
        """
        self._launch = launch
        self._identity = local_identity(self.gpus, rank=launch.rank)
        if launch.agent_store:
            try:
                self._store = JobStore(launch)
                self._placed(self._store.all_gather("identity", self._identity))
            except Exception as exc:  # noqa: BLE001 - torch raises plain RuntimeErrors here
                log.warning("rank %d cannot reach torchrun's store (%s): placing it from its environment",
                            launch.rank, exc)
                self._store = None
        if self._store is None:
            self.placement = _placement_from_environment(launch, self.gpus)
            self._identity["gpus"] = list(self.placement.gpus)  # what it metered, for the merge
        return self._start_rank_meter(begin)

    def _start_rank_meter(self, begin: Callable[[EnergyMeter], Any]) -> Run:
        assert self.placement is not None
        if self.store:
            self._ledger = _open(self.ledger)
        self._meter = self._rank_meter()
        try:
            begin(self._meter)
        except MeterStateError as exc:  # nothing readable for this rank: keep windows and units
            log.warning("rank %d meters no device (%s)", self.placement.rank, exc)
            self._meter = self._rank_meter(nothing=True)
            begin(self._meter)
        _warn_if_gpus_missing(self._meter, self.placement)
        self._started = True
        if self._ledger is not None and (self.placement.meters_host or self.placement.rank == 0):  # once a node
            self._tidying = _tidy_in_background(self._ledger, settle=self.placement.rank == 0)
        return self._meter.run

    def _rank_meter(self, nothing: bool = False) -> EnergyMeter:
        """This rank's meter, writing its run to the ledger as it goes, marked a part of the job."""
        assert self.placement is not None
        options = dict(self.meter_options)
        metadata = dict(options.pop("metadata", None) or {})
        metadata[PART_KEY] = self._part_marker()
        if nothing:
            options["sources"] = []
        return EnergyMeter(
            self.name,
            devices=None if nothing else rank_devices(self.devices, self.placement),
            metadata=metadata,
            ledger=self._ledger,
            store=self.store,
            **options,
        )

    def _part_marker(self) -> dict[str, Any]:
        """What this rank's part records to be merged later: its job, the merged run's id where
        known, and its placement. Ranks placed together share the merged run's id; one placed
        from the launcher's variables alone knows its job by them, and the id only on rank 0
        (whose identity names the merged run)."""
        assert self.placement is not None
        if self._run_id is not None:
            job, merged_run_id, world_size = self._run_id, self._run_id, len(self.placements)
        else:
            assert self._launch is not None
            job, world_size = self._launch.job_key, self._launch.world_size
            merged_run_id = self._identity["run_id"] if self.placement.rank == 0 else None
        return part_metadata(self.placement, job=job, merged_run_id=merged_run_id, world_size=world_size)

    def _share(self) -> None:
        """Merge this rank's finished run with the others', or leave its part if it did not complete."""
        if self.placement is None or self._shared:
            return
        self._shared = True
        run = self.rank_run
        if run.status is Status.COMPLETED:
            if self._merge_and_save(run) and self.placement.rank != 0:
                self._drop_own_part()
        else:
            log.warning(
                "rank %d ended %s: its part stays in the ledger, to be merged with the other "
                "ranks' once the job is over", self.placement.rank, run.status.value,
            )
        self._close_ledger()

    def _merge_and_save(self, run: Run) -> bool:
        """Gather every rank's run on rank 0, merge and save it: through torchrun's store where
        the ranks were placed through it, else through the process group (one may have been
        created after the meter started); with neither, each rank's part stays in the ledger.
        True once rank 0 has saved the merged run."""
        assert self.placement is not None
        part = {"identity": self._identity, "run": run.to_dict()}
        if self._store is not None:
            return self._merge_through_store(part)
        if _distributed_ready():
            return self._merge_through_group(part)
        log.warning("rank %d: no process group and no launcher store to merge through: "
                    "its part stays in the ledger", self.placement.rank)
        return False

    def _merge_through_store(self, part: dict[str, Any]) -> bool:
        assert self._store is not None and self.placement is not None
        try:
            self._store.put("part", part)
            if self.placement.rank != 0:
                return bool(self._store.get("merged/0"))
            saved = False
            try:
                saved = self._merge([self._store.get(f"part/{r}") for r in range(len(self.placements))])
            finally:
                self._store.put("merged", saved)  # the other ranks wait for this
            return saved
        except Exception:  # noqa: BLE001 - a missing rank times out as a RuntimeError
            log.exception("gathering the ranks' runs through the store failed: rank %d's part stays "
                          "in the ledger", self.placement.rank)
            return False

    def _merge_through_group(self, part: dict[str, Any]) -> bool:
        import torch.distributed as dist

        assert self.placement is not None
        rank = self.placement.rank
        gathered: list[Any] | None = [None] * dist.get_world_size() if rank == 0 else None
        try:
            dist.gather_object(part, gathered, dst=0)
        except Exception:
            log.exception("gathering the ranks' runs failed: rank %d's part stays in the ledger", rank)
            return False
        saved = [False]
        try:
            if gathered is not None:
                saved[0] = self._merge(gathered)
        finally:
            dist.broadcast_object_list(saved, src=0)  # no rank leaves while rank 0 still merges
        return bool(saved[0])

    def _merge(self, parts: Sequence[dict[str, Any]]) -> bool:
        """On rank 0: merge every rank's part into one run, saved in place of the parts.
        True once the merged run is in the ledger."""
        if not self.placements:  # placed from the environment: decide together now
            self._placed([p["identity"] for p in parts])
        runs = [Run.from_dict(p["run"]) for p in parts]
        self._merged = merge_runs(runs, self.placements, run_id=self._run_id or uuid.uuid4().hex)
        log.info("merged %d ranks into run %s: %.3f J", len(runs), self._merged.id[:8], self._merged.total_energy_j)
        if self._ledger is None:
            return False
        replace_parts(self._ledger, self._merged, [r.id for r in runs])
        return True

    def _drop_own_part(self) -> None:
        """Delete this rank's part from its ledger once rank 0 saved the merged run: rank 0
        deleted it already where they share a ledger, not where each node has its own."""
        assert self._ledger is not None
        try:
            delete_parts(self._ledger, [self.rank_run.id])
        except Exception as exc:  # the merged run is saved: a leftover part is settled later
            log.warning("could not delete this rank's part %s: %s", self.rank_run.id[:8], exc)

    def _close_ledger(self) -> None:
        """Close the ledger this meter opened, once the tidying it started is done (bounded)."""
        if self._tidying is not None:
            self._tidying.join(TIDY_WAIT_S)
        if self._ledger is not None and self._ledger is not self.ledger:
            self._ledger.close()


def _open(location: str | os.PathLike[str] | Ledger | None) -> Ledger:
    """The ledger given, or the one at `location` opened (without recovery: that runs on a
    thread, `_tidy_in_background`). A rank opens it once, before its meter starts, and its
    meter, the tidying, the merge and the deletions all go through it: opening a SQLite
    ledger again in a process that has it open reads the file outside SQLite, which drops
    that process's locks on it (sqlite.org/howtocorrupt.html, 2.2) and can lose its writes."""
    from joulemeter.meter.store import Ledger, open_ledger

    return location if isinstance(location, Ledger) else open_ledger(location, recover=False)


def _tidy_in_background(ledger: Ledger, settle: bool) -> threading.Thread:
    """On a thread of its own, off the metered code's path: recover the ledger (runs whose
    process died marked interrupted, spools delivered) and, with `settle` (rank 0), merge
    the parts earlier jobs left (meter.merge.settle_parts)."""

    def tidy() -> None:
        try:
            ledger.recover()
            if settle:
                settle_parts(ledger)
        except Exception as exc:  # a later job or `joulemeter merge-parts` does it
            log.info("tidying %s failed: %s", ledger.location, exc)

    thread = threading.Thread(target=tidy, name="joulemeter-tidy", daemon=True)
    thread.start()
    return thread


def _placement_from_environment(launch: Launch, gpus: Sequence[int] | None) -> RankPlacement:
    """Where a launched rank runs, from the launcher's variables alone (no other rank asked):
    its GPUs by its local rank among LOCAL_WORLD_SIZE (as place_ranks shares them), the
    node's CPU and memory on LOCAL_RANK 0."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if gpus is None:
        sharers = launch.local_world_size or 1
        # one device visible to each rank: a launcher that binds one GPU per rank
        one_each = visible is not None and len(visible_entries(visible) or []) == 1
        gpus = (0,) if one_each else _gpus_of(launch.local_rank, sharers, visible)
    node = f"node{launch.group_rank}" if launch.group_rank is not None else "node0"
    return RankPlacement(
        rank=launch.rank,
        local_rank=launch.local_rank,
        node=node,
        node_key=launch.group_rank or socket.gethostname(),
        hostname=socket.gethostname(),
        gpus=tuple(gpus),
        meters_host=launch.local_rank == 0,
    )


def _distributed_ready() -> bool:
    """True when torch.distributed is importable, available and initialised (cheaply)."""
    import sys

    if "torch" not in sys.modules:
        return False  # nobody imported torch: no process group can exist
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()
