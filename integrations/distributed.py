"""torch.distributed: one run for a whole multi-process job, with nothing metered twice.

Each rank meters only the GPUs it uses; the CPU and memory of a node are metered once,
by the node's local rank 0. When the job ends, rank 0 gathers every rank's run and
merges them into ONE run whose domains say where they are ("node0/rank1/gpu:0",
"node0/cpu", "node0/ram"), with energy per rank and per node in its metadata, and
writes it to the ledger; the other ranks write nothing.

    with DistributedMeter("ddp-train") as m:   # every rank enters and leaves together
        ...
    m.run  # rank 0: the merged run; other ranks: their own part

A process started by a launcher (torchrun, accelerate, DeepSpeed: RANK and WORLD_SIZE set)
is metered as a rank from its start even before any process group exists (a decorated
`main()` that calls init_process_group itself): ranks are placed and merged through
torchrun's own store (launcher.py), or, without it, placed from the launcher's variables
and merged through the process group created meanwhile. Otherwise, without
torch.distributed initialised, it is a plain EnergyMeter. Entering and a clean
exit are collective calls (every rank must make them) over the default process group,
gloo or NCCL; with NCCL, set each rank's device (torch.cuda.set_device) before entering,
as object collectives travel through the current device. A rank whose part does not
complete (its code raised, it was interrupted) skips the merge and saves its own part
alone, so nothing hangs on a collective the other ranks may never reach and nothing
measured is lost.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import socket
import sys
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from joulemeter.integrations.launcher import JobStore, Launch, launched
from joulemeter.meter.errors import MeterStateError
from joulemeter.meter.meter import EnergyMeter, MeterOptions, check_meter_options
from joulemeter.meter.run import Domain, Run, Status, Window
from joulemeter.meter.sources.cuda_devices import visible_entries

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from joulemeter.meter.store import Ledger

log = logging.getLogger("joulemeter.distributed")


class DistributedOptions(MeterOptions, total=False):
    """MeterOptions plus `gpus`: the CUDA indices one rank meters (see DistributedMeter)."""

    gpus: Sequence[int] | None

#: Domain kinds that belong to a whole node rather than to one rank's GPU.
HOST_KINDS = ("cpu", "dram", "ram", "psys")

#: Worst status first: the merged run takes the worst of its ranks.
_STATUS_SEVERITY = (Status.FAILED, Status.INTERRUPTED, Status.RUNNING, Status.COMPLETED)


@dataclass(frozen=True)
class RankPlacement:
    """Where one rank runs and what it meters."""

    rank: int
    local_rank: int
    node: str  # "node0", "node1", … in order of the nodes' lowest global rank
    node_key: str  # what identified the node: torchrun's GROUP_RANK, else the hostname
    hostname: str
    gpus: tuple[int, ...]  # CUDA indices (as this rank sees them) that this rank meters
    meters_host: bool  # this rank meters the node's CPU and memory

    def domain_name(self, domain: Domain) -> str:
        """The domain's name in the merged run: node-level for host domains, else per rank."""
        if self.meters_host and domain.kind in HOST_KINDS:
            return f"{self.node}/{domain.name}"
        return f"{self.node}/rank{self.rank}/{domain.name}"


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


