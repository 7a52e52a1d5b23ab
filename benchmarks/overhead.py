"""Overhead of metering a CPU training loop, and CPU the tools use while the code idles.

One worker process runs every variant (benchmarks/_worker.py), so they share memory
layout and CPU placement; each round runs every variant once in a shuffled order, so
drift of the machine (other load, frequency) falls on all variants alike. Three views:
- slowdown: a variant's loop wall time over the unmetered one of the same round (median);
- fastest: the variant's fastest loop over the fastest unmetered loop (least disturbed by
  other processes on a shared machine);
- CPU: process CPU time of the loop (the loop's thread and the tool's) over the unmetered
  loop's, per round: what the tool costs in CPU, hardly moved by other load.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks._stats import spread
from benchmarks._worker import NO_TIMELINE, RESULT_MARK

HERE = Path(__file__).resolve().parent
PEERS_PYTHON = HERE / ".venv-peers" / "bin" / "python"
VARIANTS = (
    "unmetered",
    "joulemeter",  # the default: a 1 s timeline here, energy from counters at the edges
    NO_TIMELINE,  # counters at the edges only, as Zeus: no ticks at all
    "joulemeter@100ms",
    "joulemeter@10ms",
    "codecarbon@100ms",
    "codecarbon@10ms",
    "zeus",
)


def worker_python() -> str:
    """The peers' venv (it has zeus and sees the project's packages), else this Python."""
    return str(PEERS_PYTHON) if PEERS_PYTHON.exists() else sys.executable


class Worker:
    """The one worker process that runs every variant (benchmarks/_worker.py)."""

    def __init__(self, variants: tuple[str, ...]) -> None:
        self.process = subprocess.Popen(
            [worker_python(), "-m", "benchmarks._worker", ",".join(variants)],
            cwd=HERE.parent,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        hello = self._answer()
        self.measures = {v: h["measures"] for v, h in hello.items() if "measures" in h}
        self.unavailable = {v: h["error"] for v, h in hello.items() if "error" in h}

    def ask(self, command: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        return self._answer()

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self.process.stdin.close()
        self.process.wait(timeout=60)

    def _answer(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith(RESULT_MARK):
                return json.loads(line[len(RESULT_MARK):])
        raise RuntimeError(f"benchmark worker exited with code {self.process.wait()}")


def run(*, repeats: int, loop_s: float, idle_s: float, idle_repeats: int, seed: int = 0) -> dict[str, Any]:
    """Interleaved rounds of every variant; returns raw trials and their summaries."""
    worker = Worker(VARIANTS)
    try:
        live = [v for v in VARIANTS if v in worker.measures]
        steps = _calibrate(worker, loop_s)
        rng = random.Random(seed)
        rounds = [_round(worker, rng.sample(live, len(live)), {"op": "steps", "steps": steps})
                  for _ in range(repeats)]
        idle_rounds = [_round(worker, rng.sample(live, len(live)), {"op": "idle", "idle_s": idle_s})
                       for _ in range(idle_repeats)]
    finally:
        worker.close()
    return {
        "steps": steps,
        "repeats": repeats,
        "idle_s": idle_s,
        "idle_repeats": idle_repeats,
        "python": worker_python(),
        "unavailable": worker.unavailable,
        "measures": worker.measures,
        "training": _summarise_training(rounds),
        "idle": _summarise_idle(idle_rounds),
        "raw": {"training": rounds, "idle": idle_rounds},
    }


def _round(worker: Worker, order: list[str], command: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v: worker.ask({**command, "variant": v}) for v in order}


def _calibrate(worker: Worker, loop_s: float) -> int:
    """Steps for an unmetered loop of about `loop_s` seconds (fastest of three probes)."""
    probe_steps = 100
    fastest = min(
        worker.ask({"op": "steps", "variant": "unmetered", "steps": probe_steps})["loop_s"]
        for _ in range(3)
    )
    return max(probe_steps, int(loop_s / fastest * probe_steps))


def _summarise_training(rounds: list[dict[str, dict[str, Any]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    fastest_base = min(r["unmetered"]["loop_s"] for r in rounds)
    for variant in rounds[0]:
        ratios = [r[variant]["loop_s"] / r["unmetered"]["loop_s"] for r in rounds]
        cpu_ratios = [r[variant]["loop_cpu_s"] / r["unmetered"]["loop_cpu_s"] for r in rounds]
        fastest = min(r[variant]["loop_s"] for r in rounds)
        out[variant] = {
            "loop_s": spread([r[variant]["loop_s"] for r in rounds]).to_dict(),
            "overhead_pct": spread([(x - 1.0) * 100 for x in ratios]).to_dict(),
            "fastest_overhead_pct": (fastest / fastest_base - 1.0) * 100,
            "cpu_overhead_pct": spread([(x - 1.0) * 100 for x in cpu_ratios]).to_dict(),
            "start_stop_ms": spread(
                [(r[variant]["start_s"] + r[variant]["stop_s"]) * 1000 for r in rounds]
            ).to_dict(),
        }
    return out


def _summarise_idle(rounds: list[dict[str, dict[str, Any]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for variant in rounds[0]:
        extra = [
            (r[variant]["cpu_s"] - r["unmetered"]["cpu_s"]) / r[variant]["wall_s"] * 1000
            for r in rounds
        ]
        entry: dict[str, Any] = {"extra_cpu_ms_per_s": spread(extra).to_dict()}
        thread = [r[variant]["sampler_cpu_s"] for r in rounds]
        if all(t is not None for t in thread):
            entry["sampler_thread_cpu_ms_per_s"] = spread(
                [t / r[variant]["wall_s"] * 1000 for t, r in zip(thread, rounds)]
            ).to_dict()
        out[variant] = entry
    return out
