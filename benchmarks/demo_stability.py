"""Does `joulemeter demo` give the same verdicts run after run? Runs it N times, each in
its own process with its own ledger, and tabulates each variant's verdict and interval.

    python3 benchmarks/demo_stability.py              # 5 full demos, a few minutes
    python3 benchmarks/demo_stability.py --runs 3 --quick
    python3 benchmarks/demo_stability.py --drift 1    # a load on 1 core that swells and ebbs

Writes docs/demo_stability.json and prints a Markdown section for docs/benchmarks.md.
Benchmarks are not tests: nothing here asserts.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

_ONE_DEMO = """
import json, sys
from pathlib import Path
from joulemeter.integrations.demo import DemoOptions, run_demo
folder = Path(sys.argv[1])
result = run_demo(DemoOptions(quick=sys.argv[2] == "quick", output=folder / "report.html",
                              ledger=str(folder / "ledger.db")))
print(json.dumps({
    "duration_s": result.duration_s,
    "variants": {
        v.variant: None if v.interval is None else v.interval.to_dict()
        for v in result.summary.variants if v.variant != result.summary.baseline
    },
}))
"""


# One core busy for a share of every 10 ms that swells from 0 to 1 and ebbs back over
# `period` seconds: drift slower than a trial, as other jobs on a shared machine make it.
_DRIFTING_LOAD = """
import math, sys, time
period, began = float(sys.argv[1]), time.monotonic()
while True:
    now = time.monotonic()
    share = 0.5 - 0.5 * math.cos(2 * math.pi * (now - began) / period)
    while time.monotonic() < now + 0.01 * share:
        pass
    time.sleep(0.01 * (1 - share))
"""


@contextlib.contextmanager
def drifting_load(cores: int, period_s: float) -> Iterator[None]:
    """`cores` processes, each keeping one core busy a share that drifts over `period_s`."""
    spinners = [subprocess.Popen([sys.executable, "-c", _DRIFTING_LOAD, str(period_s)]) for _ in range(cores)]
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def one_demo(quick: bool) -> dict[str, Any]:
    """One demo in a fresh process and a fresh ledger: its wall time and verdicts."""
    with tempfile.TemporaryDirectory(prefix="joulemeter-stability-") as folder:
        began = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-c", _ONE_DEMO, folder, "quick" if quick else "full"],
            capture_output=True, text=True, check=True, cwd=REPO,
        )
        result = json.loads(done.stdout.strip().splitlines()[-1])
        result["process_wall_s"] = time.monotonic() - began
        return result


def markdown(results: list[dict[str, Any]], flags: str = "") -> str:
    """A section for docs/benchmarks.md: per variant, the verdict of each run."""
    variants = list(results[0]["variants"])
    lines = [
        "## Demo verdicts, run after run",
        "",
        f"`python3 benchmarks/demo_stability.py --runs {len(results)}{flags}`: the demo run "
        f"{len(results)} times, each in its own process and ledger.",
        "",
        "| variant | verdicts | agreement | 95 % intervals (× the full model) | method |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name in variants:
        cis = [r["variants"][name] for r in results]
        verdicts = [ci["verdict"] if ci else "no interval" for ci in cis]
        most, count = collections.Counter(verdicts).most_common(1)[0]
        ranges = ", ".join(f"{ci['ci_low']:.2f}–{ci['ci_high']:.2f}" if ci else "—" for ci in cis)
        methods = ", ".join(sorted({ci["method"] for ci in cis if ci}))
        lines.append(
            f"| {name} | {', '.join(verdicts)} | {count} of {len(results)} \"{most}\" | {ranges} | {methods} |"
        )
    walls = [r["duration_s"] for r in results]
    loads = [ci["other_cpu_load"] for r in results for ci in r["variants"].values() if ci and ci["other_cpu_load"] is not None]
    lines += ["", f"Demo wall time: {min(walls):.0f}–{max(walls):.0f} s (the demo's own clock)."]
    if loads:
        lines.append(f"Other processes took {min(loads):.0%}–{max(loads):.0%} of the CPU during the trials.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="the demo's --quick plan")
    parser.add_argument("--drift", type=int, default=0, metavar="CORES",
                        help="meanwhile keep this many cores busy a share that swells and ebbs")
    parser.add_argument("--drift-period", type=float, default=20.0, metavar="S")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "demo_stability.json")
    args = parser.parse_args()
    results = []
    for i in range(args.runs):
        with drifting_load(args.drift, args.drift_period):
            results.append(one_demo(args.quick))
        print(f"demo {i + 1} of {args.runs}: {results[-1]['duration_s']:.0f} s", file=sys.stderr)
    record = {"quick": args.quick, "drift_cores": args.drift, "drift_period_s": args.drift_period, "runs": results}
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    flags = (" --quick" if args.quick else "") + (
        f" --drift {args.drift} --drift-period {args.drift_period:g}" if args.drift else "")
    print(markdown(results, flags))


if __name__ == "__main__":
    main()