def merge_runs(
    runs: Sequence[Run], placements: Sequence[RankPlacement], *, run_id: str
) -> Run:
    """One run from every rank's run: renamed domains, aligned samples, merged windows.

    Times are aligned on the wall clock at which each rank started (the earliest is 0).
    Windows are matched by path and occurrence; their units are added up across ranks.
    """
    if len(runs) != len(placements) or not runs:
        raise ValueError("merge_runs needs one run per placement")
    starts = [datetime.fromisoformat(r.started_at) for r in runs]
    origin = min(starts)
    first = runs[0]
    merged = Run(
        id=run_id,
        name=first.name,
        project=first.project,
        tags=list(first.tags),
        status=min((r.status for r in runs), key=_STATUS_SEVERITY.index),
        started_at=runs[starts.index(origin)].started_at,
        interval_s=first.interval_s,
        host=dict(first.host),
        metadata=dict(first.metadata),
    )
    windows: dict[tuple[str, int], Window] = {}
    units: dict[str, float] = {}
    ranks_detail: dict[str, Any] = {}
    node_hosts: dict[str, Any] = {}
    errors = []
    end_s = 0.0
    ended_at = None
    for run, place, start in zip(runs, placements, starts):
        offset = (start - origin).total_seconds()
        _warn_if_host_domains_off_host(run, place)
        part = run.relabelled({d.name: place.domain_name(d) for d in run.domains}).shifted(offset)
        merged.domains += part.domains
        merged.energy.update(part.energy)
        merged.samples += part.samples
        merged.gaps += part.gaps
        _merge_windows(windows, part.windows)
        for unit, n in run.units.items():
            units[unit] = units.get(unit, 0.0) + n
        end_s = max(end_s, offset + (run.duration_s or 0.0))
        if run.ended_at and (ended_at is None or run.ended_at > ended_at):
            ended_at = run.ended_at
        if run.error:
            errors.append(f"rank {place.rank}: {run.error}")
        if place.meters_host:
            node_hosts[place.node] = run.host
        ranks_detail[str(place.rank)] = {
            "node": place.node,
            "local_rank": place.local_rank,
            "gpus": list(place.gpus),
            "meters_host": place.meters_host,
            "run_id": run.id,
            "status": run.status.value,
            "units": dict(run.units),
            "domains": [d.name for d in part.domains],
            "fallbacks": run.metadata.get("fallbacks", []),
        }
    merged.samples.sort(key=lambda s: s.t_s)
    merged.windows = list(windows.values())
    merged.units = units
    merged.duration_s = end_s
    merged.ended_at = ended_at
    merged.error = "; ".join(errors) or None
    merged.host["nodes"] = node_hosts
    merged.metadata.pop("fallbacks", None)
    merged.metadata.update(_energy_detail(merged, placements, ranks_detail))
    return merged


def _merge_windows(windows: dict[tuple[str, int], Window], rank_windows: Sequence[Window]) -> None:
    """Fold one rank's relabelled, shifted windows into the merged ones, by (path, occurrence)."""
    seen: dict[str, int] = {}
    for w in rank_windows:
        occurrence = seen.get(w.path, 0)
        seen[w.path] = occurrence + 1
        target = windows.get((w.path, occurrence))
        if target is None:
            windows[(w.path, occurrence)] = dataclasses.replace(
                w, energy_j=dict(w.energy_j), units=dict(w.units)
            )
            continue
        target.start_s = min(target.start_s, w.start_s)
        if w.end_s is not None:
            target.end_s = w.end_s if target.end_s is None else max(target.end_s, w.end_s)
        for domain, energy in w.energy_j.items():
            target.energy_j[domain] = target.energy_j.get(domain, 0.0) + energy
        for unit, n in w.units.items():
            target.units[unit] = target.units.get(unit, 0.0) + n


def _energy_detail(
    merged: Run, placements: Sequence[RankPlacement], ranks_detail: dict[str, Any]
) -> dict[str, Any]:
    """Energy by rank (its own devices), by node (everything on it) and the node's host part."""
    by_rank: dict[str, float] = {}
    host_by_node: dict[str, float] = {}
    nodes: dict[str, Any] = {}
    for place in placements:
        detail = ranks_detail[str(place.rank)]
        node = nodes.setdefault(
            place.node,
            {"key": place.node_key, "hostname": place.hostname, "ranks": [], "host_rank": None},
        )
        node["ranks"].append(place.rank)
        if place.meters_host:
            node["host_rank"] = place.rank
        own = host = 0.0
        for name in detail["domains"]:
            energy = merged.energy[name].energy_j if name in merged.energy else 0.0
            if name.startswith(f"{place.node}/rank{place.rank}/"):
                own += energy
            else:
                host += energy
        by_rank[str(place.rank)] = own
        host_by_node[place.node] = host_by_node.get(place.node, 0.0) + host
    by_node = {
        node: host_by_node.get(node, 0.0)
        + sum(by_rank[str(r)] for r in info["ranks"])
        for node, info in nodes.items()
    }
    return {
        "distributed": {
            "world_size": len(placements),
            "nodes": nodes,
            "ranks": ranks_detail,
        },
        "energy_by_rank_j": by_rank,
        "host_energy_by_node_j": host_by_node,
        "energy_by_node_j": by_node,
    }


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


def _warn_if_host_domains_off_host(run: Run, place: RankPlacement) -> None:
    if place.meters_host:
        return
    host_domains = [d.name for d in run.domains if d.kind in HOST_KINDS]
    if host_domains:
        log.warning(
            "rank %d metered %s although rank-level metering should cover GPUs only; they are "
            "kept per rank, but the node's CPU/memory may be counted more than once",
            place.rank,
            host_domains,
        )


