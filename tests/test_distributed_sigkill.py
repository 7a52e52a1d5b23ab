"""A distributed job's ranks write their parts as they go: a SIGKILLed job keeps what it measured.

Real torchrun jobs (gloo, a replayed power trace per rank, as in test_distributed.py) are
killed whole with SIGKILL once every rank has flushed samples; their parts become one
interrupted run, CPU and memory once per node. A completed job leaves one run and no part.
The ledger-level tests pin the order of replacing parts (merged run first) and what a
reader or a settling process does with whatever a crash left.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import psutil
import pytest

from joulemeter.meter.merge import (
    RankPlacement,
    counted_runs,
    merge_parts,
    part_marker,
    part_metadata,
    replace_parts,
    settle_parts,
)
from joulemeter.meter.run import Domain, DomainEnergy, Provenance, Run, Sample, Status, Window
from joulemeter.meter.store import Ledger, open_ledger
from tests.flushed import journal_samples
from tests.polling import wait_until
from tests.test_distributed import (
    CPU_W,
    GPU0_W,
    GPU1_W,
    RAM_W,
    SCRIPT,
    check_nothing_counted_twice,
    finish,
    free_port,
    job_env,
    torchrun,
    write_trace,
)

TWO_RANKS = {"node0/cpu", "node0/ram", "node0/rank0/gpu:0", "node0/rank1/gpu:1"}


# -- real torchrun jobs ------------------------------------------------------------------
def parts_flushed(path: Path, ranks: int) -> list[Run]:
    """The job's parts once each of its `ranks` has flushed samples, else []: to the ledger,
    or to the run's journal in the spool, which the next open of the ledger delivers once
    its writer is gone (meter/store/writer.py, spool.py)."""
    if not path.exists():
        return []
    with open_ledger(path, recover=False) as ledger:
        parts = [r for r in ledger.list_runs() if part_marker(r.metadata)]
        flushed = [ledger.last_sample_t(r.id) is not None or journal_samples(r.id) for r in parts]
    return parts if len(parts) == ranks and all(flushed) else []


def parts_recovered(path: Path) -> list[Run]:
    """The parts, once opening the ledger (recovery) has marked every one interrupted."""
    with open_ledger(path) as ledger:
        parts = [r for r in ledger.list_runs() if part_marker(r.metadata)]
    return parts if parts and all(r.status is Status.INTERRUPTED for r in parts) else []


def kill_job(launcher: subprocess.Popen) -> None:
    """SIGKILL the launcher and every process under it, as a scheduler ending the job's cgroup
    does (torchrun starts each worker in a session of its own: killing its group is not enough)."""
    job = psutil.Process(launcher.pid)
    processes = [job, *job.children(recursive=True)]
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.send_signal(signal.SIGKILL)
    launcher.wait()
    psutil.wait_procs(processes, timeout=10)


def killed_job(tmp_path: Path) -> list[Run]:
    """Run a two-rank torchrun job until both ranks flushed samples, SIGKILL the whole job
    (launcher and workers), and return its parts as the next open of the ledger sees them."""
    trace = write_trace(tmp_path / "trace.csv", {"gpu:0": GPU0_W, "gpu:1": GPU1_W, "cpu": CPU_W, "ram": RAM_W})
    ledger, log = tmp_path / "ledger.sqlite", tmp_path / "killed.log"
    args = ["--nproc-per-node", "2", "--standalone", str(SCRIPT), str(trace), "--until-killed"]
    launcher = torchrun(*args, env=job_env(tmp_path), log=log)
    try:
        wait_until(lambda: parts_flushed(ledger, 2) or launcher.poll() is not None,
                   "both ranks to flush samples", timeout_s=60, poll_s=0.2)
        assert launcher.poll() is None, log.read_text()
    finally:
        kill_job(launcher)
    return wait_until(lambda: parts_recovered(ledger), "the killed parts to be marked interrupted", poll_s=0.2)


@pytest.mark.slow
def test_a_sigkilled_torchrun_job_keeps_each_ranks_part_and_they_merge_into_one_interrupted_run(tmp_path):
    parts = sorted(killed_job(tmp_path), key=lambda r: part_marker(r.metadata)["rank"])
    assert [sorted(r.energy) for r in parts] == [["cpu", "gpu:0", "ram"], ["gpu:1"]]  # CPU/RAM on rank 0 only
    assert all(e.energy_j > 0 for r in parts for e in r.energy.values())
    merged_ids = {part_marker(r.metadata)["merged_run_id"] for r in parts}
    assert len(merged_ids) == 1 and None not in merged_ids

    with open_ledger(tmp_path / "ledger.sqlite") as ledger:
        settled = settle_parts(ledger)
        runs = ledger.list_runs()
        run = ledger.get_run(runs[0].id)
    assert [(s.run_id, s.merged_now) for s in settled] == [(merged_ids.pop(), True)]
    assert [r.id for r in runs] == [run.id]  # the parts are gone
    assert run.status is Status.INTERRUPTED
    assert set(run.energy) == TWO_RANKS
    check_nothing_counted_twice(run, ["node0"])
    assert run.total_energy_j == pytest.approx(sum(r.total_energy_j for r in parts))
    assert all(run.metadata["energy_by_rank_j"][rank] > 0 for rank in ("0", "1"))
    assert run.metadata["host_energy_by_node_j"]["node0"] > 0


@pytest.mark.slow
def test_the_next_torchrun_job_on_the_ledger_merges_a_killed_jobs_parts(tmp_path):
    killed = killed_job(tmp_path)
    log = tmp_path / "next.log"
    trace = tmp_path / "trace.csv"
    finish((torchrun("--nproc-per-node", "2", "--standalone", str(SCRIPT), str(trace), env=job_env(tmp_path), log=log), log))
    with open_ledger(tmp_path / "ledger.sqlite") as ledger:
        runs = ledger.list_runs()
    assert sorted(r.status.value for r in runs) == ["completed", "interrupted"]
    assert not [r for r in runs if part_marker(r.metadata)]
    interrupted = next(r for r in runs if r.status is Status.INTERRUPTED)
    assert interrupted.id == part_marker(killed[0].metadata)["merged_run_id"]
    assert set(interrupted.energy) == TWO_RANKS
    assert interrupted.total_energy_j == pytest.approx(sum(r.total_energy_j for r in killed))


@pytest.mark.slow
def test_two_nodes_with_a_ledger_each_leave_the_merged_run_on_rank_0s_and_no_part_on_the_other(tmp_path):
    """Node-local SQLite ledgers: rank 0 deletes the parts in its own; the other node's ranks
    delete theirs once rank 0 has saved the merged run."""
    trace = write_trace(tmp_path / "trace.csv", {"gpu:0": GPU0_W, "cpu": CPU_W, "ram": RAM_W})
    port = str(free_port())
    common = ["--nnodes", "2", "--nproc-per-node", "2", "--master-addr", "127.0.0.1", "--master-port", port]
    launchers = []
    for node in (0, 1):
        env = {**job_env(tmp_path), "JOULEMETER_LEDGER": str(tmp_path / f"node{node}.sqlite")}
        log = tmp_path / f"node{node}.log"
        args = [*common, "--node-rank", str(node), str(SCRIPT), str(trace), "--gpu-per-rank"]
        launchers.append((torchrun(*args, env=env, log=log), log))
    finish(*launchers)
    with open_ledger(tmp_path / "node0.sqlite") as ledger:
        [run] = ledger.list_runs()
    assert part_marker(run.metadata) is None
    assert sorted(run.metadata["energy_by_node_j"]) == ["node0", "node1"]
    with open_ledger(tmp_path / "node1.sqlite") as ledger:
        assert ledger.list_runs() == []


# -- parts in the ledger, without torchrun ---------------------------------------------
def part(rank: int, job: str, status: Status = Status.INTERRUPTED, world_size: int = 2,
         started_at: str = "2026-01-01T00:00:00.000+00:00") -> Run:
    """A part of `job` as a rank of node0 leaves it: GPU on each rank, CPU and RAM on rank 0."""
    place = RankPlacement(rank, rank, "node0", "0", "host", (rank,), meters_host=rank == 0)
    powers = {f"gpu:{rank}": 100.0 + rank} | ({"cpu": 30.0, "ram": 5.0} if rank == 0 else {})
    kinds = {"cpu": "cpu", "ram": "ram"}
    return Run(
        id=f"{job}-part{rank}-{started_at[:10]}", name="job", status=status, started_at=started_at,
        ended_at=started_at.replace("T00:00:00", "T00:00:10"), duration_s=10.0,
        domains=[Domain(n, kinds.get(n, "gpu"), "test", Provenance.REPLAYED, "test") for n in powers],
        energy={n: DomainEnergy(n, 10.0 * w, Provenance.REPLAYED, w, w) for n, w in powers.items()},
        samples=[Sample(t, n, w, t * w) for n, w in powers.items() for t in (0.0, 10.0)],
        windows=[Window("train", "train", 0.0, 10.0, {n: 10.0 * w for n, w in powers.items()}, {"samples": 8.0})]
        if status is Status.COMPLETED else [],
        units={"samples": 8.0} if status is Status.COMPLETED else {},
        metadata={"distributed": part_metadata(place, job=job, merged_run_id=f"{job}-merged", world_size=world_size)},
    )


@pytest.fixture
def ledger(tmp_path):
    with open_ledger(tmp_path / "ledger.sqlite") as book:
        yield book


def test_merging_killed_parts_counts_cpu_and_ram_once_and_names_a_rank_that_left_no_part():
    merged = merge_parts([part(2, "j", world_size=3), part(0, "j", world_size=3)], "m")
    assert set(merged.energy) == {"node0/cpu", "node0/ram", "node0/rank0/gpu:0", "node0/rank2/gpu:2"}
    assert merged.total_energy_j == pytest.approx(10 * (100 + 30 + 5 + 102))
    assert merged.status is Status.INTERRUPTED
    assert merged.metadata["distributed"]["world_size"] == 3
    assert merged.metadata["distributed"]["missing_ranks"] == [1]
    assert part_marker(merged.metadata) is None  # the merged run is not a part


def test_a_crash_between_saving_the_merged_run_and_deleting_the_parts_counts_the_energy_once(ledger):
    parts = [part(r, "j", Status.COMPLETED) for r in range(2)]
    merged = merge_parts(parts, "j-merged")
    ledger.save_runs([*parts, merged])  # rank 0 died right after saving the merged run
    assert [r.id for r in ledger.list_runs()] == ["j-merged"]  # the ledger's listing counts it once
    listed = ledger.list_runs(superseded=True)
    assert len(listed) == 3
    assert [r.id for r in counted_runs(listed)] == ["j-merged"]  # a reader counts the merged run only
    assert sum(r.total_energy_j for r in counted_runs(listed)) == pytest.approx(merged.total_energy_j)

    [settled] = settle_parts(ledger)
    assert (settled.run_id, settled.merged_now) == ("j-merged", False)
    [left] = ledger.list_runs()
    assert left.id == "j-merged" and left.total_energy_j == pytest.approx(merged.total_energy_j)


def test_rank_0_and_a_settling_process_that_race_save_the_merged_run_once(ledger):
    parts = [part(r, "j", Status.COMPLETED) for r in range(2)]
    ledger.save_runs(parts)
    merged = merge_parts(parts, "j-merged")
    assert replace_parts(ledger, merged, [p.id for p in parts]) is True
    assert replace_parts(ledger, merge_parts(parts, "j-merged"), [p.id for p in parts]) is False
    assert [r.id for r in ledger.list_runs()] == ["j-merged"]


def test_a_job_that_just_completed_is_left_to_its_rank_0_and_merged_completed_after_the_grace(ledger, monkeypatch):
    from joulemeter.meter import merge

    parts = [part(r, "j", Status.COMPLETED) for r in range(2)]
    for p in parts:  # its ranks just finished: rank 0 may be merging it now
        p.ended_at = datetime.now(timezone.utc).isoformat()
    ledger.save_runs(parts)
    assert settle_parts(ledger) == []
    monkeypatch.setattr(merge, "MERGE_GRACE_S", 0.0)  # rank 0 never merged it (its gathering failed)
    [settled] = settle_parts(ledger)
    [run] = ledger.list_runs()
    assert (run.id, run.status, settled.merged_now) == ("j-merged", Status.COMPLETED, True)
    assert run.units == {"samples": 16.0} and [w.units for w in run.windows] == [{"samples": 16.0}]


def test_a_job_with_a_part_still_running_is_left_alone(ledger):
    ledger.save_run(part(0, "j"))
    ledger.begin_run(part(1, "j", Status.RUNNING))  # written by this process, alive
    assert settle_parts(ledger) == []
    assert len(ledger.list_runs()) == 2


def test_a_launcher_key_reused_by_a_later_job_settles_as_two_jobs(ledger):
    early, late = "2026-01-01T00:00:00.000+00:00", "2026-01-02T00:00:00.000+00:00"
    first = [part(r, "key", started_at=early) for r in range(2)]
    second = [part(r, "key", started_at=late) for r in range(2)]
    for p in second:  # placed from the environment: no merged id that tells the jobs apart
        p.metadata["distributed"]["merged_run_id"] = None
    ledger.save_runs([*first, *second])
    settled = settle_parts(ledger)
    assert sorted(len(s.part_ids) for s in settled) == [2, 2]
    assert len(ledger.list_runs()) == 2


def test_a_settle_does_not_touch_runs_that_are_not_parts(ledger):
    plain = part(0, "j")
    plain.id, plain.metadata = "plain", {"distributed": {"world_size": 2}}  # a merged run's detail
    ledger.save_run(plain)
    assert settle_parts(ledger) == []
    assert [r.id for r in ledger.list_runs()] == ["plain"]


def test_merge_parts_command_merges_a_killed_jobs_parts(tmp_path, ledger: Ledger):
    import typer
    from typer.testing import CliRunner

    from joulemeter.integrations.cli import distributed_cmd

    app = typer.Typer()
    distributed_cmd.register(app)
    app.command("unused")(lambda: None)  # two commands: typer keeps `merge-parts` a subcommand
    ledger.save_runs([part(r, "j") for r in range(2)])
    result = CliRunner().invoke(app, ["merge-parts", "--ledger", ledger.location, "--json"])
    assert result.exit_code == 0, result.output
    [job] = json.loads(result.stdout)
    assert (job["run_id"], job["merged_now"], job["status"]) == ("j-merged", True, "interrupted")
    assert job["total_energy_j"] == pytest.approx(10 * (100 + 30 + 5 + 101))
    again = CliRunner().invoke(app, ["merge-parts", "--ledger", ledger.location])
    assert "no finished parts to merge" in again.output


def test_launched_ranks_that_share_no_run_id_agree_on_their_job_key(monkeypatch):
    from joulemeter.integrations.launcher import launched

    keys = set()
    for rank in ("0", "1"):
        monkeypatch.setenv("RANK", rank)
        monkeypatch.setenv("WORLD_SIZE", "2")
        monkeypatch.setenv("MASTER_ADDR", "10.0.0.1")
        monkeypatch.setenv("MASTER_PORT", "29500")
        monkeypatch.setenv("TORCHELASTIC_RUN_ID", "abc")
        launch = launched()
        assert launch is not None
        keys.add(launch.job_key)
    assert keys == {"abc/0@10.0.0.1:29500/2"}
    monkeypatch.setenv("MASTER_PORT", "29501")
    assert launched().job_key not in keys


def test_a_launched_rank_opens_its_ledger_once_and_leaves_its_part_there_when_it_cannot_merge(monkeypatch, tmp_path):
    """Its meter, tidying and deletions share one Ledger: opening the SQLite file again in the
    process reads it outside SQLite, which drops the process's locks and can lose its writes."""
    from joulemeter.integrations.distributed import DistributedMeter
    from joulemeter.meter import store
    from tests.doubles import LinearCounterSource

    for name, value in {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "h", "MASTER_PORT": "1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("TORCHELASTIC_USE_AGENT_STORE", raising=False)
    opened = []
    monkeypatch.setattr(store, "open_ledger", lambda *a, **k: opened.append(a) or open_ledger(*a, **k))
    with DistributedMeter("alone", ledger=tmp_path / "ledger.sqlite", sources=[LinearCounterSource(30.0)],
                          interval_s=0.01) as m:
        m.count(4)
    assert len(opened) == 1
    with open_ledger(tmp_path / "ledger.sqlite") as ledger:
        [stored] = ledger.list_runs()
    marker = part_marker(stored.metadata)
    assert (stored.id, stored.status, marker["rank"], marker["world_size"]) == (m.rank_run.id, Status.COMPLETED, 0, 2)
    assert marker["job"] == "job/0@h:1/2" and marker["merged_run_id"]  # rank 0 knows the merged id
