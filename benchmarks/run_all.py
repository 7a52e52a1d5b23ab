"""Run every benchmark once and write docs/benchmarks.md (a table) and docs/benchmarks.json.

    python3 benchmarks/run_all.py            # full suite, about 7 minutes on 2 cores
    python3 benchmarks/run_all.py --quick    # shorter loops, fewer repeats, under 2 minutes

Peers (Zeus) live in benchmarks/.venv-peers: run benchmarks/setup_peers.sh first, or
Zeus is reported as not installed. Benchmarks are not tests: nothing here asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(REPO))

from benchmarks import (  # noqa: E402
    ledger_ingest,
    memory_growth,
    overhead,
    report_render,
    sampling_cost,
    startup,
    window_cost,
)
from benchmarks._report import markdown  # noqa: E402

SETTINGS = {
    # full loops outlast joulemeter's 2 s ledger flush, so its cost is in them
    # idle trials outlast the default 1 s timeline, so a tick's cost is in them
    # a long idle span holds 4 ticks of the adaptive timeline at 30 s (or 4 heartbeats without
    # a timeline) and one ledger write
    "full": {"repeats": 15, "loop_s": 2.5, "idle_repeats": 7, "idle_s": 3.0, "windows": 10_000,
             "ledger_batches": 10, "other_repeats": 9, "memory_ticks": 20_000, "long_idle_s": 120.0},
    "quick": {"repeats": 10, "loop_s": 0.4, "idle_repeats": 5, "idle_s": 1.5, "windows": 2_000,
              "ledger_batches": 5, "other_repeats": 5, "memory_ticks": 10_000, "long_idle_s": 30.0},
}

#: docs/benchmarks.md keeps what follows this line when run_all rewrites the rest: the
#: sections of benchmarks run on their own (sigkill_loss.py, demo_stability.py).
STANDALONE_MARKER = "<!-- standalone benchmarks: kept by run_all.py -->"


def standalone_sections(path: Path) -> str:
    """The marker and the sections after it in the current file ('' if there are none)."""
    text = path.read_text() if path.exists() else ""
    return "\n" + text[text.index(STANDALONE_MARKER):] if STANDALONE_MARKER in text else ""


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    import subprocess

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = subprocess.run(
        [overhead.worker_python(), "-c",
         "import importlib.metadata as m\n"
         "for p in ('joulemeter', 'torch', 'codecarbon', 'zeus'):\n"
         "    try: print(p, m.version(p))\n"
         "    except m.PackageNotFoundError: print(p, 'not installed')"],
        capture_output=True, text=True, check=False,
    ).stdout.split("\n")
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "os": platform.platform(),
        "versions": dict(line.split(" ", 1) for line in versions if line),
        "load_average_at_start": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter loops and fewer repeats (at least 5)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks.md",
                        help="Markdown file to write; the JSON goes beside it")
    args = parser.parse_args(argv)
    mode = "quick" if args.quick else "full"
    s = SETTINGS[mode]
    command = "python3 benchmarks/run_all.py" + (" --quick" if args.quick else "")
    started = time.perf_counter()
    results: dict[str, Any] = {
        "command": command,
        "mode": mode,
        "settings": s,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
    }
    workspace = tempfile.TemporaryDirectory(prefix="jm-bench-")
    workdir = Path(workspace.name)
    os.environ["JOULEMETER_SPOOL"] = str(workdir / "spool")  # runs' journals, in this and every child
    steps = [
        ("overhead", lambda: overhead.run(repeats=s["repeats"], loop_s=s["loop_s"],
                                          idle_s=s["idle_s"], idle_repeats=s["idle_repeats"])),
        ("sampling", lambda: sampling_cost.run(repeats=s["other_repeats"], calls=300, idle_s=s["idle_s"],
                                               long_idle_s=s["long_idle_s"], workdir=workdir)),
        ("window", lambda: window_cost.run(repeats=s["other_repeats"], windows=s["windows"])),
        ("memory", lambda: memory_growth.in_subprocess(s["memory_ticks"])),
        ("startup", lambda: startup.run(repeats=s["other_repeats"])),
        ("ledger", lambda: ledger_ingest.run(repeats=s["ledger_batches"])),
        ("report", lambda: report_render.run(repeats=s["other_repeats"])),
    ]
    for name, step in steps:
        t0 = time.perf_counter()
        print(f"[{name}] …", file=sys.stderr, flush=True)
        results[name] = step()
        print(f"[{name}] {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    workspace.cleanup()
    gpu_file = args.out.with_name("benchmarks-gpu.json")
    results["gpu"] = json.loads(gpu_file.read_text()) if gpu_file.exists() else None
    results["machine"]["load_average_at_end"] = os.getloadavg()
    results["suite_s"] = time.perf_counter() - started
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    args.out.write_text(markdown(results) + standalone_sections(args.out))
    print(f"wrote {args.out} and {args.out.with_suffix('.json')} in {results['suite_s']:.0f} s",
          file=sys.stderr)


if __name__ == "__main__":
    main()
