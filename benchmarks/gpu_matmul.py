"""The GPU counterpart of the benchmarks: a matmul training loop on an NVIDIA GPU.

    python3 benchmarks/gpu_matmul.py [--seconds 20] [--interval 0.01] [--write]

1. Energy: one ~20 s loop metered by joulemeter on gpu:0; prints the energy counter's
   figure against the trapezoid integral of the power samples (NVML POWER_INSTANT, or
   GetPowerUsage on older drivers) and the sampling rate reached.
2. Overhead: shorter loops, unmetered vs joulemeter (100 ms and 10 ms) vs Zeus (if
   installed: run benchmarks/setup_peers.sh and use benchmarks/.venv-peers/bin/python),
   interleaved round by round; slowdown = loop time / unmetered loop time of the round.

With --write the figures go to docs/benchmarks-gpu.json, which run_all.py shows in
docs/benchmarks.md. On a machine without a CUDA GPU it says so and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(REPO))

from benchmarks._stats import spread  # noqa: E402

NO_GPU_STATUS = 2


class MatmulLoop:
    """Two large linear layers trained with SGD on a fixed batch: the GPU stays busy."""

    def __init__(self, torch: Any, device: str, width: int = 8192, batch: int = 4096) -> None:
        torch.manual_seed(0)
        self.torch = torch
        self.device = device
        self.model = torch.nn.Sequential(
            torch.nn.Linear(width, width), torch.nn.ReLU(), torch.nn.Linear(width, width)
        ).to(device)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=1e-4)
        self.inputs = torch.randn(batch, width, device=device)

    def sync(self) -> None:
        if self.device.startswith("cuda"):
            self.torch.cuda.synchronize()

    def run(self, steps: int) -> None:
        for _ in range(steps):
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.model(self.inputs).square().mean()
            loss.backward()
            self.optimizer.step()
        self.sync()

    def steps_for(self, seconds: float, probe_steps: int = 10) -> int:
        """Steps that take about `seconds` (after a warm-up probe)."""
        self.run(probe_steps)
        t0 = time.perf_counter()
        self.run(probe_steps)
        per_step_s = (time.perf_counter() - t0) / probe_steps
        return max(1, round(seconds / per_step_s))


def trapezoid_j(samples: list[Any], domain: str) -> tuple[float, int]:
    """Integral of a domain's power samples (J) and the number of samples with power.

    Pairs that straddle a gap (a sample without power) are left out, as the meter does.
    """
    points = [(s.t_s, s.power_w) for s in samples if s.domain == domain]
    energy_j = 0.0
    for (t0, p0), (t1, p1) in zip(points, points[1:]):
        if p0 is not None and p1 is not None:
            energy_j += (p0 + p1) / 2.0 * (t1 - t0)
    return energy_j, sum(1 for _, p in points if p is not None)


def energy_check(loop: MatmulLoop, seconds: float, interval_s: float, domain: str) -> dict[str, Any]:
    """One metered loop: counter energy vs integrated power, and the sampling rate reached."""
    from joulemeter.meter import EnergyMeter, Provenance

    steps = loop.steps_for(seconds)
    meter = EnergyMeter("gpu-matmul", devices=[domain], interval_s=interval_s, store=False, sync=loop.sync)
    with meter:
        with meter.window("train"):
            loop.run(steps)
    run = meter.run
    energy = run.energy[domain]
    integral_j, powered = trapezoid_j(run.samples, domain)
    return {
        "steps": steps,
        "duration_s": run.duration_s,
        "provenance": energy.provenance.value,
        "counter_energy_j": energy.energy_j if energy.provenance is Provenance.COUNTER else None,
        "integrated_power_j": integral_j,
        "integral_vs_counter_pct": (integral_j / energy.energy_j - 1) * 100 if energy.energy_j else None,
        "samples": powered,
        "sampling_rate_hz": powered / run.duration_s if run.duration_s else None,
        "gaps": len(run.gaps),
        "method": next(d.method for d in run.domains if d.name == domain),
    }


Variant = Callable[[Callable[[], None]], None]  # runs the loop under some metering


def variants(loop: MatmulLoop, domain: str) -> tuple[dict[str, Variant], str | None]:
    """Unmetered, joulemeter at 100 and 10 ms, and Zeus when it can start here."""
    from joulemeter.meter import EnergyMeter

    def unmetered(work: Callable[[], None]) -> None:
        work()

    def joulemeter(interval_s: float) -> Variant:
        def metered(work: Callable[[], None]) -> None:
            with EnergyMeter("gpu-overhead", devices=[domain], interval_s=interval_s,
                             store=False, sync=loop.sync):
                work()
        return metered

    found: dict[str, Variant] = {
        "unmetered": unmetered,
        "joulemeter@100ms": joulemeter(0.1),
        "joulemeter@10ms": joulemeter(0.01),
    }
    try:
        from zeus.monitor import ZeusMonitor

        monitor = ZeusMonitor(gpu_indices=[int(domain.split(":")[1])])
    except Exception as exc:  # not installed, or cannot start here: reported, not fatal
        return found, f"{type(exc).__name__}: {exc}"

    def zeus(work: Callable[[], None]) -> None:
        monitor.begin_window("gpu-overhead")
        work()
        monitor.end_window("gpu-overhead")

    found["zeus"] = zeus
    return found, None


def overhead(loop: MatmulLoop, seconds: float, repeats: int, domain: str) -> dict[str, Any]:
    """Interleaved rounds; each variant's wall time over the unmetered one of its round."""
    steps = loop.steps_for(seconds)
    chosen, zeus_error = variants(loop, domain)
    rng = random.Random(0)
    rounds = []
    for _ in range(repeats):
        times = {}
        for name in rng.sample(list(chosen), len(chosen)):
            t0 = time.perf_counter()
            chosen[name](lambda: loop.run(steps))
            times[name] = time.perf_counter() - t0
        rounds.append(times)
    slowdown = {
        name: spread([(r[name] / r["unmetered"] - 1) * 100 for r in rounds]).to_dict()
        for name in chosen
        if name != "unmetered"
    }
    return {"overhead_steps": steps, "overhead_pct": slowdown, "zeus_error": zeus_error}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the energy run")
    parser.add_argument("--interval", type=float, default=0.01,
                        help="sampling interval of the energy run (s)")
    parser.add_argument("--overhead-seconds", type=float, default=5.0, help="length of each overhead loop")
    parser.add_argument("--repeats", type=int, default=5, help="overhead rounds (each runs every variant)")
    parser.add_argument("--write", action="store_true", help="write docs/benchmarks-gpu.json")
    args = parser.parse_args(argv)
    try:
        import torch
    except ImportError:
        sys.exit("gpu_matmul.py needs torch with CUDA: pip install torch")
    if not torch.cuda.is_available():
        print("No CUDA GPU here (torch.cuda.is_available() is False): run this benchmark on a "
              "machine with an NVIDIA GPU and a CUDA build of torch.", file=sys.stderr)
        sys.exit(NO_GPU_STATUS)
    domain = "gpu:0"
    loop = MatmulLoop(torch, "cuda:0")
    loop.run(loop.steps_for(3.0))  # warm up clocks and kernels before anything is measured
    result: dict[str, Any] = {
        "device": torch.cuda.get_device_name(0),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "python3 benchmarks/gpu_matmul.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "interval_s": args.interval,
        **energy_check(loop, args.seconds, args.interval, domain),
        **overhead(loop, args.overhead_seconds, args.repeats, domain),
    }
    print(json.dumps(result, indent=1))
    if args.write:
        out = REPO / "docs" / "benchmarks-gpu.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
