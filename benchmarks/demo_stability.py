"""Does `joulemeter demo` give the same verdicts run after run? Runs it N times, each in
its own process with its own ledger, and tabulates each variant's verdict and interval.

    python3 benchmarks/demo_stability.py              # 5 full demos, a few minutes
    python3 benchmarks/demo_stability.py --runs 3 --quick

Writes docs/demo_stability.json and prints a Markdown section for docs/benchmarks.md.
Benchmarks are not tests: nothing here asserts.
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import tempfile
import time
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


def markdown(results: list[dict[str, Any]]) -> str:
    """A section for docs/benchmarks.md: per variant, the verdict of each run."""
    variants = list(results[0]["variants"])
    lines = [
        "## Demo verdicts, run after run",
        "",
        f"`python3 benchmarks/demo_stability.py --runs {len(results)}`: the demo run "
        f"{len(results)} times, each in its own process and ledger.",
        "",
        "| variant | verdicts | agreement | 95 % intervals (× the full model) |",
        "| --- | --- | --- | --- |",
    ]
    for name in variants:
        cis = [r["variants"][name] for r in results]
        verdicts = [ci["verdict"] if ci else "no interval" for ci in cis]
        most, count = collections.Counter(verdicts).most_common(1)[0]
        ranges = ", ".join(f"{ci['ci_low']:.2f}–{ci['ci_high']:.2f}" if ci else "—" for ci in cis)
        lines.append(f"| {name} | {', '.join(verdicts)} | {count} of {len(results)} \"{most}\" | {ranges} |")
    walls = [r["duration_s"] for r in results]
    lines += ["", f"Demo wall time: {min(walls):.0f}–{max(walls):.0f} s (the demo's own clock)."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="the demo's --quick plan")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "demo_stability.json")
    args = parser.parse_args()
    results = []
    for i in range(args.runs):
        results.append(one_demo(args.quick))
        print(f"demo {i + 1} of {args.runs}: {results[-1]['duration_s']:.0f} s", file=sys.stderr)
    args.out.write_text(json.dumps({"quick": args.quick, "runs": results}, indent=2) + "\n")
    print(markdown(results))


if __name__ == "__main__":
    main()
