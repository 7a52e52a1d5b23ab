"""One run for a distributed job: merging its ranks' runs, and settling the parts it left.

Each rank of a job metered by integrations/distributed.py writes its own run to the ledger
as it goes, a *part* marked in metadata["distributed"] (PART_KEY) with the job it belongs
to and where it ran. A completed job's rank 0 merges the parts (`merge_runs`) and replaces
them by the merged run (`replace_parts`). A job killed before that leaves its parts
(interrupted, with the energy of their flushed samples); `settle_parts` turns each such
job into one merged run the same way, CPU and memory once per node.

Replacing takes two ledger transactions: the merged run is saved first, the parts deleted
next. A crash between them leaves both, never neither: a part whose merged run is in the
ledger is superseded: `counted_runs` (in SQL `superseded_part`, which the ledger's listings,
counts and inventories apply) leaves it out of totals, and `settle_parts` deletes it.
The merged run's id is fixed when the job starts and written in every part, so rank 0 and
a settling process that race save it once: the ledger refuses an id it already holds.

Pure data and Ledger calls: no torch, nothing from integrations/.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from joulemeter.meter.errors import LedgerError, RunNotFoundError
from joulemeter.meter.run import Domain, Run, Status, Window

if TYPE_CHECKING:
    import sqlalchemy as sa

    from joulemeter.meter.store import Ledger

log = logging.getLogger("joulemeter.merge")

#: Domain kinds that belong to a whole node rather than to one rank's GPU.
HOST_KINDS = ("cpu", "dram", "ram", "psys")

#: The metadata key of a part's marker (and of a merged run's detail per rank and node).
PART_KEY = "distributed"

#: Worst status first: the merged run takes the worst of its ranks.
_STATUS_SEVERITY = (Status.FAILED, Status.INTERRUPTED, Status.RUNNING, Status.COMPLETED)

#: Tries of a deletion that another process may be doing at the same time.
_DELETE_TRIES = 3

#: How long after its last rank finished a completed job's rank 0 may still be merging it
#: (gathering waits for the slowest rank up to launcher.STORE_TIMEOUT_S, 300 s): no one
#: else settles such a job before.
MERGE_GRACE_S = 600.0


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

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "gpus": list(self.gpus)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RankPlacement:
        """The placement a part recorded (its other keys are ignored)."""
        names = [f.name for f in dataclasses.fields(cls)]
        return cls(**{**{n: d[n] for n in names}, "gpus": tuple(d["gpus"])})


# -- merging rank runs ---------------------------------------------------------------------
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
        location=first.location,
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
        PART_KEY: {
            "world_size": len(placements),
            "nodes": nodes,
            "ranks": ranks_detail,
        },
        "energy_by_rank_j": by_rank,
        "host_energy_by_node_j": host_by_node,
        "energy_by_node_j": by_node,
    }


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


# -- parts ---------------------------------------------------------------------------------
def part_metadata(
    placement: RankPlacement, *, job: str, merged_run_id: str | None, world_size: int
) -> dict[str, Any]:
    """The marker a rank's run carries as metadata[PART_KEY]: the job it is part of, the id
    its merged run will have (None where this rank cannot know it), and where it ran."""
    return {
        "part": True,
        "job": job,
        "merged_run_id": merged_run_id,
        "world_size": world_size,
        **placement.to_dict(),
    }


def part_marker(metadata: dict[str, Any]) -> dict[str, Any] | None:
    """A part's marker from its run's metadata; None for a run that is not a part."""
    marker = metadata.get(PART_KEY)
    return marker if isinstance(marker, dict) and marker.get("part") is True else None


def counted_runs(runs: Sequence[Run]) -> list[Run]:
    """The runs a total adds up: a part whose merged run is among `runs` is left out
    (both are in the ledger only after a crash between saving the merged run and
    deleting its parts)."""
    ids = {r.id for r in runs}
    return [r for r in runs if not _superseded(r.metadata, ids)]


def _superseded(metadata: dict[str, Any], merged_ids: set[str]) -> bool:
    marker = part_marker(metadata)
    return marker is not None and marker.get("merged_run_id") in merged_ids


def superseded_part(runs: sa.Table) -> sa.ColumnElement[bool]:
    """`counted_runs` in SQL, over the ledger's runs table: true for a part whose merged run
    the ledger holds (never NULL, so its negation keeps every other run)."""
    import sqlalchemy as sa

    merged = runs.alias("merged_run")
    return sa.exists().where(
        merged.c.id == runs.c.metadata[(PART_KEY, "merged_run_id")].as_string(),
        runs.c.metadata[(PART_KEY, "part")].as_boolean(),
    )


def merge_parts(parts: Sequence[Run], run_id: str) -> Run:
    """One run from the parts of one job as the ledger holds them, placed as each recorded;
    ranks without a part are named in metadata[PART_KEY]["missing_ranks"]."""
    ordered = sorted(parts, key=lambda r: _marker(r)["rank"])
    merged = merge_runs(ordered, [RankPlacement.from_dict(_marker(r)) for r in ordered], run_id=run_id)
    world_size = max(_marker(r)["world_size"] for r in ordered)
    detail = merged.metadata[PART_KEY]
    detail["world_size"] = world_size
    missing = sorted(set(range(world_size)) - {_marker(r)["rank"] for r in ordered})
    if missing:
        detail["missing_ranks"] = missing
    return merged


def _marker(run: Run) -> dict[str, Any]:
    marker = part_marker(run.metadata)
    if marker is None:
        raise ValueError(f"run {run.id} is not a part of a distributed job")
    return marker


def replace_parts(ledger: Ledger, merged: Run, part_ids: Sequence[str]) -> bool:
    """Put a job's merged run in place of its parts: save it first, then delete the parts
    that are finished. False if the merged run was already there (another process settled
    the job): it is not saved twice."""
    saved = _save_once(ledger, merged)
    deleted = delete_parts(ledger, part_ids)
    log.info("run %s replaces %d parts in %s", merged.id[:8], len(deleted), ledger.location)
    return saved


def _save_once(ledger: Ledger, run: Run) -> bool:
    """Save `run` unless the ledger already holds its id; True if saved now."""
    try:
        ledger.save_run(run)
    except LedgerError:
        if run.id not in ledger.existing_ids([run.id]):
            raise
        log.info("merged run %s was already in %s", run.id[:8], ledger.location)
        return False
    return True


def delete_parts(ledger: Ledger, part_ids: Sequence[str]) -> list[str]:
    """Delete those of these parts that the ledger holds as finished, in one transaction; a
    part still running (its writer failed and spools it) is left for `settle_parts`.
    Returns the ids deleted."""
    for _ in range(_DELETE_TRIES):
        finished = _finished_ids(ledger, part_ids)
        if not finished:
            return []
        try:
            ledger.delete_runs(finished)
            return finished
        except RunNotFoundError:  # another process deleted some of them meanwhile
            continue
    return []


def _finished_ids(ledger: Ledger, run_ids: Sequence[str]) -> list[str]:
    import sqlalchemy as sa

    from joulemeter.meter.store import schema

    runs = schema.runs
    query = sa.select(runs.c.id).where(runs.c.id.in_(list(run_ids)), runs.c.status != Status.RUNNING.value)
    return ledger.read(lambda conn: list(conn.execute(query).scalars()))


# -- settling the parts jobs left ------------------------------------------------------------
@dataclass(frozen=True)
class SettledJob:
    """What `settle_parts` did with one job's parts."""

    run_id: str  # the job's merged run
    part_ids: tuple[str, ...]  # its parts that were deleted
    merged_now: bool  # False: the merged run was already there, the parts were superseded


