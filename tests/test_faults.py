"""Faults end to end through the public API: EnergyMeter, its real sources, and the ledger.

The units below (accumulator, sources, ledger) have their own tests; here the whole
chain runs on its own sampling thread: discovery or given sources -> sampler -> Run ->
ledger. Fake hardware (NVML module, powercap tree) is driven step by step, and each step
waits until the meter has read it (polling with a deadline) before the next.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from joulemeter.meter import EnergyMeter, Run, Status
from joulemeter.meter.errors import ReplayTraceError
from joulemeter.meter.sources.rapl import RaplSource
from joulemeter.meter.store import open_ledger
from tests.doubles import LinearCounterSource
from tests.fakes.fake_pynvml import FakeGpu, FakeNvml
from tests.fakes.sysfs import add_zone
from tests.polling import wait_until

REPO = Path(__file__).resolve().parent.parent




def energy_reaches(meter: EnergyMeter, domain: str, energy_j: float) -> Callable[[], bool]:
    return lambda: abs(meter.energy_so_far_j()[domain] - energy_j) < 1e-6


def power_is(meter: EnergyMeter, domain: str, power_w: float | None) -> Callable[[], bool]:
    return lambda: meter.power_now_w().get(domain) == power_w


def assert_energy_never_negative_nor_decreasing(run: Run) -> None:
    for domain in run.domains:
        series = [s.energy_j for s in run.samples if s.domain == domain.name and s.energy_j is not None]
        assert series, f"no sample with energy for {domain.name}"
        assert min(series) >= 0
        assert series == sorted(series), f"energy of {domain.name} went down"


@pytest.fixture
def ledger_path(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "ledger.sqlite"
    monkeypatch.setenv("JOULEMETER_LEDGER", str(path))
    return path


@pytest.fixture
def fake_nvml(monkeypatch) -> FakeNvml:
    """One Ampere board at 100 W behind a fake `pynvml`, seen by discovery."""
    fake = FakeNvml([FakeGpu(power_w=100.0)])
    monkeypatch.setitem(sys.modules, "pynvml", fake.module)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return fake


def test_a_gpu_lost_mid_run_leaves_an_open_gap_and_the_run_completes(fake_nvml, ledger_path):
    gpu, clock = fake_nvml.gpus[0], fake_nvml.clock
    with EnergyMeter("gpu-lost", devices=["gpu"], interval_s=0.005) as m:
        clock.advance(1.0)  # 100 W × 1 s, read through the energy counter
        wait_until(energy_reaches(m, "gpu:0", 100.0), "the first 100 J")
        gpu.lose()  # fallen off the bus: NVML never answers on this handle again
        wait_until(power_is(m, "gpu:0", None), "a read of the lost GPU")
        clock.advance(1.0)  # drawn while lost: not measured, so not counted
    run = m.run
    assert run.status is Status.COMPLETED
    assert run.energy["gpu:0"].energy_j == pytest.approx(100.0)
    (gap,) = run.gaps
    assert gap.domain == "gpu:0" and gap.reason.startswith("GPU lost")
    assert gap.end_s is None  # it does not come back on the same handle
    assert_energy_never_negative_nor_decreasing(run)
    with open_ledger(ledger_path) as ledger:
        stored = ledger.get_run(run.id)
    assert stored.status is Status.COMPLETED
    assert stored.gaps == run.gaps
    assert stored.energy["gpu:0"].energy_j == pytest.approx(100.0)
    assert len(stored.samples) == len(run.samples)


def test_a_gpu_timing_out_mid_run_loses_nothing_the_counter_still_holds(fake_nvml, ledger_path):
    gpu, clock = fake_nvml.gpus[0], fake_nvml.clock
    with EnergyMeter("gpu-timeout", devices=["gpu"], interval_s=0.005) as m:
        clock.advance(1.0)
        wait_until(energy_reaches(m, "gpu:0", 100.0), "the first 100 J")
        gpu.fail("nvmlDeviceGetTotalEnergyConsumption", "TIMEOUT", times=None)
        calls = gpu.calls
        wait_until(lambda: gpu.calls > calls + 10, "reads that time out")
        clock.advance(1.0)  # drawn while the counter times out: the counter still counts it
        gpu.heal("nvmlDeviceGetTotalEnergyConsumption")
        wait_until(energy_reaches(m, "gpu:0", 200.0), "the 100 J across the errors")
    run = m.run
    assert run.energy["gpu:0"].energy_j == pytest.approx(200.0)
    assert run.gaps == []
    assert_energy_never_negative_nor_decreasing(run)


def test_a_gpu_counter_that_resets_mid_run_leaves_a_gap_and_no_negative_energy(fake_nvml, ledger_path):
    gpu, clock = fake_nvml.gpus[0], fake_nvml.clock
    clock.advance(10.0)  # the counter already holds 1000 J when the run starts
    with EnergyMeter("gpu-reset", devices=["gpu"], interval_s=0.005) as m:
        clock.advance(1.0)
        wait_until(energy_reaches(m, "gpu:0", 100.0), "the first 100 J")
        fake_nvml.reset_counter(gpu)  # the driver reloads: counter back to 0
        fake_nvml.set_power(gpu, 150.0)  # marks the reads that see the reset counter
        wait_until(power_is(m, "gpu:0", 150.0), "a read of the reset counter")
        clock.advance(1.0)
        wait_until(energy_reaches(m, "gpu:0", 250.0), "150 J more after the reset")
    run = m.run
    assert run.status is Status.COMPLETED
    assert run.energy["gpu:0"].energy_j == pytest.approx(250.0)
    assert [g.reason for g in run.gaps] == ["energy counter went back (reset)"]
    assert_energy_never_negative_nor_decreasing(run)
    with open_ledger(ledger_path) as ledger:
        assert ledger.get_run(run.id).gaps == run.gaps


def _set_energy_atomically(zone_dir: Path, energy_uj: int) -> None:
    """Replace energy_uj in one step: the sampler thread never sees a half-written file."""
    staged = zone_dir / "energy_uj.new"
    staged.write_text(f"{energy_uj}\n")
    os.replace(staged, zone_dir / "energy_uj")


def test_a_rapl_counter_that_wraps_twice_gives_the_exact_positive_energy(tmp_path, ledger_path):
    root = tmp_path / "powercap"
    # the counter wraps at 100 J and starts at 90 J
    package = add_zone(
        root, "intel-rapl:0", "package-0", energy_uj=90_000_000, max_energy_range_uj=100_000_000
    )
    with EnergyMeter("rapl-wraps", sources=[RaplSource(root)], interval_s=0.005) as m:
        # 90 J -> 30 J (wrapped: +40 J) -> 80 J (+50 J) -> 20 J (wrapped: +40 J)
        for raw_uj, total_j in ((30_000_000, 40.0), (80_000_000, 90.0), (20_000_000, 130.0)):
            _set_energy_atomically(package, raw_uj)
            wait_until(energy_reaches(m, "cpu:package-0", total_j), f"{total_j} J in all")
    run = m.run
    assert run.status is Status.COMPLETED
    assert run.energy["cpu:package-0"].energy_j == pytest.approx(130.0)
    assert run.gaps == []
    assert_energy_never_negative_nor_decreasing(run)


_VICTIM = textwrap.dedent(
    """
    import sys
    from joulemeter.meter import EnergyMeter
    from tests.doubles import LinearCounterSource

    with EnergyMeter("victim", ledger=sys.argv[1], sources=[LinearCounterSource(50.0)],
                     interval_s=0.01, flush_interval_s=0.05) as m:
        print(m.run.id, flush=True)
        while True:  # busy until SIGKILL
            pass
    """
)


def _flushed_run(ledger_path: Path, run_id: str) -> Run | None:
    with open_ledger(ledger_path) as ledger:
        run = ledger.get_run(run_id)
    return run if run.samples else None


def test_sigkill_of_a_metered_python_process_keeps_the_flushed_samples_as_an_interrupted_run(ledger_path):
    victim = subprocess.Popen(
        [sys.executable, "-c", _VICTIM, str(ledger_path)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert victim.stdout is not None
        run_id = victim.stdout.readline().strip()
        assert run_id, "the metered process died before its run began"
        flushed = wait_until(lambda: _flushed_run(ledger_path, run_id), "a first flush of samples")
        assert flushed.status is Status.RUNNING  # alive: opening the ledger leaves it alone
    finally:
        victim.kill()  # SIGKILL: no atexit, no signal handler, no finish_run
        victim.wait(timeout=30)
    with open_ledger(ledger_path) as ledger:  # opening recovers the dead run
        run = ledger.get_run(run_id)
    assert run.status is Status.INTERRUPTED
    assert run.samples[: len(flushed.samples)] == flushed.samples  # nothing flushed is lost
    last_t_s = run.samples[-1].t_s
    assert run.duration_s == pytest.approx(last_t_s)
    # a constant 50 W counter: energy is 50 W × the time between the first and last sample,
    # up to the microseconds between a read and its timestamp
    assert run.energy["gpu:0"].energy_j == pytest.approx(50.0 * (last_t_s - run.samples[0].t_s), abs=0.05)
    assert_energy_never_negative_nor_decreasing(run)


def _trace(path: Path, rows: list[str]) -> Path:
    path.write_text("t_s,domain,power_w\n" + "".join(r + "\n" for r in rows))
    return path


GOOD_ROWS = [f"{t},gpu:0,{200 + t}" for t in range(50)]


@pytest.mark.parametrize(
    ("bad_row", "problem"),
    [
        ("49,gpu:0,240", "time does not increase"),  # time goes back at the end
        ("50,gpu:0,nan", "NaN"),
        ("50,gpu:0,-3.5", "negative power"),
        ("50,gpu:0,250000", "mW"),  # 250 kW from one GPU: a trace written in mW
    ],
    ids=["time-goes-back", "nan", "negative", "absurd"],
)
def test_a_bad_replay_trace_is_refused_before_anything_is_written(tmp_path, ledger_path, bad_row, problem):
    with EnergyMeter("before", sources=[LinearCounterSource(10.0)]) as earlier:
        pass
    trace = _trace(tmp_path / "trace.csv", GOOD_ROWS + [bad_row])
    body_ran = False
    with pytest.raises(ReplayTraceError) as info:
        with EnergyMeter("replayed", replay=trace):
            body_ran = True
    message = str(info.value)
    assert problem in message and str(trace) in message and f"line {len(GOOD_ROWS) + 2}" in message
    assert not body_ran
    with open_ledger(ledger_path) as ledger:
        runs = ledger.list_runs()
        assert [r.id for r in runs] == [earlier.run.id]  # no run, not even a half one, was added
        assert ledger.get_run(earlier.run.id).status is Status.COMPLETED