class DistributedMeter:
    """An energy meter for a torch.distributed job that leaves one merged run on rank 0.

    Args:
        name: run name.
        gpus: under torch.distributed, the CUDA indices this rank meters, overriding the
            LOCAL_RANK / CUDA_VISIBLE_DEVICES rule of `place_ranks`.
        devices: restrict metering to these kinds or domains (as EnergyMeter's devices).
        ledger, store: where rank 0 saves the merged run (store=False: keep it in memory).
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

        Any other status saves this rank's part alone, with no collective call.
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
        self._meter = self._rank_meter()
        try:
            begin(self._meter)
        except MeterStateError as exc:  # nothing readable for this rank: keep windows and units
            log.warning("rank %d meters no device (%s)", self.placement.rank, exc)
            self._meter = self._rank_meter(nothing=True)
            begin(self._meter)
        _warn_if_gpus_missing(self._meter, self.placement)
        self._started = True
        return self._meter.run

    def _rank_meter(self, nothing: bool = False) -> EnergyMeter:
        assert self.placement is not None
        options = dict(self.meter_options)
        metadata = dict(options.pop("metadata", None) or {})
        if nothing:
            options["sources"] = []
        return EnergyMeter(
            self.name,
            devices=None if nothing else rank_devices(self.devices, self.placement),
            metadata=metadata,
            store=False,
            **options,
        )

    def _share(self) -> None:
        """Merge this rank's finished run with the others', or save it alone if it did not complete."""
        if self.placement is None or self._shared:
            return
        self._shared = True
        run = self.rank_run
        if run.status is Status.COMPLETED:
            self._merge_and_save(run)
            return
        log.warning(
            "rank %d ended %s: saving its part alone, without merging with the other ranks",
            self.placement.rank,
            run.status.value,
        )
        self._save_alone(run)

    def _merge_and_save(self, run: Run) -> None:
        """Gather every rank's run on rank 0, merge and save it: through torchrun's store where
        the ranks were placed through it, else through the process group (one may have been
        created after the meter started); with neither, each rank's part is saved alone."""
        assert self.placement is not None
        part = {"identity": self._identity, "run": run.to_dict()}
        if self._store is not None:
            self._merge_through_store(part)
        elif _distributed_ready():
            self._merge_through_group(part)
        else:
            log.warning("rank %d: no process group and no launcher store to merge through: "
                        "saving its part alone", self.placement.rank)
            self._save_alone(run)

    def _merge_through_store(self, part: dict[str, Any]) -> None:
        assert self._store is not None and self.placement is not None
        try:
            self._store.put("part", part)
            if self.placement.rank == 0:
                parts = [self._store.get(f"part/{r}") for r in range(len(self.placements))]
                self._merge(parts)
        except Exception:  # noqa: BLE001 - a missing rank times out as a RuntimeError
            log.exception("gathering the ranks' runs through the store failed: rank %d saves its part alone",
                          self.placement.rank)
            self._save_alone(self.rank_run)

    def _merge_through_group(self, part: dict[str, Any]) -> None:
        import torch.distributed as dist

        assert self.placement is not None
        rank = self.placement.rank
        gathered: list[Any] | None = [None] * dist.get_world_size() if rank == 0 else None
        try:
            dist.gather_object(part, gathered, dst=0)
        except Exception:
            log.exception("gathering the ranks' runs failed: rank %d saves its part alone", rank)
            self._save_alone(self.rank_run)
            return
        try:
            if gathered is not None:
                self._merge(gathered)
        finally:
            dist.barrier()  # no rank runs ahead (and exits) while rank 0 still merges

    def _merge(self, parts: Sequence[dict[str, Any]]) -> None:
        """On rank 0: merge every rank's part into one run and save it."""
        if not self.placements:  # placed from the environment: decide together now
            self._placed([p["identity"] for p in parts])
        runs = [Run.from_dict(p["run"]) for p in parts]
        self._merged = merge_runs(runs, self.placements, run_id=self._run_id or uuid.uuid4().hex)
        if self.store:
            self._save(self._merged)
        log.info("merged %d ranks into run %s: %.3f J", len(runs), self._merged.id[:8], self._merged.total_energy_j)

    def _save_alone(self, run: Run) -> None:
        """Keep one rank's part when it cannot be merged, marked as such in its metadata."""
        assert self.placement is not None
        run.metadata["distributed"] = {
            "merged": False,
            "rank": self.placement.rank,
            "node": self.placement.node,
            "merged_run_id": self._run_id,
        }
        if self.store:
            self._save(run)

    def _save(self, run: Run) -> None:
        from joulemeter.meter.store import open_ledger

        if self.ledger is not None and not isinstance(self.ledger, (str, os.PathLike)):
            self.ledger.save_run(run)
            return
        ledger = open_ledger(self.ledger)
        try:
            ledger.save_run(run)
        finally:
            ledger.close()


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
