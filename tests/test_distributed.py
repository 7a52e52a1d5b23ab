"""torch.distributed: rank placement, merging rank runs, and real torchrun jobs on gloo.

The torchrun tests replay a power trace on every rank in place of GPUs (there is none
here): each domain draws the trace's constant power, so every figure is checkable by hand.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from joulemeter.integrations.distributed import (
    DistributedMeter,
    RankPlacement,
    merge_runs,
    place_ranks,
    rank_devices,
)
from joulemeter.meter.merge import part_marker
from joulemeter.meter.run import Domain, DomainEnergy, Provenance, Run, Sample, Status, Window
from tests.doubles import LinearCounterSource

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "distributed_scripts" / "ddp_train.py"

# Trace powers (W), constant over the trace; the checks below are these × durations.
GPU0_W, GPU1_W, CPU_W, RAM_W = 200.0, 250.0, 60.0, 10.0
DATASET_SIZE, EPOCHS = 64, 2  # as in ddp_train.py


def identity(rank, local_rank, node_key, visible=None, gpus=None):
    return {
        "rank": rank, "local_rank": local_rank, "node_key": node_key, "hostname": f"host-{node_key}",
        "cuda_visible_devices": visible, "gpus": gpus, "run_id": f"id{rank}",
    }


# -- placement -------------------------------------------------------------------------
def test_two_nodes_of_two_ranks_meter_one_gpu_each_and_cpu_once_per_node():
    placements = place_ranks([identity(r, r % 2, str(r // 2)) for r in (3, 1, 0, 2)])
    assert [(p.rank, p.node, p.gpus, p.meters_host) for p in placements] == [
        (0, "node0", (0,), True), (1, "node0", (1,), False),
        (2, "node1", (0,), True), (3, "node1", (1,), False),
    ]


def test_visible_devices_shared_by_ranks_are_split_in_blocks():
    placements = place_ranks([identity(r, r, "0", visible="4,5,6,7") for r in range(2)])
    assert [p.gpus for p in placements] == [(0, 1), (2, 3)]


def test_one_gpu_bound_per_rank_is_each_ranks_gpu_0():
    placements = place_ranks([identity(r, r, "0", visible=str(r)) for r in range(2)])
    assert [p.gpus for p in placements] == [(0,), (0,)]


def test_a_gpu_shared_by_two_ranks_is_metered_by_one_of_them_only():
    placements = place_ranks([identity(r, r, "0", visible="3") for r in range(2)])
    assert [p.gpus for p in placements] == [(0,), ()]


def test_two_mig_devices_in_cuda_visible_devices_are_one_device_so_the_second_rank_gets_none():
    # CUDA enumerates one MIG device per process: handing rank 1 a gpu:1 would meter nothing
    placements = place_ranks([identity(r, r, "0", visible="MIG-aaaa,MIG-bbbb") for r in range(2)])
    assert [p.gpus for p in placements] == [(0,), ()]


def test_each_ranks_own_torch_device_decides_its_gpu_when_they_differ():
    idents = [dict(identity(r, r, "0"), cuda_device=d) for r, d in ((0, 1), (1, 0))]
    assert [p.gpus for p in place_ranks(idents)] == [(1,), (0,)]
    same = [dict(identity(r, r, "0"), cuda_device=0) for r in range(2)]  # nobody set a device
    assert [p.gpus for p in place_ranks(same)] == [(0,), (1,)]


def test_a_rank_placed_on_a_gpu_it_cannot_meter_is_warned_about(caplog):
    import types

    from joulemeter.integrations.distributed import _warn_if_gpus_missing

    place = RankPlacement(1, 1, "node0", "0", "host", gpus=(1,), meters_host=False)
    meter = types.SimpleNamespace(domains=[types.SimpleNamespace(name="gpu:0")])
    with caplog.at_level("WARNING", logger="joulemeter.distributed"):
        _warn_if_gpus_missing(meter, place)
    assert "cannot meter ['gpu:1']" in caplog.text


def test_explicit_gpus_win_and_hostnames_identify_nodes_without_group_rank():
    placements = place_ranks(
        [identity(0, 0, "gpu-a", gpus=[2, 3]), identity(1, 0, "gpu-b"), identity(2, 1, "gpu-a")]
    )
    assert [(p.rank, p.node, p.gpus, p.meters_host) for p in placements] == [
        (0, "node0", (2, 3), True), (1, "node1", (0,), True), (2, "node0", (1,), False),
    ]


def test_rank_devices_add_host_kinds_only_on_the_host_rank():
    host = RankPlacement(0, 0, "node0", "0", "h", (0,), True)
    other = RankPlacement(1, 1, "node0", "0", "h", (1,), False)
    assert rank_devices(None, host) == ["gpu:0", "cpu", "dram", "ram", "psys"]
    assert rank_devices(None, other) == ["gpu:1"]
    assert rank_devices(["gpu"], host) == ["gpu:0"]
    assert rank_devices(["gpu:1", "cpu"], other) == ["gpu:1"]
    assert rank_devices(["gpu:1", "cpu"], host) == ["cpu"]


# -- merging ---------------------------------------------------------------------------
def domain(name: str, kind: str) -> Domain:
    return Domain(name, kind, "test", Provenance.REPLAYED, "test")


def rank_run(rank: int, started_at: str, energies: dict[str, float], kinds: dict[str, str]) -> Run:
    run = Run(
        id=f"r{rank}", name="job", status=Status.COMPLETED, started_at=started_at, duration_s=10.0,
        domains=[domain(n, kinds[n]) for n in energies],
        energy={n: DomainEnergy(n, e, Provenance.REPLAYED, e / 10.0, None) for n, e in energies.items()},
        samples=[Sample(10.0, n, e / 10.0, e) for n, e in energies.items()],
        units={"samples": 32.0},
        windows=[
            Window("epoch-0", "epoch-0", 1.0, 5.0, {n: e / 2 for n, e in energies.items()}, {"samples": 16.0}),
            Window("epoch-1", "epoch-1", 5.0, 9.0, {n: e / 2 for n, e in energies.items()}, {"samples": 16.0}),
        ],
    )
    return run


def test_merge_renames_domains_sums_units_and_keeps_every_joule_once():
    kinds = {"gpu:0": "gpu", "gpu:1": "gpu", "cpu": "cpu", "ram": "ram"}
    runs = [
        rank_run(0, "2026-01-01T00:00:00.000+00:00", {"gpu:0": 100.0, "cpu": 30.0, "ram": 5.0}, kinds),
        rank_run(1, "2026-01-01T00:00:00.500+00:00", {"gpu:1": 120.0}, kinds),
    ]
    placements = place_ranks([identity(r, r, "0") for r in range(2)])
    merged = merge_runs(runs, placements, run_id="merged")
    assert set(merged.energy) == {"node0/cpu", "node0/ram", "node0/rank0/gpu:0", "node0/rank1/gpu:1"}
    assert merged.total_energy_j == pytest.approx(100 + 30 + 5 + 120)
    assert merged.metadata["energy_by_rank_j"] == {"0": 100.0, "1": 120.0}
    assert merged.metadata["host_energy_by_node_j"] == {"node0": 35.0}
    assert merged.metadata["energy_by_node_j"] == {"node0": 255.0}
    assert merged.units == {"samples": 64.0}
    assert [w.path for w in merged.windows] == ["epoch-0", "epoch-1"]
    assert merged.windows[0].units == {"samples": 32.0}
    assert merged.windows[0].total_energy_j == pytest.approx(255.0 / 2)
    assert merged.windows[1].end_s == pytest.approx(9.5)  # rank 1 started 0.5 s later
    assert merged.duration_s == pytest.approx(10.5)
    assert max(s.t_s for s in merged.samples) == pytest.approx(10.5)
    assert merged.energy_by_kind_j() == {"gpu": 220.0, "cpu": 30.0, "ram": 5.0}


def test_merged_status_is_the_worst_of_the_ranks_with_their_errors():
    kinds = {"gpu:0": "gpu", "gpu:1": "gpu"}
    runs = [
        rank_run(0, "2026-01-01T00:00:00+00:00", {"gpu:0": 1.0}, kinds),
        rank_run(1, "2026-01-01T00:00:00+00:00", {"gpu:1": 1.0}, kinds),
    ]
    runs[1].status, runs[1].error = Status.FAILED, "RuntimeError: boom"
    merged = merge_runs(runs, place_ranks([identity(r, r, "0") for r in range(2)]), run_id="m")
    assert merged.status is Status.FAILED
    assert merged.error == "rank 1: RuntimeError: boom"


def test_distributed_meter_without_a_process_group_is_a_plain_meter(monkeypatch, tmp_path):
    monkeypatch.setenv("JOULEMETER_LEDGER", str(tmp_path / "ledger.sqlite"))
    with DistributedMeter("single", sources=[LinearCounterSource(30.0)], interval_s=0.01) as m:
        with m.window("train"):
            m.count(8)
    assert not m.distributed
    assert m.run is m.rank_run
    assert list(m.run.energy) == ["gpu:0"]
    assert m.run.windows[0].units == {"samples": 8}

    from joulemeter.meter.store import open_ledger

    with open_ledger() as ledger:
        assert [r.id for r in ledger.list_runs()] == [m.run.id]


# -- real torchrun jobs ----------------------------------------------------------------
def write_trace(path: Path, powers: dict[str, float]) -> Path:
    rows = ["t_s,domain,power_w"]
    for name, power in powers.items():
        rows += [f"0,{name},{power}", f"3600,{name},{power}"]
    path.write_text("\n".join(rows) + "\n")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*args: str, env: dict[str, str], log: Path) -> subprocess.Popen:
    """Start a torchrun launcher writing its (and its workers') output to `log`."""
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "torch.distributed.run", *args],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )


def finish(*launchers: tuple[subprocess.Popen, Path]) -> None:
    """Wait for every launcher; on a failure or a hang, stop them all and show their output."""
    try:
        codes = [p.wait(timeout=90) for p, _ in launchers]
    finally:
        for p, _ in launchers:
            if p.poll() is None:
                p.kill()
                p.wait()
    for code, (_, log) in zip(codes, launchers):
        assert code == 0, log.read_text()


def job_env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "JOULEMETER_LEDGER": str(tmp_path / "ledger.sqlite"),
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(ROOT),
    }


def the_only_run(tmp_path: Path) -> Run:
    """The one run a completed job leaves: the merged run, its ranks' parts deleted."""
    from joulemeter.meter.store import open_ledger

    with open_ledger(tmp_path / "ledger.sqlite") as ledger:
        runs = ledger.list_runs()
        assert len(runs) == 1, [r.name for r in runs]
        assert part_marker(runs[0].metadata) is None
        return ledger.get_run(runs[0].id)


def check_nothing_counted_twice(run: Run, nodes: list[str]) -> None:
    names = [d.name for d in run.domains]
    assert len(names) == len(set(names))
    assert sorted(run.energy) == sorted(names)
    for node in nodes:
        assert [n for n in names if n.startswith(f"{node}/") and n.count("/") == 1] == [
            f"{node}/cpu", f"{node}/ram",
        ]
    by_rank, host = run.metadata["energy_by_rank_j"], run.metadata["host_energy_by_node_j"]
    assert run.total_energy_j == pytest.approx(sum(by_rank.values()) + sum(host.values()))
    assert run.total_energy_j == pytest.approx(sum(run.metadata["energy_by_node_j"].values()))


