"""The benchmark worker process: a small torch training loop under each metering tool.

The parent (benchmarks/overhead.py) starts one worker for all variants, so they share one
process, memory layout and CPU placement, and sends it one JSON command per line on
stdin; the worker answers one line starting with RESULT_MARK on stdout (peers may print
their own lines, which the parent ignores). It first tries every variant once and
answers {variant: {"measures": …} or {"error": …}}. Each command names its variant:
    {"op": "steps", "variant": V, "steps": N}
        -> {"loop_s", "loop_cpu_s", "start_s", "stop_s", "measured", "threads"}
    {"op": "idle", "variant": V, "idle_s": D}  -> {"cpu_s", "sampler_cpu_s", "wall_s"}
    {"op": "quit"}
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

RESULT_MARK = "@@RESULT "
SAMPLER_THREAD = "joulemeter-sampler"  # the name meter/sampler.py gives its thread
#: meter/meter.py's one-off thread at start: it recovers other runs in the ledger, then ends
RECOVERY_THREAD = "joulemeter-recovery"

# Start the tool and return the function that stops it; that one says what was measured.
Starter = Callable[[], Callable[[], str]]


#: The variant that keeps no timeline (EnergyMeter(timeline=False)): counters at the edges
#: only, so it meters the devices that can have one (as Zeus: GPUs, CPU, DRAM); the RAM
#: estimate is power from memory in use, which only a timeline integrates.
NO_TIMELINE = "joulemeter (no timeline)"
_COUNTER_KINDS = ["gpu", "cpu", "dram"]


def _joulemeter(interval_s: float | None, ledger: Path, timeline: bool = True) -> Starter:
    from joulemeter.meter import EnergyMeter

    def start() -> Callable[[], str]:
        options: dict[str, object] = {} if interval_s is None else {"interval_s": interval_s}
        if not timeline:
            options |= {"timeline": False, "devices": _COUNTER_KINDS}
        meter = EnergyMeter("benchmark", ledger=ledger, **options)
        meter.start()

        def stop() -> str:
            run = meter.stop()
            return ", ".join(f"{d.name} ({d.provenance.value})" for d in run.domains)

        return stop

    return start


def _codecarbon(interval_s: float) -> Starter:
    from codecarbon import OfflineEmissionsTracker

    def start() -> Callable[[], str]:
        tracker = OfflineEmissionsTracker(
            country_iso_code="USA",
            measure_power_secs=interval_s,
            save_to_file=False,
            log_level="error",
        )
        tracker.start()

        def stop() -> str:
            tracker.stop()
            data = tracker.final_emissions_data
            return f"CPU {data.cpu_power:.3g} W, RAM {data.ram_power:.3g} W, GPUs {data.gpu_count or 0}"

        return stop

    return start


def _zeus() -> Starter:
    from zeus.monitor import ZeusMonitor

    def start() -> Callable[[], str]:
        monitor = ZeusMonitor()
        monitor.begin_window("benchmark")

        def stop() -> str:
            m = monitor.end_window("benchmark")
            cpus = "no CPU (no RAPL)" if m.cpu_energy is None else f"{len(m.cpu_energy)} CPU packages"
            return f"{len(m.gpu_energy)} GPUs, {cpus}"

        return stop

    return start


def _unmetered() -> Starter:
    return lambda: (lambda: "nothing")


def make_starter(variant: str, workdir: Path) -> Starter:
    """The start function of a variant name as the parent lists them."""
    if variant == "unmetered":
        return _unmetered()
    if variant == NO_TIMELINE:
        return _joulemeter(None, workdir / "ledger.sqlite", timeline=False)
    tool, _, interval = variant.partition("@")
    interval_s = float(interval.removesuffix("ms")) / 1000 if interval else None
    if tool == "joulemeter":
        return _joulemeter(interval_s, workdir / "ledger.sqlite")
    if tool == "codecarbon":
        return _codecarbon(interval_s or 0.1)
    if tool == "zeus":
        return _zeus()
    raise ValueError(f"unknown variant {variant!r}")


class TrainingLoop:
    """A small MLP trained with SGD on one fixed random batch, on one CPU thread."""

    def __init__(self) -> None:
        import torch

        torch.manual_seed(0)
        torch.set_num_threads(1)
        self.torch = torch
        self.model = torch.nn.Sequential(
            torch.nn.Linear(256, 512), torch.nn.ReLU(),
            torch.nn.Linear(512, 512), torch.nn.ReLU(),
            torch.nn.Linear(512, 10),
        )
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.01)
        self.inputs = torch.randn(64, 256)
        self.targets = torch.randint(0, 10, (64,))

    def run(self, steps: int) -> None:
        loss_fn = self.torch.nn.functional.cross_entropy
        for _ in range(steps):
            self.optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(self.model(self.inputs), self.targets)
            loss.backward()
            self.optimizer.step()


def _thread_cpu_s(name: str) -> float | None:
    """CPU seconds of the live thread called `name`, from Linux schedstat (ns), else psutil."""
    thread = next((t for t in threading.enumerate() if t.name == name), None)
    if thread is None or thread.native_id is None:
        return None
    try:
        text = Path(f"/proc/self/task/{thread.native_id}/schedstat").read_text()
        return int(text.split()[0]) / 1e9
    except OSError:
        import psutil

        for t in psutil.Process().threads():
            if t.id == thread.native_id:
                return t.user_time + t.system_time
    return None


def _process_cpu_s() -> float:
    """CPU seconds of every thread of this process, ended ones included (ns clock), plus
    reaped children (tick clock: peers that poll in a child process show up here)."""
    children = os.times()
    return time.process_time() + children.children_user + children.children_system


def _steps(start: Starter, loop: TrainingLoop, steps: int) -> dict[str, float | str]:
    t0 = time.perf_counter()
    stop = start()
    t1, cpu1 = time.perf_counter(), time.process_time()
    loop.run(steps)
    t2, cpu2 = time.perf_counter(), time.process_time()
    measured = stop()
    t3 = time.perf_counter()
    return {
        "start_s": t1 - t0,
        "loop_s": t2 - t1,
        "loop_cpu_s": cpu2 - cpu1,  # every thread of the process: the loop's and the tool's
        "stop_s": t3 - t2,
        "measured": measured,
    }


#: Idle CPU is counted from this long after a tool started, for every tool alike, so that it
#: is what running costs per second, not one-off start-up work done on threads after start()
#: returned (joulemeter's first ledger write; start + stop is measured apart)
_SETTLE_S = 0.5


def _wait_for_start_up() -> None:
    """Let a tool's one-off start-up work end: joulemeter's recovery of other runs (a thread
    that ends), then _SETTLE_S for anything else a tool does once after starting."""
    for thread in threading.enumerate():
        if thread.name == RECOVERY_THREAD:
            thread.join()
    time.sleep(_SETTLE_S)


def _idle(start: Starter, idle_s: float) -> dict[str, float | None]:
    stop = start()
    _wait_for_start_up()
    # The sampler thread's schedstat is read outside the process-CPU span: a cold /proc read
    # after the sleep costs the caller about 0.2 ms, which would be charged to the tool.
    sampler0 = _thread_cpu_s(SAMPLER_THREAD)
    cpu0, wall0 = _process_cpu_s(), time.perf_counter()
    time.sleep(idle_s)  # the point of this trial: the tool runs while the code does nothing
    cpu1, wall1 = _process_cpu_s(), time.perf_counter()
    sampler1 = _thread_cpu_s(SAMPLER_THREAD)
    stop()
    sampler = None if sampler0 is None or sampler1 is None else sampler1 - sampler0
    return {"cpu_s": cpu1 - cpu0, "sampler_cpu_s": sampler, "wall_s": wall1 - wall0}


def _reply(payload: dict) -> None:
    sys.__stdout__.write(RESULT_MARK + json.dumps(payload) + "\n")
    sys.__stdout__.flush()


def main() -> None:
    variants = sys.argv[1].split(",")
    warmup_steps = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    sys.stdout = sys.stderr  # peers' prints must not mix with the answers
    with tempfile.TemporaryDirectory(prefix="jm-bench-") as tmp:
        loop = TrainingLoop()
        loop.run(warmup_steps)
        starters: dict[str, Starter] = {}
        hello: dict[str, dict[str, str]] = {}
        for variant in variants:
            try:
                starter = make_starter(variant, Path(tmp))
                first = _steps(starter, loop, 1)  # pays one-off set-up (hardware detection, …)
            except Exception as exc:  # a peer that cannot run here: say why instead of a number
                hello[variant] = {"error": f"{type(exc).__name__}: {exc}"}
                continue
            starters[variant] = starter
            hello[variant] = {"measures": str(first["measured"])}
        _reply(hello)
        for line in sys.stdin:
            command = json.loads(line)
            if command["op"] == "quit":
                break
            start = starters[command["variant"]]
            if command["op"] == "steps":
                _reply(_steps(start, loop, command["steps"]) | {"threads": threading.active_count()})
            elif command["op"] == "idle":
                _reply(_idle(start, command["idle_s"]))


if __name__ == "__main__":
    main()