@dataclass(frozen=True)
class _StoredPart:
    id: str
    status: Status
    ended_at: str | None
    marker: dict[str, Any]


def settle_parts(ledger: Ledger) -> list[SettledJob]:
    """Replace the parts of every job that no longer runs by its one merged run (interrupted
    when a rank was killed), and delete parts whose merged run is already there.

    A job with a part still running is left alone: it may be alive, or its writer's death
    not yet seen (opening the ledger with recovery marks such parts interrupted first); so
    is a job whose every part completed less than MERGE_GRACE_S ago: its rank 0 may be
    merging it now, and a merge from the parts of one node's ledger would miss the others.
    """
    settled = []
    for job in _jobs(_stored_parts(ledger)):
        run_id = next((p.marker["merged_run_id"] for p in job if p.marker.get("merged_run_id")), None)
        try:
            if run_id is not None and run_id in ledger.existing_ids([run_id]):
                if deleted := delete_parts(ledger, [p.id for p in job]):
                    settled.append(SettledJob(run_id, tuple(deleted), merged_now=False))
            elif _over(job):
                settled.append(_merge_job(ledger, job, run_id or uuid.uuid4().hex))
        except LedgerError as exc:  # another job's parts may still settle
            log.warning("could not merge the parts of job %s in %s: %s", job[0].marker.get("job"),
                        ledger.location, exc)
    return settled


def _over(job: Sequence[_StoredPart]) -> bool:
    """Whether no rank of the job runs or may still merge it."""
    if any(p.status is Status.RUNNING for p in job):
        return False
    if any(p.status is not Status.COMPLETED for p in job):
        return True  # a rank was killed or failed: the job never merges itself
    ends = [datetime.fromisoformat(p.ended_at) for p in job if p.ended_at]
    return not ends or datetime.now(timezone.utc) - max(ends) > timedelta(seconds=MERGE_GRACE_S)


def _stored_parts(ledger: Ledger) -> list[_StoredPart]:
    """Every part in the ledger, oldest first (a query on the runs table, no samples)."""
    import sqlalchemy as sa

    from joulemeter.meter.store import schema

    runs = schema.runs
    query = (
        sa.select(runs.c.id, runs.c.status, runs.c.ended_at, runs.c.metadata)
        .where(runs.c.metadata[(PART_KEY, "part")].as_boolean())
        .order_by(runs.c.started_at, runs.c.id)
    )
    rows = ledger.read(lambda conn: conn.execute(query).all())
    parts = [(r, part_marker(r.metadata)) for r in rows]
    return [_StoredPart(r.id, Status(r.status), r.ended_at, m) for r, m in parts if m is not None]


def _jobs(parts: Sequence[_StoredPart]) -> list[list[_StoredPart]]:
    """Parts grouped by job, oldest first; a rank seen again in a job's key starts another
    job (a launcher's key reused by a later job, where no merged id told them apart)."""
    jobs: list[list[_StoredPart]] = []
    latest: dict[str, list[_StoredPart]] = {}
    for part in parts:
        key = str(part.marker.get("job"))
        job = latest.get(key)
        if job is None or any(p.marker.get("rank") == part.marker.get("rank") for p in job):
            job = latest[key] = []
            jobs.append(job)
        job.append(part)
    return jobs


def _merge_job(ledger: Ledger, job: Sequence[_StoredPart], run_id: str) -> SettledJob:
    """Merge one finished job's parts, as the ledger holds them, into its run `run_id`."""
    merged = merge_parts([ledger.get_run(p.id) for p in job], run_id)
    merged_now = replace_parts(ledger, merged, [p.id for p in job])
    log.warning("merged %d parts of a distributed job into run %s (%s, %.3f J)",
                len(job), run_id[:8], merged.status.value, merged.total_energy_j)
    return SettledJob(run_id, tuple(p.id for p in job), merged_now)