def check_training_units(run: Run) -> None:
    train = [w for w in run.windows if w.name == "train"]
    assert [w.path for w in train] == [f"epoch-{e}/train" for e in range(EPOCHS)]
    assert sum(w.units["samples"] for w in train) == DATASET_SIZE * EPOCHS
    assert run.units["samples"] == 2 * DATASET_SIZE * EPOCHS  # train and eval passes


def check_replayed_power(run: Run, name: str, power_w: float) -> None:
    """A constant trace: the domain's energy is its power × the time between its first and last sample."""
    times = [s.t_s for s in run.samples if s.domain == name and s.energy_j is not None]
    assert run.energy[name].energy_j == pytest.approx(power_w * (max(times) - min(times)), rel=1e-6)
    assert run.energy[name].provenance is Provenance.REPLAYED


def report(label: str, run: Run) -> None:
    print(f"\n{label}: merged run {run.id[:8]}, total {run.total_energy_j:.2f} J over {run.duration_s:.2f} s")
    for name, energy in sorted(run.energy.items()):
        print(f"  {name:22s} {energy.energy_j:9.2f} J  avg {energy.avg_power_w:7.2f} W")
    print(f"  by rank {run.metadata['energy_by_rank_j']}")
    print(f"  by node {run.metadata['energy_by_node_j']} (host part {run.metadata['host_energy_by_node_j']})")


@pytest.mark.slow
def test_torchrun_two_processes_leave_one_merged_run_with_cpu_and_ram_once(tmp_path):
    trace = write_trace(
        tmp_path / "trace.csv", {"gpu:0": GPU0_W, "gpu:1": GPU1_W, "cpu": CPU_W, "ram": RAM_W}
    )
    log = tmp_path / "torchrun.log"
    finish((torchrun("--nproc-per-node", "2", "--standalone", str(SCRIPT), str(trace), env=job_env(tmp_path), log=log), log))
    run = the_only_run(tmp_path)
    report("torchrun --standalone, 2 ranks", run)
    assert run.status is Status.COMPLETED
    assert set(run.energy) == {"node0/cpu", "node0/ram", "node0/rank0/gpu:0", "node0/rank1/gpu:1"}
    check_nothing_counted_twice(run, ["node0"])
    check_training_units(run)
    expected_w = {"node0/rank0/gpu:0": GPU0_W, "node0/rank1/gpu:1": GPU1_W, "node0/cpu": CPU_W, "node0/ram": RAM_W}
    for name, power in expected_w.items():
        check_replayed_power(run, name, power)


@pytest.mark.slow
@pytest.mark.parametrize("shape", ["--group-after-meter", "--no-group"])
def test_torchrun_ranks_metered_before_any_process_group_leave_one_run(tmp_path, shape):
    """`@metered_training` on a main() that creates the process group itself, or never does:
    each rank meters from its first line, and the parts merge through torchrun's store."""
    trace = write_trace(
        tmp_path / "trace.csv", {"gpu:0": GPU0_W, "gpu:1": GPU1_W, "cpu": CPU_W, "ram": RAM_W}
    )
    log = tmp_path / "torchrun.log"
    args = ["--nproc-per-node", "2", "--standalone", str(SCRIPT), str(trace), shape]
    finish((torchrun(*args, env=job_env(tmp_path), log=log), log))
    run = the_only_run(tmp_path)
    report(f"torchrun, 2 ranks, {shape}", run)
    assert run.status is Status.COMPLETED
    assert set(run.energy) == {"node0/cpu", "node0/ram", "node0/rank0/gpu:0", "node0/rank1/gpu:1"}
    check_nothing_counted_twice(run, ["node0"])
    check_training_units(run)


def test_a_launched_rank_without_torchruns_store_places_itself_from_its_environment(monkeypatch):
    from joulemeter.integrations.distributed import _placement_from_environment
    from joulemeter.integrations.launcher import launched

    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setenv("GROUP_RANK", "1")
    monkeypatch.delenv("TORCHELASTIC_USE_AGENT_STORE", raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    launch = launched()
    assert launch is not None and not launch.agent_store
    place = _placement_from_environment(launch, None)
    assert (place.rank, place.node, place.gpus, place.meters_host) == (3, "node1", (2, 3), False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")  # a launcher that binds one GPU per rank
    assert _placement_from_environment(launch, None).gpus == (0,)
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert launched() is None  # one process: nothing to merge


@pytest.mark.slow
def test_two_torchrun_nodes_on_loopback_meter_each_nodes_cpu_and_ram_once(tmp_path):
    trace = write_trace(tmp_path / "trace.csv", {"gpu:0": GPU0_W, "cpu": CPU_W, "ram": RAM_W})
    port, env = str(free_port()), job_env(tmp_path)
    common = ["--nnodes", "2", "--nproc-per-node", "2", "--master-addr", "127.0.0.1", "--master-port", port]
    logs = [tmp_path / f"node{node}.log" for node in (0, 1)]
    launchers = [
        (torchrun(*common, "--node-rank", str(node), str(SCRIPT), str(trace), "--gpu-per-rank", env=env, log=log), log)
        for node, log in zip((0, 1), logs)
    ]
    finish(*launchers)
    run = the_only_run(tmp_path)
    report("two torchrun nodes, 2 ranks each", run)
    assert set(run.energy) == {
        "node0/cpu", "node0/ram", "node0/rank0/gpu:0", "node0/rank1/gpu:0",
        "node1/cpu", "node1/ram", "node1/rank2/gpu:0", "node1/rank3/gpu:0",
    }
    check_nothing_counted_twice(run, ["node0", "node1"])
    check_training_units(run)
    assert run.metadata["distributed"]["nodes"]["node1"]["ranks"] == [2, 3]
    for name in run.energy:
        check_replayed_power(run, name, GPU0_W if "gpu" in name else CPU_W if name.endswith("cpu") else RAM_W)


@pytest.mark.slow
def test_lightning_ddp_fit_leaves_one_merged_run_counting_every_sample_once(tmp_path):
    trace = write_trace(
        tmp_path / "trace.csv", {"gpu:0": GPU0_W, "gpu:1": GPU1_W, "cpu": CPU_W, "ram": RAM_W}
    )
    script, log = ROOT / "tests" / "distributed_scripts" / "lightning_ddp.py", tmp_path / "torchrun.log"
    finish((torchrun("--nproc-per-node", "2", "--standalone", str(script), str(trace), env=job_env(tmp_path), log=log), log))
    run = the_only_run(tmp_path)
    report("Lightning DDP, 2 ranks", run)
    assert set(run.energy) == {"node0/cpu", "node0/ram", "node0/rank0/gpu:0", "node0/rank1/gpu:1"}
    check_nothing_counted_twice(run, ["node0"])
    train = [w for w in run.windows if w.name == "train"]
    assert [w.units["samples"] for w in train] == [DATASET_SIZE] * EPOCHS  # Lightning shards the data
    assert run.metadata["parameters"] == (8 * 16 + 16) + (16 * 2 + 2)


@pytest.mark.slow
def test_transformers_trainer_under_torchrun_leaves_one_merged_run(tmp_path):
    trace = write_trace(
        tmp_path / "trace.csv", {"gpu:0": GPU0_W, "gpu:1": GPU1_W, "cpu": CPU_W, "ram": RAM_W}
    )
    script, log = ROOT / "tests" / "distributed_scripts" / "transformers_ddp.py", tmp_path / "torchrun.log"
    env = {**job_env(tmp_path), "HF_HUB_OFFLINE": "1"}
    args = ["--nproc-per-node", "2", "--standalone", str(script), str(trace), str(tmp_path / "out")]
    finish((torchrun(*args, env=env, log=log), log))
    run = the_only_run(tmp_path)
    report("transformers Trainer under torchrun, 2 ranks", run)
    assert set(run.energy) == {"node0/cpu", "node0/ram", "node0/rank0/gpu:0", "node0/rank1/gpu:1"}
    check_nothing_counted_twice(run, ["node0"])
    train = [w for w in run.windows if w.name == "train"]
    size, seq_len = 32, 12  # as in transformers_ddp.py; every token is real (mask of ones)
    assert [w.units for w in train] == [{"samples": size, "tokens": size * seq_len}] * EPOCHS
